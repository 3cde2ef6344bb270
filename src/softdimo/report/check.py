"""Checks of a written report page: no placeholder, no broken image, no missing checkpoint.

:func:`check_html` reads the HTML text of ``report.html`` (as written, or as a browser's DOM) and
lists every problem a reader would meet:

* **placeholders**: "not yet measured" (an expected results file is absent), "Not yet measured."
  sections, plot series "(no data)", tables "(no rows)", the grids' "No sample grids", and every
  problem note of a section (a missing or malformed file, a missing key, a missing picture);
* **images**: an ``<img>`` whose source is not an embedded PNG that decodes to a non-empty picture,
  or (from a browser's DOM, see ``benchmarks/report_render.py``) one the browser failed to draw
  (``data-natural-width="0"``);
* **checkpoints**: a ``checkpoints/NAME`` the page names that is not a folder of the checkpoints
  folder, under that name or the one it was renamed to (:data:`~softdimo.paths.RENAMED_CHECKPOINTS`:
  the commands of results files keep the names they ran with).

A "—" table cell is not a placeholder: its results file does not hold that number.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..paths import present_name

PLACEHOLDERS = ("not yet measured", "(no data)", "(no rows)", "No sample grids", "No other results files")
CHECKPOINT_REF = re.compile(r"(?<![A-Za-z0-9_.-])checkpoints/([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass
class PageCheck:
    """What :func:`check_html` found."""

    placeholders: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    missing_checkpoints: list[str] = field(default_factory=list)
    images: int = 0
    checkpoints: list[str] = field(default_factory=list)  # every checkpoint folder the page names

    @property
    def ok(self) -> bool:
        return not (self.placeholders or self.broken_images or self.missing_checkpoints)

    def failures(self) -> list[str]:
        return ([f"placeholder: {p}" for p in self.placeholders] + [f"broken image: {b}" for b in self.broken_images]
                + [f"missing checkpoint: checkpoints/{c}" for c in self.missing_checkpoints])


class _Page(HTMLParser):
    """Collects the page's text, its images and the problem notes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images: list[dict[str, str]] = []
        self.problems: list[str] = []
        self._problem_depth = 0
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a)
        if tag == "div" and "problem" in a.get("class", "").split():
            self._problem_depth, self._buf = 1, []
        elif self._problem_depth and tag == "div":
            self._problem_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._problem_depth and tag == "div":
            self._problem_depth -= 1
            if not self._problem_depth:
                self.problems.append(" ".join("".join(self._buf).split()))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._problem_depth:
            self._buf.append(data)


def image_problem(attrs: dict[str, str]) -> str | None:
    """Why one ``<img>`` is broken (None when it is an embedded PNG that decodes and was drawn)."""
    name = attrs.get("alt") or attrs.get("title", "")[:60] or "image"
    if attrs.get("data-natural-width") == "0":
        return f"{name}: the browser did not draw it"
    src = attrs.get("src", "")
    if not src.startswith("data:image/png;base64,"):
        return f"{name}: not an embedded PNG ({src[:40]!r})"
    try:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                return f"{name}: empty picture"
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as e:
        return f"{name}: does not decode ({type(e).__name__})"
    return None


def check_html(html: str, checkpoints: str | Path = "checkpoints") -> PageCheck:
    """Every placeholder, broken image and missing checkpoint of a report page (module docstring)."""
    page = _Page()
    page.feed(html)
    text = unescape(" ".join(page.text))
    out = PageCheck(images=len(page.images))
    for p in PLACEHOLDERS:
        n = text.count(p) + (text.count("Not yet measured") if p == "not yet measured" else 0)
        if n:
            out.placeholders.append(f"{p!r} × {n}")
    out.placeholders += [f"section note: {p}" for p in page.problems]
    out.broken_images = [msg for msg in (image_problem(a) for a in page.images) if msg]
    root = Path(checkpoints)
    names = sorted(set(CHECKPOINT_REF.findall(text)) | {n for a in page.images for n in CHECKPOINT_REF.findall(
        unescape(a.get("title", "")))})
    out.checkpoints = [n.rstrip(".") for n in names]
    out.missing_checkpoints = [n for n in out.checkpoints if not (root / present_name(n)).is_dir()]
    return out


__all__ = ["PageCheck", "check_html", "image_problem", "PLACEHOLDERS"]
