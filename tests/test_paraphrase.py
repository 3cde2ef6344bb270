"""Paraphrased prompts of the digit world (docs/method.md §8.8): templates, pools, dataset captions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from softdimo.cli import main
from softdimo.config import DataConfig
from softdimo.data import build_dataset
from softdimo.data import geneval as ge
from softdimo.data import paraphrase as pp
from softdimo.data import world
from softdimo.data.prompts import heldout_prompts_interleaved
from softdimo.data.world import WorldDataset, enumerate_metadata
from softdimo.errors import SoftdimoError


def test_every_template_words_every_prompt_of_its_tag() -> None:
    for tag in ge.TAGS:
        for meta in enumerate_metadata(tag):
            f = pp.fields(meta)
            for pool in pp.POOLS:
                for t in pp.templates(meta, pool):
                    text = t.format(**f)
                    assert "{" not in text and "  " not in text and text == text.strip()
                    for obj in meta["include"]:  # every object's digit is named, as a numeral or a word
                        assert obj["class"] in text or ge.NUMBER_WORDS[int(obj["class"])] in text, (t, meta)
                        if "color" in obj:
                            assert obj["color"] in text, (t, meta)


def test_heldout_wording_is_never_a_training_wording() -> None:
    for tag in ge.TAGS:
        for meta in enumerate_metadata(tag)[:60]:
            f = pp.fields(meta)
            train = {t.format(**f) for t in pp.templates(meta, "train")}
            held = {t.format(**f) for t in pp.templates(meta, "heldout")}
            assert train and held and not train & held
            assert meta["prompt"] not in train | held  # GenEval's own caption is its own template


def test_spoken_articles_and_counts() -> None:
    assert [pp.article(w) for w in ("8", "eight", "orange", "one", "1", "red", "11")] == \
        ["an", "an", "an", "a", "a", "a", "a"]
    meta = ge.counting("7", 2)
    held = {t.format(**pp.fields(meta)) for t in pp.templates(meta, "heldout")}
    assert "a pair of sevens" in held
    assert "a trio of sixes" in {t.format(**pp.fields(ge.counting("6", 3))) for t in pp.templates(ge.counting("6", 3), "heldout")}
    position = ge.position("2", "left of", "9")  # "a photo of a 2 left of a 9": a is the placed digit
    assert position["prompt"] == "a photo of a 2 left of a 9"
    assert (pp.fields(position)["a"], pp.fields(position)["rel"], pp.fields(position)["b"]) == ("2", "left of", "9")
    with pytest.raises(SoftdimoError, match="pool"):
        pp.templates(meta, "test")  # type: ignore[arg-type]
    with pytest.raises(SoftdimoError, match="not GenEval metadata"):
        pp.fields({"tag": "size", "include": [{"class": "1", "count": 1}]})


def test_committed_paraphrased_set_matches_its_generator() -> None:
    committed = (Path(world.__file__).with_name(world.PARAPHRASED_FILE)).read_text().splitlines()
    assert [json.loads(x) for x in committed] == world.paraphrased_heldout_prompts()
    held = heldout_prompts_interleaved()  # the file's order: every prefix covers the six tags
    para = world.paraphrased_heldout_prompts()
    assert len(para) == len(held) == 600
    assert {m["tag"] for m in para[:6]} == set(ge.TAGS)
    for a, b in zip(held, para):
        assert {k: v for k, v in b.items() if k not in ("prompt", "geneval_prompt")} == \
            {k: v for k, v in a.items() if k != "prompt"}
        assert b["geneval_prompt"] == a["prompt"] and b["prompt"] != a["prompt"]


def test_dataset_paraphrases_a_share_of_captions_without_touching_images() -> None:
    plain = WorldDataset("train", 600, paraphrases=0.0)
    mixed = WorldDataset("train", 600, paraphrases=0.3)
    canonical = [plain.metadata(i)["prompt"] for i in range(600)]
    assert [plain.prompt(i) for i in range(600)] == canonical
    changed = sum(mixed.prompt(i) != canonical[i] for i in range(600))
    assert 0.24 * 600 < changed < 0.36 * 600
    assert [mixed.prompt(i) for i in range(50)] == [WorldDataset("train", 600, paraphrases=0.3).prompt(i)
                                                    for i in range(50)]  # fixed by the seed
    for i in (0, 5, 7):
        assert np.array_equal(plain.image_uint8(i).numpy(), mixed.image_uint8(i).numpy())
        assert mixed.metadata(i) == plain.metadata(i)
    assert all(WorldDataset("train", 20, paraphrases=1.0).prompt(i) != canonical[i] for i in range(20))


def test_data_config_reads_the_share_and_rejects_bad_ones() -> None:
    ds = build_dataset(DataConfig(dataset="world", world_train_size=10, world_paraphrases=0.5), "train")
    assert ds.paraphrases == 0.5
    with pytest.raises(SoftdimoError, match="world_paraphrases"):
        DataConfig(dataset="world", world_paraphrases=1.5)
    with pytest.raises(SoftdimoError, match="world_paraphrases"):
        WorldDataset("train", 10, paraphrases=-0.1)


def test_eval_geneval_needs_metadata_in_the_prompts_file(tmp_path, capsys) -> None:
    txt = tmp_path / "prompts.txt"
    txt.write_text("a pair of sevens\n")
    rc = main(["eval", "--model", "checkpoints/teacher-world", "--metrics", "geneval", "--num", "2",
               "--data", "world", "--prompts-file", str(txt)])
    assert rc == 2 and "needs GenEval metadata" in capsys.readouterr().err


def test_every_wording_names_one_scene_and_the_attribute_reward_reads_it() -> None:
    from softdimo.rewards.scenes import prompt_metadata, prompt_table, scene_key

    table = world.paraphrase_table()
    canonical = prompt_table()
    for tag in ge.TAGS:  # no wording means two different scenes, nor a GenEval caption of another
        for meta in enumerate_metadata(tag)[:40]:
            f = pp.fields(meta)
            for pool in pp.POOLS:
                for t in pp.templates(meta, pool):
                    text = t.format(**f)
                    assert scene_key(table[text]) == scene_key(meta), (text, meta)
                    assert text not in canonical
    for m in world.paraphrased_heldout_prompts()[::37]:
        assert scene_key(prompt_metadata(m["prompt"])) == scene_key(m)
    assert prompt_metadata("a pair of  sevens")["include"][0] == {"class": "7", "count": 2}
