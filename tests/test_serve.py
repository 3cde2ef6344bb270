"""`softdimo serve`: the model pool on its own, and the web page through its HTTP API on a local port."""
from __future__ import annotations

import socket

import pytest
import torch

from softdimo.errors import DataError, SoftdimoError
from softdimo.paths import project_root
from softdimo.serve.models import ModelPool, parse_conditions

CKPT = project_root() / "checkpoints"


@pytest.fixture(scope="module")
def pool():
    torch.set_num_threads(1)
    return ModelPool(CKPT, "cpu")


def test_parse_conditions():
    assert parse_conditions("3, 7 1", "class") == {"labels": [3, 7, 1]}
    assert parse_conditions("", "class", 10) == {"labels": list(range(10))}
    assert parse_conditions("a photo of a 3\n\n a photo of a red 7 ", "text") == {
        "prompts": ["a photo of a 3", "a photo of a red 7"]}
    with pytest.raises(DataError, match="whole numbers"):
        parse_conditions("three", "class")
    with pytest.raises(DataError, match="at least one prompt"):
        parse_conditions("  \n", "text")


def test_pool_compares_a_teacher_with_its_students_by_path(pool):
    assert str(CKPT / "teacher-mnist") in pool.teachers()
    students = pool.students(str(CKPT / "teacher-mnist"))
    assert students and all("mnist" in s for s in students)
    gens = pool.compare("teacher-mnist", students, "3, 7", steps=4, cfg_scale=1.0, seed=0, per_condition=2)
    assert [g.images.shape[0] for g in gens] == [4] * (1 + len(students))
    assert gens[0].sampler["steps"] == 4 and all(g.sampler["steps"] == 1 for g in gens[1:])
    assert all(g.seconds > 0 and g.conditions == ["3", "7"] for g in gens)
    again = pool.compare(str(CKPT / "teacher-mnist"), [], "3, 7", steps=4, cfg_scale=1.0, seed=0, per_condition=2)
    assert torch.equal(again[0].images, gens[0].images)  # same seed, same images
    with pytest.raises(SoftdimoError, match="not a generator folder"):
        pool.compare(str(CKPT / "tokenizer-mnist"), [], "3")
    with pytest.raises(DataError, match="not a generator folder"):
        pool.compare(str(CKPT / "no-such-model"), [], "3")
    with pytest.raises(DataError, match="labels must be in"):
        pool.compare("teacher-mnist", [], "12")


def test_pool_tteo_keeps_the_student_and_reports_rewards(pool):
    student = pool.students(str(CKPT / "teacher-mnist"))[0]
    plain, tuned, scores = pool.tteo(student, "3, 7", iters=1, best_of=2, seed=0)
    assert plain.images.shape == tuned.images.shape == (2, 1, 28, 28)
    assert set(scores) == {"one step", "TTEO + best-of-N"} and set(scores["one step"]) == {"miniclip", "attribute"}
    with pytest.raises(DataError, match="one-step student"):
        pool.tteo("teacher-mnist", "3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_web_page_http_api(pool):
    pytest.importorskip("gradio", reason="the serve extra (Gradio) is not installed: pip install -e '.[serve]'")
    client_mod = pytest.importorskip("gradio_client", reason="gradio_client comes with Gradio")
    from softdimo.serve.app import ServeConfig, build_app

    app = build_app(pool, ServeConfig(checkpoints=str(CKPT)))
    port = _free_port()
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = client_mod.Client(url, verbose=False)
        students = pool.students(str(CKPT / "teacher-mnist"))
        gallery, table, numbers = client.predict(str(CKPT / "teacher-mnist"), students, "0, 1, 2", 4, 1.0, 0, 1,
                                                 api_name="/compare")
        assert len(gallery) == 1 + len(students) and all(item["image"] for item in gallery)
        assert "ms / image" in gallery[0]["caption"] and "speed-up" in table
        models = numbers["models"]
        assert [m["steps"] for m in models] == [4] + [1] * len(students)
        assert all(m["images"] == 3 and m["seconds_per_image"] > 0 for m in models)
        gallery, table, numbers = client.predict(students[0], "3", 1, 2, 0, api_name="/tteo")
        assert len(gallery) == 2 and "miniclip" in table and set(numbers["rewards"]) == {"one step", "TTEO + best-of-N"}
        with pytest.raises(Exception, match="not a generator folder"):  # a user mistake comes back as a message
            client.predict(str(CKPT / "tokenizer-mnist"), [], "3", 4, 1.0, 0, 1, api_name="/compare")
    finally:
        app.close()
