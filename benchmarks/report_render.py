"""Build the report from the results JSON and check that its HTML renders, with headless Chromium.

    python benchmarks/report_render.py                  # report/ from benchmarks/results, with sample grids
    python benchmarks/report_render.py --no-grids --out /tmp/report

Steps: ``softdimo report`` (:func:`softdimo.report.build_report`) writes ``OUT/report.md`` and
``OUT/report.html``; Chromium (Debian package ``chromium``: ``apt-get install -y chromium``) then

1. parses the page (``--dump-dom``): the rendered DOM must hold as many tables, inline SVG plots and
   images as the HTML written (nothing lost to a parsing error), and every image must be a data URI
   (the page is self-contained);
2. screenshots it at ``--width`` px in a tall window; the content height is where the last
   non-background row ends (the window is doubled until the page fits); the shot must not be blank,
   the plots' first series colour must appear (the SVG plots were drawn) and, with grids, the
   sample strips must appear (non-white pixels in the grid rows).

Writes ``--json`` (``benchmarks/results/report_render.json``: status, checks, page size, paths), the
full-width screenshot ``OUT/report_screenshot.png`` and a half-scale, 64-colour copy ``--png``
(``benchmarks/results/report_render.png``). Exit status 0 when every check passes.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from softdimo.report import ReportOptions, build_report
from softdimo.results import now, write_results

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PLOT_COLOUR = (0x1F, 0x77, 0xB4)  # softdimo.report.plots.PALETTE[0]
MAX_HEIGHT = 65536


class TagCounter(HTMLParser):
    """Counts tables, svg and img elements, and img sources that are not data URIs."""

    def __init__(self) -> None:
        super().__init__()
        self.counts = {"table": 0, "svg": 0, "img": 0, "section": 0}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.counts:
            self.counts[tag] += 1
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith(("data:", "#")):
                self.external.append(v)


def count_tags(html: str) -> TagCounter:
    c = TagCounter()
    c.feed(html)
    return c


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(browser: str, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def content_height(img: Image.Image) -> int:
    """Rows down to the last one that differs from the bottom-right (background) pixel."""
    grey = img.convert("L")
    bg = grey.getpixel((grey.width - 1, grey.height - 1))
    from PIL import ImageChops

    diff = ImageChops.difference(grey, Image.new("L", grey.size, bg)).point(lambda v: 255 if v > 8 else 0)
    box = diff.getbbox()
    return 0 if box is None else box[3]


def screenshot(browser: str, html: Path, out: Path, width: int, height: int) -> tuple[Image.Image, int, str]:
    """Screenshot in a window tall enough for the whole page (doubled until the content ends above the bottom)."""
    while True:
        res = chromium(browser, f"--window-size={width},{height}", f"--screenshot={out}", html.resolve().as_uri())
        if res.returncode != 0 or not out.is_file():
            raise RuntimeError(f"chromium --screenshot failed ({res.returncode}): {res.stderr[-2000:]}")
        img = Image.open(out).convert("RGB")
        h = content_height(img)
        if h < height - 40 or height >= MAX_HEIGHT:
            return img.crop((0, 0, width, min(height, h + 24))), height, res.stderr
        height = min(MAX_HEIGHT, height * 2)


def colour_pixels(img: Image.Image, rgb: tuple[int, int, int], tol: int = 12) -> int:
    a = np.asarray(img.convert("RGB")).astype(np.int16)
    return int((np.abs(a - np.array(rgb, dtype=np.int16)) <= tol).all(-1).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--out", default="report")
    ap.add_argument("--grids", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=8192, help="first window height (doubled until the page fits)")
    ap.add_argument("--json", default="benchmarks/results/report_render.json")
    ap.add_argument("--png", default="benchmarks/results/report_render.png", help="half-scale screenshot")
    args = ap.parse_args(argv)
    started, t0 = now(), time.time()
    summary = build_report(ReportOptions(results=args.results, out=args.out, grids=args.grids,
                                         checkpoints=args.checkpoints))
    html_text = summary.html.read_text()
    written = count_tags(html_text)
    metrics: dict = {"report": {"markdown": str(summary.markdown), "html": str(summary.html),
                                "html_bytes": len(html_text.encode()), "sections": summary.sections,
                                "numbers": summary.numbers, "not_yet_measured": summary.not_measured,
                                "assets": len(summary.assets), "elements_written": written.counts,
                                "external_references": written.external}}
    browser = find_browser()
    checks: dict[str, bool] = {"self_contained": not written.external}
    if browser is None:
        metrics.update(status="no browser", checks=checks,
                       how="install Chromium (apt-get install -y chromium) and run this script again")
        write_results(args.json, "report_render", metrics, config=vars(args), started=started, seconds=time.time() - t0)
        print(f"report_render: no Chromium found ({', '.join(BROWSERS)}); built {summary.html} only")
        return 1
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    dom = chromium(browser, "--dump-dom", summary.html.resolve().as_uri())
    rendered = count_tags(dom.stdout)
    checks["dom_parsed"] = dom.returncode == 0 and rendered.counts == written.counts
    shot_path = Path(args.out) / "report_screenshot.png"
    img, window_h, _ = screenshot(browser, summary.html, shot_path, args.width, args.height)
    img.save(shot_path)
    dark = int((np.asarray(img.convert("L")) < 200).sum())
    plot_px = colour_pixels(img, PLOT_COLOUR)
    checks["not_blank"] = dark > 0.005 * img.width * img.height
    checks["plots_drawn"] = written.counts["svg"] == 0 or plot_px > 50
    checks["grids_embedded"] = not args.grids or written.counts["img"] > 0
    half = img.resize((img.width // 2, max(1, img.height // 2)), Image.LANCZOS)
    half = half.quantize(colors=64, method=Image.Quantize.FASTOCTREE)  # keeps the plot colours; ≈ 0.3 MB
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    half.save(args.png, optimize=True)
    metrics.update(
        status="ok" if all(checks.values()) else "failed", checks=checks, browser=version,
        page={"width_px": img.width, "content_height_px": img.height, "window_height_px": window_h,
              "elements_rendered": rendered.counts, "dark_pixel_share": dark / (img.width * img.height),
              "plot_colour_pixels": plot_px},
        screenshot={"full": str(shot_path), "half_scale": str(args.png), "half_scale_size": list(half.size)})
    write_results(args.json, "report_render", metrics, config=vars(args), started=started, seconds=time.time() - t0)
    failed = [k for k, v in checks.items() if not v]
    print(f"report_render: {metrics['status']}; page {img.width}×{img.height} px, "
          f"{rendered.counts['table']} tables, {rendered.counts['svg']} plots, {rendered.counts['img']} grid strips; "
          f"{summary.numbers} numbers; screenshot {args.png}" + (f"; failed: {failed}" if failed else ""))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
