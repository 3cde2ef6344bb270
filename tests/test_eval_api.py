"""`softdimo eval` on image folders and dataset splits (no generator needed)."""
import json

import pytest
import torch

from softdimo.cli import main
from softdimo.data.world import heldout_prompts, render_prompt
from softdimo.errors import DataError
from softdimo.evaluate import evaluate
from softdimo.imageio import save_image


def write_world_folder(path, prompts, metas):
    path.mkdir()
    for i, meta in enumerate(metas):
        image, _ = render_prompt(meta, 100 + i)
        save_image(image.float() / 255, path / f"{i:04d}.png")
    (path / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in prompts))


def first_of_each_tag():
    seen, out = set(), []
    for m in heldout_prompts():
        if m["tag"] not in seen:
            seen.add(m["tag"])
            out.append(m)
    return out


def test_geneval_on_a_folder_of_ground_truth_renders(tmp_path, capsys):
    metas = first_of_each_tag()
    write_world_folder(tmp_path / "imgs", metas, metas)
    out = tmp_path / "r.json"
    code = main(["eval", "--model", str(tmp_path / "imgs"), "--metrics", "geneval", "--data", "world",
                 "--num", "6", "--json", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert set(doc) >= {"name", "command", "commit", "machine", "started", "seconds", "config", "metrics"}
    assert doc["metrics"]["geneval"] >= 5 / 6 and len(doc["metrics"]["geneval_per_tag"]) == 6


def test_geneval_detects_mismatched_prompts(tmp_path):
    metas = first_of_each_tag()
    rolled = metas[1:] + metas[:1]  # every image paired with another tag's prompt
    write_world_folder(tmp_path / "imgs", rolled, metas)
    res = evaluate(str(tmp_path / "imgs"), ["geneval"], 6, data=_world(), progress=False)
    assert res["geneval"] <= 1 / 6


def _world():
    from softdimo.config import DataConfig

    return DataConfig(dataset="world")


def test_dataset_source_and_classifier_score():
    res = evaluate("data:mnist:test", ["classifier_score", "domain_fid"], 200, progress=False)
    assert res["classifier_score"] > 5  # real digits: confident and class-balanced
    assert res["domain_fid"] < 1e-6  # the same 200 test images as the reference
    assert res["domain_evaluator"].startswith("softdimo classifier-mnist")


def test_domain_metrics_use_the_datasets_own_classifier():
    """Fashion-MNIST's domain metrics read classifier-fashion: real garments are confidently classified by it,
    and the train split sits closer to the test split than MNIST digits do."""
    from softdimo.config import DataConfig
    from softdimo.errors import SoftdimoError

    fashion = DataConfig(dataset="fashion")
    train = evaluate("data:fashion:train", ["classifier_score", "domain_fid"], 300, data=fashion, progress=False)
    assert train["domain_evaluator"].startswith("softdimo classifier-fashion")
    assert train["classifier_score"] > 5
    digits = evaluate("data:mnist:test", ["domain_fid"], 300, data=fashion, progress=False)
    assert 0 < train["domain_fid"] < digits["domain_fid"] / 5
    with pytest.raises(SoftdimoError, match="mnist or fashion"):
        evaluate("data:world:test", ["domain_fid"], 4, data=_world(), progress=False)


@pytest.mark.parametrize("model, match", [
    ("data:cifar", "data:NAME"),
    ("/nonexistent/folder", "does not exist"),
])
def test_bad_sources(model, match):
    with pytest.raises(DataError, match=match):
        evaluate(model, ["classifier_score"], 4, progress=False)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        evaluate(str(tmp_path / "empty"), ["classifier_score"], 4, progress=False)
    folder = tmp_path / "few"
    folder.mkdir()
    save_image(torch.rand(1, 28, 28), folder / "a.png")
    (folder / "metadata.jsonl").write_text("{}\n{}\n")
    with pytest.raises(DataError, match="one metadata line per image"):
        evaluate(str(folder), ["classifier_score"], 2, progress=False)
