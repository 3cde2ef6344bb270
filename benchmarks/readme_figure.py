"""Redraw the README's picture from the shipped checkpoints → ``docs/images/teacher_vs_students.png``.

    python benchmarks/readme_figure.py [--checkpoints checkpoints] [--out docs/images/teacher_vs_students.png]

Every teacher under ``--checkpoints`` at 16 steps and at one step, beside its one-step students,
on the same labels or prompts and seed (:func:`softdimo.report.poster.draw_poster`). Run it again
when a checkpoint changes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from softdimo.report.poster import draw_poster  # noqa: E402  (the checkout's code)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "teacher_vs_students.png"))
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.time()
    out = draw_poster(args.checkpoints, args.out, args.steps, args.seed)
    print(f"readme_figure: wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
