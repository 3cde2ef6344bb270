"""Every `§` section reference in the code, configs, benchmarks, tests and README resolves in the docs.

A reference is ``docs/method.md §N[.M]`` or ``docs/architecture.md §N[.M]``, a range
(``§3.2–§3.6``, ``§3.2–3.6``), or a bare ``§N[.M]``. A bare reference belongs to the nearest file
named before it on the same line; with none, to docs/architecture.md when the line names that file,
else to docs/method.md (inside docs/X.md, to X itself). It resolves when the target file has a
markdown heading that starts with that number (``### 3.2 The initial state x_init``).

Also refused: references to the two retired specification files, and letter-style sections
(``§A.6``, ``§B``, ``§C``), whatever file they name. Failures list each reference as file:line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository (no package import: fast)
METHOD = "docs/method.md"
ARCHITECTURE = "docs/architecture.md"

# Sections other code cites: renumbering any of them breaks those citations.
REQUIRED_SECTIONS = (
    "1", "2", "2.1", "2.2", "2.3",
    "3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9",
    "4", "4.1", "4.2", "4.3",
    "5", "5.1", "5.2", "5.3", "5.4", "5.5",
    "6", "6.1", "6.2", "6.3",
    "7", "7.1", "7.2",
    "8", "9", "10",
)

HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?(?:\s|$)")
NUM = r"\d+(?:\.\d+)*"
# a numeric reference, optionally a range whose end may repeat the §
NUMERIC = re.compile(rf"§\s?({NUM})(?:\s?[–—-]\s?§?\s?({NUM}))?")
# file names a reference may belong to: a docs page, or a retired specification file
FILE_NAME = re.compile(r"(?<![\w/.])(docs/[\w-]+\.md|(?:METHOD|DESIGN)(?:\.md)?\b)")
SHOWN = re.compile(r"§\s?[\w.]*(?:[–—-]§?[\w.]+)?")  # how a reference is quoted in failure messages
RETIRED = re.compile(r"\b(?:METHOD|DESIGN)\.md\b|\b(?:METHOD|DESIGN)\s+§")


@dataclass(frozen=True)
class Ref:
    path: str  # repository-relative file
    line: int  # 1-based
    text: str  # the reference as written
    target: str | None  # docs file it must resolve in (None: a retired or malformed reference)
    sections: tuple[str, ...]  # numbers that must be headings of the target
    problem: str = ""  # why it cannot resolve at all (retired file, letter section, …)


def scanned_files() -> list[tuple[Path, str]]:
    """(file, default target of its bare references) for everything that may cite the docs."""
    pats = ["src/softdimo/**/*.py", "configs/**/*.yaml", "benchmarks/*.py", "benchmarks/*.sh", "tests/*.py"]
    files = sorted({p for pat in pats for p in ROOT.glob(pat) if p.is_file()})
    out = [(p, METHOD) for p in files if p.name != Path(__file__).name]
    out.append((ROOT / "README.md", METHOD))
    for doc in (METHOD, ARCHITECTURE):
        if (ROOT / doc).is_file():
            out.append((ROOT / doc, doc))
    return out


def line_refs(path: str, lineno: int, line: str, default: str = METHOD) -> list[Ref]:
    """Every § reference on one line, each with the file it points into."""
    if "§" not in line:
        return []
    names = [(m.start(), m.group(1)) for m in FILE_NAME.finditer(line)]
    if default == METHOD and any(n == ARCHITECTURE for _, n in names) and not any(n == METHOD for _, n in names):
        default = ARCHITECTURE  # a bare reference on a line that names only docs/architecture.md
    refs: list[Ref] = []
    pos = 0
    while (i := line.find("§", pos)) >= 0:
        before = [n for start, n in names if start < i]
        target = before[-1] if before else default
        m = NUMERIC.match(line, i)
        text = SHOWN.match(line, i).group(0).rstrip(".")  # type: ignore[union-attr]
        if m:
            secs, pos = tuple(s for s in m.groups() if s), m.end()
        else:
            secs, pos = (), i + 1
        problem = ""
        if not target.startswith("docs/"):
            text = f"{target} {text}"
            problem = f"names {target}; cite {METHOD} (or {ARCHITECTURE}) instead"
        elif not m:
            problem = "not a numbered section (letter-style §A., §B., §C, §E … are retired)"
        refs.append(Ref(path, lineno, text, target if not problem else None, secs, problem))
    return refs


def retired_mentions(path: str, lineno: int, line: str) -> list[Ref]:
    """Mentions of METHOD.md / DESIGN.md without a § (a § one is reported by line_refs)."""
    out = []
    for m in RETIRED.finditer(line):
        if "§" not in line[m.start():m.end() + 2]:
            out.append(Ref(path, lineno, m.group(0), None, (), "names a retired file; cite docs/method.md instead"))
    return out


def headings(doc: str) -> set[str]:
    """Section numbers of the markdown headings of ``doc`` (empty when the file is missing)."""
    f = ROOT / doc
    if not f.is_file():
        return set()
    return {m.group(1) for ln in f.read_text(encoding="utf-8").splitlines() if (m := HEADING.match(ln))}


def all_refs() -> list[Ref]:
    refs: list[Ref] = []
    for f, default in scanned_files():
        rel = f.relative_to(ROOT).as_posix()
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            refs += line_refs(rel, n, line, default) + retired_mentions(rel, n, line)
    return refs


def _report(bad: list[tuple[Ref, str]]) -> str:
    rows = "\n".join(f"  {r.path}:{r.line}: {r.text!r} — {why}" for r, why in bad)
    return f"{len(bad)} section reference(s) do not resolve:\n{rows}"


# ---------------------------------------------------------------------- the docs themselves
def test_method_doc_has_every_cited_section_number():
    have = headings(METHOD)
    assert have, f"{METHOD} is missing or has no numbered headings"
    missing = [s for s in REQUIRED_SECTIONS if s not in have]
    assert not missing, f"{METHOD} lacks the headings of sections {', '.join('§' + s for s in missing)}"


def test_method_doc_headings_are_unique():
    f = ROOT / METHOD
    nums = [m.group(1) for ln in f.read_text(encoding="utf-8").splitlines() if (m := HEADING.match(ln))]
    dup = sorted({n for n in nums if nums.count(n) > 1})
    assert not dup, f"{METHOD} numbers several headings {', '.join('§' + d for d in dup)}"


# ---------------------------------------------------------------------- the references
def test_no_retired_or_letter_style_references():
    bad = [(r, r.problem) for r in all_refs() if r.problem]
    assert not bad, _report(bad) + (
        "\nRewrite them with the mapping from the old letter sections to the numbered ones of "
        f"{METHOD} (and {ARCHITECTURE} for the architecture ones).")


def test_numbered_references_resolve():
    cache: dict[str, set[str]] = {}
    bad = []
    for r in all_refs():
        if r.target is None:
            continue
        have = cache.setdefault(r.target, headings(r.target))
        if not (ROOT / r.target).is_file():
            bad.append((r, f"{r.target} does not exist"))
            continue
        missing = [s for s in r.sections if s not in have]
        if missing:
            bad.append((r, f"no heading {', '.join('§' + s for s in missing)} in {r.target}"))
    assert not bad, _report(bad)


# ---------------------------------------------------------------------- the parser itself
def test_parser_reads_the_reference_forms():
    def parse(line: str, default: str = METHOD) -> list[tuple[str | None, tuple[str, ...], bool]]:
        return [(r.target, r.sections, bool(r.problem)) for r in line_refs("x.py", 1, line, default)]

    assert parse("(docs/method.md §3.2–§3.6)") == [(METHOD, ("3.2", "3.6"), False)]
    assert parse("see §3.2–3.6 and §4.") == [(METHOD, ("3.2", "3.6"), False), (METHOD, ("4",), False)]
    assert parse("docs/method.md §2.2, §3.8.") == [(METHOD, ("2.2",), False), (METHOD, ("3.8",), False)]
    assert parse("the Teacher protocol (docs/architecture.md §3)") == [(ARCHITECTURE, ("3",), False)]
    assert parse("bare §3 on a docs/architecture.md line") == [(ARCHITECTURE, ("3",), False)]
    assert parse("docs/method.md §4.1; docs/architecture.md §3, §5") == [
        (METHOD, ("4.1",), False), (ARCHITECTURE, ("3",), False), (ARCHITECTURE, ("5",), False)]
    assert parse("see §1.2", default=ARCHITECTURE) == [(ARCHITECTURE, ("1.2",), False)]
    # retired files and letter-style sections
    assert parse("(METHOD.md §B.4–B.5)") == [(None, (), True)]
    assert parse("(METHOD.md §A.6)") == [(None, (), True)]
    assert parse("DESIGN.md §3") == [(None, ("3",), True)]
    assert parse("(DESIGN §4)") == [(None, ("4",), True)]
    assert parse("(METHOD §A.8)") == [(None, (), True)]
    assert parse("the knobs (§A.1)") == [(None, (), True)]
    assert parse("§B and §C, §E") == [(None, (), True)] * 3
    assert [r.problem != "" for r in retired_mentions("x.py", 1, "see METHOD.md and DESIGN.md")] == [True, True]
    assert parse("no reference here") == []


def test_headings_parser():
    lines = ["## 3. Di[M]O", "### 3.2 The initial state x_init", "#### 3.2.1 Detail", "## Notes", "### 10 Refs"]
    assert [m.group(1) for ln in lines if (m := HEADING.match(ln))] == ["3", "3.2", "3.2.1", "10"]
