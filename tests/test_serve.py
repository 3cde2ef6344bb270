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


def test_model_grid_is_near_square_and_magnified():
    from softdimo.serve.app import SCALE, model_grid
    from softdimo.serve.models import Generation

    g = Generation("m", "m", "kind", {"steps": 1}, torch.rand(10, 1, 28, 28), 0.5, [str(i) for i in range(10)])
    img = model_grid(g)  # 10 images: 4 per row, 3 rows (2-pixel gaps), grey as RGB
    assert img.shape == (SCALE * (3 * 30 + 2), SCALE * (4 * 30 + 2), 3) and img.dtype.name == "uint8"


def test_start_retries_gradios_start_up_check():
    from softdimo.serve.app import start

    class SlowToAnswer:  # Gradio's launch when the page missed its 3 s start-up check `fails` times
        def __init__(self, fails: int) -> None:
            self.fails, self.launches, self.closes = fails, 0, 0

        def launch(self, **kw):
            self.launches += 1
            if self.launches <= self.fails:
                raise ValueError("When localhost is not accessible, a shareable link must be created.")
            return None, f"http://{kw['server_name']}:{kw['server_port']}/", None

        def close(self, verbose: bool = True) -> None:
            self.closes += 1

    app = SlowToAnswer(2)
    assert start(app, "127.0.0.1", 7861) == "http://127.0.0.1:7861/" and (app.launches, app.closes) == (3, 2)
    with pytest.raises(SoftdimoError, match="start-up check"):
        start(SlowToAnswer(5), "127.0.0.1", 7861, tries=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_web_page_http_api(pool):
    pytest.importorskip("gradio", reason="the serve extra (Gradio) is not installed: pip install -e '.[serve]'")
    client_mod = pytest.importorskip("gradio_client", reason="gradio_client comes with Gradio")
    from softdimo.serve.app import ServeConfig, build_app, start

    app = build_app(pool, ServeConfig(checkpoints=str(CKPT)))
    url = start(app, "127.0.0.1", _free_port())
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
