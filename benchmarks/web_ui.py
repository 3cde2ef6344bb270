"""`softdimo serve` in a real headless browser → ``benchmarks/results/web_ui.json`` and ``web_ui.png``.

    python benchmarks/web_ui.py                       # serve the shipped checkpoints, drive the page, screenshot
    cd "$(scripts/freeze.sh)" && PYTHONPATH=src /path/to/.venv/bin/python benchmarks/web_ui.py \\
        --json /path/to/benchmarks/results/web_ui.json --png /path/to/benchmarks/results/web_ui.png

Starts ``python -m softdimo serve`` on a free localhost port (a separate process, as a user would),
then drives the page with Playwright (``pip install -e ".[serve,browser]"``) in Chromium (Debian's
``chromium``, or Playwright's own): on the *Compare* tab it generates with the preselected teacher
at 16 steps and its one-step students (labels 0–9), waits for one image per model, reads the
timing table (milliseconds per image, measured by the server) and takes a screenshot; then it runs
the *TTEO* tab once. Every image must be drawn by the browser (``naturalWidth > 0``).

Results (``metrics``): ``page_ok`` (the page loaded, both actions returned, one image per model
and two on the TTEO tab, every one drawn), ``images`` (images drawn; the gallery loads them lazily,
so each is scrolled into view first), ``teacher_seconds`` and ``one_step_seconds`` (seconds per
image of the teacher at N steps and of the fastest one-step student, from the page), ``speedup``,
``rows`` (the timing table), ``tteo`` (its table), the browser's version, the screenshot's path,
the load average when it started, ``busy_cores_at_start`` (cores other work kept busy over the
:data:`BUSY_WINDOW` seconds before the server started, from ``/proc/stat``: the load average lags
by a minute) and, when that exceeds ¾ of the cores, a ``caveat`` that the timings were taken on a
busy machine.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from softdimo.results import now, write_results  # noqa: E402  (the checkout's code)

BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def shown(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (results files name no machine's folders)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


BUSY_WINDOW = 2.0  # seconds over which busy_cores measures the other work on the machine


def busy_cores(window: float) -> float | None:
    """Cores kept busy over the next ``window`` seconds (from ``/proc/stat``; None where it is absent)."""
    def sample() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields) - idle, sum(fields)

    a = sample()
    time.sleep(window)
    b = sample()
    if a is None or b is None or b[1] == a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"softdimo serve exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"softdimo serve did not answer at {url} within {timeout:.0f} s")


def table_rows(page, elem: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{elem} table tr", "trs => trs.map(tr => Array.from(tr.children).map(td => "
                                                            "td.innerText.trim()))")


def drawn_images(page, elem: str) -> tuple[int, int]:
    """(images the browser drew, images) of the gallery ``elem``; each is scrolled into view first (lazy loading)."""
    imgs = page.locator(f"#{elem} img")
    for i in range(imgs.count()):
        imgs.nth(i).scroll_into_view_if_needed()
    page.wait_for_function("sel => Array.from(document.querySelectorAll(sel)).every(i => i.complete)",
                           arg=f"#{elem} img", timeout=60e3)
    return (page.eval_on_selector_all(f"#{elem} img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0)"
                                                      ".length"),
            imgs.count())


def wait_drawn(page, elem: str, n: int, timeout_s: float) -> None:
    """Until the gallery ``elem`` holds ``n`` images (drawn or still lazily waiting to be)."""
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[f"#{elem} img", n],
                           timeout=timeout_s * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "web_ui.json"))
    ap.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "web_ui.png"))
    ap.add_argument("--browser", help="Chromium executable (default: chromium on the PATH, else Playwright's own)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for the server and for each action")
    ap.add_argument("--threads", type=int, help="CPU threads of the server (OMP_NUM_THREADS; default: torch's own)")
    args = ap.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright  # optional: the browser extra
    except ImportError:
        print('web_ui: Playwright is not installed: pip install -e ".[serve,browser]"', file=sys.stderr)
        return 2
    started, t0 = now(), time.time()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT / "src")}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = Path(tempfile.mkstemp(prefix="softdimo-serve-", suffix=".log")[1])
    busy = busy_cores(BUSY_WINDOW)
    server = subprocess.Popen([sys.executable, "-m", "softdimo", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT)
    metrics: dict = {"url": url, "load_average_at_start": os.getloadavg()[0], "busy_cores_at_start": busy,
                     "cpu_count": os.cpu_count()}
    try:
        wait_for(url, server, args.timeout)
        metrics["server_start_seconds"] = time.time() - t0
        exe = args.browser or next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=BROWSER_FLAGS,
                                                       viewport={"width": 1280, "height": 1400})
            version = ctx.browser.version if ctx.browser else "?"
            page = ctx.new_page()
            page.goto(url, wait_until="networkidle", timeout=args.timeout * 1e3)
            page.click("#compare-button")
            page.wait_for_function("() => document.querySelectorAll('#compare-table table tr').length > 1",
                                   timeout=args.timeout * 1e3)
            rows = table_rows(page, "compare-table")
            rows = [{"label": r[0], "sampler": r[1], "seconds_per_image": float(r[2]) / 1e3,
                     "speedup": float(r[3].rstrip("×"))}
                    for r in rows[1:] if len(r) >= 4 and re.fullmatch(r"[0-9.]+", r[2])]
            wait_drawn(page, "compare-gallery", len(rows), args.timeout)
            compare_images, total_compare = drawn_images(page, "compare-gallery")
            page.evaluate("window.scrollTo(0, 0)")
            Path(args.png).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.png, full_page=True)
            page.get_by_role("tab", name="TTEO").click()
            page.click("#tteo-button")
            page.wait_for_function("() => document.querySelectorAll('#tteo-table table tr').length > 1",
                                   timeout=args.timeout * 1e3)
            wait_drawn(page, "tteo-gallery", 2, args.timeout)
            tteo_rows = table_rows(page, "tteo-table")
            tteo_images, total_tteo = drawn_images(page, "tteo-gallery")
            ctx.close()
        teacher_rows = [r for r in rows if " steps" in r["label"] and "1 step" not in r["label"]]
        students = [r for r in rows if r not in teacher_rows]
        one = min((r["seconds_per_image"] for r in students), default=None)
        tsec = teacher_rows[0]["seconds_per_image"] if teacher_rows else None
        metrics.update(
            page_ok=bool(rows) and bool(tteo_rows) and compare_images == total_compare == len(rows)
            and tteo_images == total_tteo == 2, images=compare_images + tteo_images,
            images_by_tab={"compare": {"drawn": compare_images, "in_page": total_compare, "models": len(rows)},
                           "tteo": {"drawn": tteo_images, "in_page": total_tteo}},
            teacher_seconds=tsec, one_step_seconds=one, speedup=(tsec / one) if tsec and one else None, rows=rows,
            tteo=tteo_rows, browser=f"{exe or 'playwright chromium'} {version}", screenshot=shown(args.png),
            note="seconds per image as the page shows them: one request of 10 images per model (labels 0–9), "
                 "after a warm-up draw when the server loaded the model")
        load = busy if busy is not None else metrics["load_average_at_start"]
        if load > 0.75 * (os.cpu_count() or 1):  # other work held the cores
            what = "busy cores" if busy is not None else "load average"
            metrics["caveat"] = (f"measured on a busy machine ({what} {load:.1f} of "
                                 f"{os.cpu_count()} cores): the page's checks hold, its timings are slower than "
                                 f"benchmarks/results/speed.json's; rerun on an idle machine for timings")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    config = {k: shown(v) if k in ("json", "png") else v for k, v in vars(args).items()}
    write_results(args.json, "web_ui", metrics, config=config, started=started, seconds=time.time() - t0)
    print(f"web_ui: page_ok={metrics.get('page_ok')}; {metrics.get('images')} images drawn; teacher "
          f"{metrics.get('teacher_seconds')} s/image, one step {metrics.get('one_step_seconds')} s/image; "
          f"screenshot {args.png}; wrote {args.json}")
    return 0 if metrics.get("page_ok") else 1


if __name__ == "__main__":
    sys.exit(main())
