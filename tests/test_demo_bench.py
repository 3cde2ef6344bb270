"""benchmarks/demo.py: the demo's results copied next to the shipped results file, with exactly its pictures."""
from __future__ import annotations

import json
import os
import sys
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


def test_check_report_reads_the_render_check_and_says_when_it_could_not_run(tmp_path):
    bench = load_benchmark("demo")
    code, out, work = tmp_path / "code", tmp_path / "out", tmp_path / "work"
    (code / "benchmarks").mkdir(parents=True)
    work.mkdir()
    # a stand-in for report_render.py: writes its --json as the real one does, or nothing when told to fail
    (code / "benchmarks" / "report_render.py").write_text(
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "if 'fail' in open(args[args.index('--html') + 1].replace('report.html', 'mode')).read(): sys.exit(3)\n"
        "checks = {'no_placeholders': False, 'no_broken_images': True}\n"
        "json.dump({'metrics': {'status': 'failed', 'checks': checks, 'browser': 'x'}},"
        " open(args[args.index('--json') + 1], 'w'))\n")
    (out / "report").mkdir(parents=True)
    (out / "report" / "mode").write_text("ok")
    got = bench.check_report(sys.executable, code, out, work, dict(os.environ))
    assert got["status"] == "failed" and got["checks"] == {"no_placeholders": False, "no_broken_images": True}
    (out / "report" / "mode").write_text("fail")
    got = bench.check_report(sys.executable, code, out, work, dict(os.environ))
    assert got["status"] == "not checked" and "exited with 3" in got["why"]
