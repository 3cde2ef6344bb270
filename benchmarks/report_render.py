"""Build the report from the results JSON and check that its HTML renders, with headless Chromium.

    python benchmarks/report_render.py                  # report/ from benchmarks/results, with sample grids
    python benchmarks/report_render.py --no-grids --out /tmp/report
    python benchmarks/report_render.py --html runs/demo/report/report.html --json /tmp/demo_render.json \
        --png /tmp/demo_render.png                      # check the demo's page as it is

Steps: ``softdimo report`` (:func:`softdimo.report.build_report`) writes ``OUT/report.md`` and
``OUT/report.html``; Chromium (Debian package ``chromium``: ``apt-get install -y chromium``) then

1. parses the page (``--dump-dom``): the rendered DOM must hold as many tables, inline SVG plots and
   images as the HTML written (nothing lost to a parsing error), and every image must be a data URI
   (the page is self-contained);
2. screenshots it at ``--width`` px in a tall window; the content height is where the last
   non-background row ends (the window is doubled until the page fits); the shot must not be blank,
   the plots' first series colour must appear (the SVG plots were drawn) and, with grids, the
   sample strips must appear (non-white pixels in the grid rows);
3. checks the page (:func:`softdimo.report.check.check_html`, on the written HTML and on the DOM
   Chromium rendered from a copy that records each image's drawn width): no placeholder ("not yet
   measured", a section's problem note, …), no broken image, no ``checkpoints/NAME`` that is not a
   folder of ``--checkpoints``.

Writes ``--json`` (``benchmarks/results/report_render.json``: status, checks, page size, paths), the
full-width screenshot ``OUT/report_screenshot.png`` and a half-scale, 64-colour copy ``--png``
(``benchmarks/results/report_render.png``). Exit status 0 when every check passes.
"""
from __future__ import annotations

import argparse
import re
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
from softdimo.report.check import check_html
from softdimo.results import now, write_results

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PLOT_COLOUR = (0x1F, 0x77, 0xB4)  # softdimo.report.plots.PALETTE[0]
MAX_HEIGHT = 65536
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")
# appended to a copy of the page: after load, each image records the width the browser drew it at
DRAWN_PROBE = ("<script>window.addEventListener('load',()=>{for(const i of document.images)"
               "{i.setAttribute('data-natural-width',String(i.naturalWidth))}});</script>")


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
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
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
    ap.add_argument("--overlay", action="append", default=[], help="a further results folder over --results "
                                                                    "(same-named files replace; repeatable)")
    ap.add_argument("--html", help="check this report.html as it is, without building one")
    ap.add_argument("--out", default="report")
    ap.add_argument("--grids", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=8192, help="first window height (doubled until the page fits)")
    ap.add_argument("--json", default="benchmarks/results/report_render.json")
    ap.add_argument("--png", default="benchmarks/results/report_render.png", help="half-scale screenshot")
    args = ap.parse_args(argv)
    started, t0 = now(), time.time()
    if args.html:
        html_path = Path(args.html)
        report: dict = {"html": str(html_path)}
        shot_dir = html_path.parent
    else:
        summary = build_report(ReportOptions(results=args.results, overlay=args.overlay, out=args.out,
                                             grids=args.grids, checkpoints=args.checkpoints))
        html_path = summary.html
        report = {"markdown": str(summary.markdown), "html": str(summary.html), "sections": summary.sections,
                  "numbers": summary.numbers, "not_yet_measured": summary.not_measured, "assets": len(summary.assets)}
        shot_dir = Path(args.out)
    html_text = html_path.read_text()
    written = count_tags(html_text)
    page = check_html(html_text, args.checkpoints)
    report.update(html_bytes=len(html_text.encode()), elements_written=written.counts,
                  external_references=written.external)
    metrics: dict = {"report": report}
    checks: dict[str, bool] = {"self_contained": not written.external}
    browser = find_browser()
    if browser is None:
        checks.update(no_placeholders=not page.placeholders, no_broken_images=not page.broken_images,
                      no_missing_checkpoints=not page.missing_checkpoints)
        metrics.update(status="no browser", checks=checks, page_check=_page_json(page),
                       how="install Chromium (apt-get install -y chromium) and run this script again")
        write_results(args.json, "report_render", metrics, config=vars(args), started=started, seconds=time.time() - t0)
        print(f"report_render: no Chromium found ({', '.join(BROWSERS)}); checked {html_path} without a browser")
        return 1
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html_text.replace("</body>", DRAWN_PROBE + "</body>", 1))
        dom = chromium(browser, "--dump-dom", probe.resolve().as_uri())
    rendered = count_tags(dom.stdout)
    drawn = check_html(dom.stdout, args.checkpoints)
    checks["dom_parsed"] = dom.returncode == 0 and rendered.counts == written.counts
    checks["no_placeholders"] = not (page.placeholders or drawn.placeholders)
    checks["no_broken_images"] = not (page.broken_images or drawn.broken_images)
    checks["no_missing_checkpoints"] = not page.missing_checkpoints
    shot_path = shot_dir / "report_screenshot.png"
    img, window_h, _ = screenshot(browser, html_path, shot_path, args.width, args.height)
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
    page_json = _page_json(page)
    page_json["broken_images"] = sorted(set(page.broken_images + drawn.broken_images))
    metrics.update(
        status="ok" if all(checks.values()) else "failed", checks=checks, browser=version, page_check=page_json,
        page={"width_px": img.width, "content_height_px": img.height, "window_height_px": window_h,
              "elements_rendered": rendered.counts, "dark_pixel_share": dark / (img.width * img.height),
              "plot_colour_pixels": plot_px, "images_drawn": sum(1 for _ in re.finditer(r'data-natural-width="[1-9]',
                                                                                           dom.stdout))},
        screenshot={"full": str(shot_path), "half_scale": str(args.png), "half_scale_size": list(half.size)})
    write_results(args.json, "report_render", metrics, config=vars(args), started=started, seconds=time.time() - t0)
    failed = [k for k, v in checks.items() if not v]
    print(f"report_render: {metrics['status']}; page {img.width}×{img.height} px, "
          f"{rendered.counts['table']} tables, {rendered.counts['svg']} plots, {rendered.counts['img']} images "
          f"({metrics['page']['images_drawn']} drawn); screenshot {args.png}" + (f"; failed: {failed}" if failed else ""))
    for line in page.failures() + drawn.failures():
        print(f"  {line}")
    return 0 if not failed else 1


def _page_json(page) -> dict:
    return {"placeholders": page.placeholders, "broken_images": page.broken_images,
            "missing_checkpoints": page.missing_checkpoints, "checkpoints_named": page.checkpoints,
            "images": page.images}


if __name__ == "__main__":
    sys.exit(main())
