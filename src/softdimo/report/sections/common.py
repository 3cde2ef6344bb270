"""Shared pieces of the sections: row tables, method and sampler labels, absent files, the grey datasets."""
from __future__ import annotations

import re
from typing import Any, Sequence

from ..document import Cell, Section, Source, Table, Text, label, num
from ..schema import ResultsFile, as_float

TIMING_KEY = re.compile(r"speed|seconds|cost|(^|[_.])step([_.]|$)")
GENEVAL_TAGS = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]

# the grey class-to-image datasets: the name in results files (``teacher_{dataset}.json``, …) → the name in titles
DATASETS: dict[str, str] = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
# the dataset whose files the report expects: its absent files are named "not yet measured" and its figures keep their
# plain asset names; another dataset's sections appear only with its files
MAIN_DATASET = "mnist"


def grey_file(kind: str, dataset: str) -> str:
    """The results file of ``kind`` (``teacher``, ``dimo``, ``soft_gan``, ``classifier``) for ``dataset``."""
    return f"{kind}_{dataset}.json"


def dataset_title(template: str, dataset: str) -> str:
    """``template`` with ``{dataset}`` replaced by the dataset's name (:data:`DATASETS`)."""
    return template.format(dataset=DATASETS[dataset])


def figure_name(stem: str, dataset: str) -> str:
    """The asset stem of a figure of ``dataset`` (:data:`MAIN_DATASET`'s keep ``stem``)."""
    return stem if dataset == MAIN_DATASET else f"{stem}-{dataset}"


# the commands that write a grey dataset's files, one template per kind ({dataset}; {skip_cost}: the cost of a
# refine step is measured once, in the main dataset's run); one generators.py run writes teacher_ and dimo_ files
GENERATORS_COMMAND = ("python benchmarks/generators.py --preset dimo_mnist --dataset {dataset} --threads 1 "
                      "--steps 1,2,4,8,16 --cfg-sweep 1,1.5,2 --temperatures 1,1.5,2,3 "
                      "--students dimo=checkpoints/dimo-{dataset}")
GREY_COMMANDS: dict[str, str] = {
    "teacher": GENERATORS_COMMAND,
    "dimo": GENERATORS_COMMAND,
    "soft_gan": "bash benchmarks/soft_gan_runs.sh --config configs/{dataset}/soft_gan.yaml RUNS_DIR 300 100 \"0 1 2\", "
                "then python benchmarks/soft_gan.py --dataset {dataset} --runs RUNS_DIR --seeds 0,1,2 --row-step 300"
                "{skip_cost}",
}

# how to produce a results file the report expects (shown when it is absent)
PRODUCED_BY: dict[str, str] = {
    **{grey_file(kind, d): how.format(dataset=d, skip_cost="" if d == MAIN_DATASET else " --skip-cost")
       for d in DATASETS for kind, how in GREY_COMMANDS.items()},
    "teacher_world.json": "python benchmarks/generators.py --preset teacher_world --teacher checkpoints/teacher-world "
                          "--images-per-prompt 4 --json benchmarks/results/teacher_world.json",
    "dimo_world.json": "python benchmarks/generators.py --preset dimo_world --students dimo=checkpoints/dimo-world …",
    "t2i_world.json": "python benchmarks/t2i_world.py --teacher checkpoints/teacher-world "
                      "--dimo checkpoints/dimo-world --reward checkpoints/soft-reward-world …",
    "speed.json": "softdimo bench --teacher checkpoints/teacher-mnist --students dimo=checkpoints/dimo-mnist,"
                  "soft-dimo=checkpoints/soft-dimo-mnist --json benchmarks/results/speed.json",
}


def absent(section: Section, f: ResultsFile, dataset: str = MAIN_DATASET) -> None:
    """Note on ``section`` that ``f`` is missing or malformed (and how to produce it).

    A missing file of another grey dataset than :data:`MAIN_DATASET` is not noted: those files are optional.
    """
    if f.status == "missing" and dataset == MAIN_DATASET:
        how = PRODUCED_BY.get(f.rel)
        section.problems.append(f"`{f.rel}`: not yet measured" + (f" (produced by `{how}`)" if how else "") + ".")
    elif f.status == "malformed":
        section.problems.append(f"`{f.rel}`: malformed, {f.error}; its numbers are left out.")


def finish(section: Section, *files: ResultsFile) -> Section:
    """Append the files' missing-key notes to ``section.problems``; an empty section says so."""
    for f in files:
        for p in f.problems:
            if p not in section.problems:
                section.problems.append(p)
    if not section.blocks:
        section.blocks.append(Text("Not yet measured."))
    return section


def finish_dataset(section: Section, dataset: str, *files: ResultsFile) -> Section | None:
    """:func:`finish` for a section of grey ``dataset``; None (no section) when ``dataset`` is not
    :data:`MAIN_DATASET` and the section has nothing to show or say (none of its files is there)."""
    if dataset != MAIN_DATASET and not section.blocks and not section.problems and not any(f.problems for f in files):
        return None
    return finish(section, *files)


def method_name(model: Any) -> str:
    """A readable method name for a generator folder (shipped checkpoints by name, else the folder)."""
    text = str(model or "")
    low = text.lower().replace("_", "-")
    if "soft-dimo" in low or "soft-gan" in low:
        return "Soft-Di[M]O"
    if "dimo" in low:
        return "Di[M]O"
    if "teacher" in low:
        return "teacher"
    return text.rstrip("/").split("/")[-1] or "?"


def sampler_text(row: dict[str, Any]) -> str:
    """``"N=16, cfg 1.5"`` or ``"1 step, τ 5"`` from a row's ``sampler`` (else ``options``)."""
    s = row.get("sampler") if isinstance(row.get("sampler"), dict) else {}
    o = row.get("options") if isinstance(row.get("options"), dict) else {}
    merged = {**{k: v for k, v in s.items() if v is not None}, **{k: v for k, v in o.items() if v is not None}}
    parts = []
    steps = merged.get("steps")
    if steps is not None:
        parts.append("1 step" if steps == 1 and s.get("sampler") == "OneStepSampler" else f"N={steps}")
    if merged.get("cfg_scale") not in (None, 1, 1.0):
        parts.append(f"cfg {merged['cfg_scale']:g}" if isinstance(merged["cfg_scale"], (int, float)) else "cfg ?")
    one_step = s.get("sampler") == "OneStepSampler"
    if merged.get("temperature") is not None and (one_step or o.get("temperature") is not None):
        parts.append(f"τ {merged['temperature']:g}")
    return ", ".join(parts) or "default"


def speed_source(f: ResultsFile, speed_key: str = "metrics.speed") -> Source:
    """Source of seconds-per-image numbers: wall clock, batch × repeats, from the file's speed block."""
    sp = f.get(speed_key, {}, dict, required=False)
    b, r, dev = sp.get("batch_size", "?"), sp.get("repeats", "?"), sp.get("device", "?")
    return f.source(evaluator=f"wall clock ({dev}, median of {r} side-by-side repeats)", n=f"batch {b} × {r} repeats")


def rows_table(f: ResultsFile, title: str, rows: Sequence[dict[str, Any]],
               columns: Sequence[tuple[str, str, int]], first: Sequence[tuple[str, Any]] = (),
               speed: Source | None = None, note: str = "") -> Table:
    """A table of result rows: label columns ``first`` (header, callable(row) or key), then metric ``columns``
    (key, header, digits) sourced per row (:meth:`ResultsFile.row_source`); ``seconds_per_image`` uses ``speed``."""
    t = Table(title, [h for h, _ in first] + [h for _, h, _ in columns], note=note)
    for row in rows:
        if not isinstance(row, dict):
            continue
        cells: list[Cell] = []
        for _, get in first:
            cells.append(label(get(row) if callable(get) else row.get(get, "?")))
        for key, _, digits in columns:
            value = _dig(row, key)
            src = speed if key == "seconds_per_image" and speed is not None else f.row_source(row, key.split(".")[0])
            cells.append(num(value, src, digits))
        t.rows.append(cells)
    return t


def _dig(row: dict[str, Any], key: str) -> Any:
    cur: Any = row
    for part in key.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur if as_float(cur) is not None or isinstance(cur, bool) else None


def list_of_dicts(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []




def kv_table(f: ResultsFile, title: str, mapping: dict[str, Any], source: Source | None = None,
             columns: tuple[str, str] = ("quantity", "value"), digits: int = 3, note: str = "",
             speed: Source | None = None) -> Table:
    """A two-column table of the scalar entries of ``mapping`` (nested dicts flattened to dotted keys).

    Keys that name a timing (``speed``, ``seconds``, ``step`` as a word, ``cost``) take the ``speed`` source when given.
    """
    t = Table(title, list(columns), note=note)
    src = source or f.source()
    for key, value in flatten(mapping):
        if as_float(value) is not None or isinstance(value, bool):
            timing = speed is not None and TIMING_KEY.search(key) is not None
            t.add(key, num(value, speed if timing else src, digits))
        elif isinstance(value, str) and len(value) <= 120:
            t.add(key, value)
    return t


def flatten(obj: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` → [("a.b", 1)] (lists of scalars kept as text; deeper levels dropped)."""
    out: list[tuple[str, Any]] = []
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if depth > 1:
                out += flatten(v, key + ".", depth - 1)
        elif isinstance(v, list):
            if v and all(as_float(x) is not None for x in v) and len(v) <= 12:
                out.append((key, ", ".join(f"{x:g}" for x in v)))
        else:
            out.append((key, v))
    return out


__all__ = ["GENEVAL_TAGS", "DATASETS", "MAIN_DATASET", "grey_file", "dataset_title", "figure_name",
           "GREY_COMMANDS", "PRODUCED_BY", "absent", "finish", "finish_dataset", "method_name", "sampler_text",
           "speed_source", "rows_table", "list_of_dicts", "kv_table", "flatten"]
