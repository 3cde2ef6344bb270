"""benchmarks/demo.py: the demo's results copied next to the shipped results file, with exactly its pictures."""
from __future__ import annotations

import json
from pathlib import Path

from bench_loader import load_benchmark


def test_copy_results_copies_the_pictures_and_drops_an_earlier_runs(tmp_path):
    bench = load_benchmark("demo")
    src = tmp_path / "run" / "results"
    (src / "demo").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (src / "demo" / name).write_bytes(name.encode())
    strips = [{"label": "a", "file": "demo/a.png"}, {"label": "b", "file": "demo/b.png"}]
    doc = {"metrics": {"stages": [{"name": "s", "pictures": [{"strips": strips}]}]}}
    (src / "demo.json").write_text(json.dumps(doc))
    dest = tmp_path / "shipped" / "demo.json"
    (dest.parent / "demo").mkdir(parents=True)
    (dest.parent / "demo" / "stale.png").write_bytes(b"an earlier demo's picture")
    (dest.parent / "demo" / "a.png").write_bytes(b"old a")
    (dest.parent / "other.png").write_bytes(b"not in a picture folder of the demo")
    assert bench.copy_results(src / "demo.json", dest) == doc
    assert sorted(p.name for p in (dest.parent / "demo").iterdir()) == ["a.png", "b.png"]
    assert (dest.parent / "demo" / "a.png").read_bytes() == b"a.png"
    assert (dest.parent / "other.png").is_file()
