"""Wall time of `softdimo demo` with empty caches (and of `make setup` on a fresh clone) → ``benchmarks/results/demo.json``.

    python benchmarks/demo.py --fresh-clone                  # what a new user does: clone, make setup, softdimo demo
    python benchmarks/demo.py --fresh-clone --skip-setup     # the same with this environment's Python (no set-up)
    python benchmarks/demo.py                                # softdimo demo in this checkout, caches cold
    python benchmarks/demo.py --size tiny --json /tmp/demo.json   # a quick check of this script

With ``--fresh-clone`` the committed code (``git clone`` of this checkout's HEAD, into a new
temporary folder) is set up with ``make setup`` (timed: the virtual environment and the wheels),
then ``softdimo demo`` runs there (timed) with ``SOFTDIMO_CACHE`` pointing to a new empty folder,
so dataset decoding, token caches and reference statistics are built as on a fresh machine.
``--skip-setup`` runs the clone's code with this Python instead (``PYTHONPATH=<clone>/src``).
Without ``--fresh-clone`` the demo runs in this checkout, also with an empty cache.

The results JSON is the demo's own ``demo.json`` (its stages, each with ``before``, ``after``,
``metric`` and ``improved``) with, in ``metrics``: ``seconds`` (wall time of the ``softdimo demo``
process), ``setup_seconds`` (``make setup``; null when skipped), ``demo_seconds_before_report``,
``target_seconds`` (600) and ``within_target``, ``all_improved``, and ``report_check``: the demo's
own page (``OUT/report/report.html``) checked in headless Chromium by ``benchmarks/report_render.py
--html`` (no placeholder, no broken image, no missing checkpoint, the page drawn; ``status``,
``checks``; not timed; ``--no-report-check`` leaves it out). The demo's pictures are copied next
to the JSON (``demo/*.png``) so that ``softdimo report`` shows them.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from softdimo.pretrained import atomic_write_bytes  # noqa: E402  (the checkout's code, with or without an install)
from softdimo.results import git_commit, machine, now  # noqa: E402

TARGET_SECONDS = 600


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run ``cmd`` (output to ``log``); its wall time in seconds. A failure stops the benchmark."""
    print(f"$ {' '.join(shlex.quote(c) for c in cmd)}   (in {cwd})", flush=True)
    t0 = time.time()
    with open(log, "w") as f:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.time() - t0
    if res.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{cmd[0]} … failed with status {res.returncode} after {seconds:.0f} s; log {log}:\n{tail}")
    return seconds


def copy_results(demo_json: Path, dest_json: Path) -> dict:
    """The demo's results document, with its pictures copied next to ``dest_json``; the pictures an
    earlier run left in those folders that this document does not show are removed."""
    doc = json.loads(demo_json.read_text())
    src_dir = demo_json.parent
    copied: set[Path] = set()
    for stage in doc["metrics"].get("stages", []):
        for pic in stage.get("pictures", []):
            for strip in pic.get("strips", []):
                target = dest_json.parent / strip["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_dir / strip["file"], target)
                copied.add(target)
    for folder in {t.parent for t in copied}:
        for old in folder.glob("*.png"):
            if old not in copied:
                old.unlink()
    return doc


def check_report(python: str, code: Path, out: Path, work: Path, env: dict[str, str]) -> dict:
    """``benchmarks/report_render.py --html`` on the demo's page, with the checkout's checkpoints; its
    ``status`` and ``checks`` (status ``not checked`` with the reason when the check could not run)."""
    result = work / "report_render.json"
    result.unlink(missing_ok=True)
    cmd = [python, str(code / "benchmarks" / "report_render.py"), "--html", str(out / "report" / "report.html"),
           "--checkpoints", str(code / "checkpoints"), "--json", str(result), "--png", str(work / "report_render.png")]
    with open(work / "report_render.log", "w") as f:
        res = subprocess.run(cmd, cwd=code, env=env, stdout=f, stderr=subprocess.STDOUT)
    if not result.is_file():
        return {"status": "not checked", "why": f"report_render.py exited with {res.returncode} without a result "
                                                f"(log {work / 'report_render.log'})"}
    m = json.loads(result.read_text())["metrics"]
    return {"status": m["status"], "checks": m["checks"], "page_check": m.get("page_check"),
            "browser": m.get("browser"), "how": "benchmarks/report_render.py --html OUT/report/report.html"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh-clone", action="store_true", help="clone HEAD into a new folder and run there")
    ap.add_argument("--skip-setup", action="store_true", help="with --fresh-clone: no make setup; this Python runs it")
    ap.add_argument("--size", default="default", choices=["tiny", "default", "full"])
    ap.add_argument("--work", help="folder for the clone, the cache and the demo's outputs (default: a new temporary "
                                   "folder, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "demo.json"))
    ap.add_argument("--report-check", action=argparse.BooleanOptionalAction, default=True,
                    help="check the demo's report page in headless Chromium afterwards (report_render.py --html)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="softdimo-demo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir()
    env = {**os.environ, "SOFTDIMO_CACHE": str(cache)}
    env.pop("SOFTDIMO_HOME", None)
    started = now()
    setup_seconds = None
    try:
        if args.fresh_clone:
            code = work / "softdimo"
            if code.exists():
                shutil.rmtree(code)
            run(["git", "clone", "--quiet", str(ROOT), str(code)], work, env, work / "clone.log")
            if args.skip_setup:
                python = sys.executable
                env["PYTHONPATH"] = str(code / "src")
            else:
                env.pop("VIRTUAL_ENV", None)
                setup_seconds = run(["make", "setup"], code, env, work / "setup.log")
                python = str(code / ".venv" / "bin" / "python")
        else:
            code, python = ROOT, sys.executable
        out = work / "demo-out"
        if out.exists():
            shutil.rmtree(out)
        cmd = [python, "-m", "softdimo", "demo", "--out", str(out)] + ([f"--{args.size}"] if args.size != "default" else [])
        seconds = run(cmd, code, env, work / "demo.log")
        dest = Path(args.json)
        doc = copy_results(out / "results" / "demo.json", dest)
        m = doc["metrics"]
        m.update(seconds=seconds, setup_seconds=setup_seconds, demo_seconds_before_report=m.get("seconds"),
                 target_seconds=TARGET_SECONDS, within_target=seconds <= TARGET_SECONDS,
                 fresh_clone=args.fresh_clone, cold_cache=True)
        if args.report_check:
            m["report_check"] = check_report(python, code, out, work, env)
        doc.update(command=" ".join(["demo.py", *(argv if argv is not None else sys.argv[1:])]),
                   commit=git_commit(code), machine=machine(), started=started, seconds=seconds)
        doc["config"] = {**(doc.get("config") or {}), "demo_command": " ".join(cmd[1:]),
                         "setup_command": None if setup_seconds is None else "make setup"}
        atomic_write_bytes(dest, (json.dumps(doc, indent=2) + "\n").encode())
        stages = m.get("stages", [])
        print(f"demo ({args.size}): {seconds:.0f} s (target ≤ {TARGET_SECONDS} s)"
              + (f", make setup {setup_seconds:.0f} s" if setup_seconds is not None else "")
              + f"; {sum(bool(s.get('improved')) for s in stages)}/{len(stages)} stages improved; wrote {dest}")
        for s in stages:
            print(f"  {s['name']}: {s['metric']} {s['before']:.4g} -> {s['after']:.4g} "
                  f"({'improved' if s['improved'] else 'NOT improved'})")
        if "report_check" in m:
            failed = [k for k, v in (m["report_check"].get("checks") or {}).items() if not v]
            print(f"  report page: {m['report_check']['status']}" + (f"; failed: {failed}" if failed else ""))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
