"""The package's layers hold by construction: import-linter's contracts and the imports inside functions.

``lint-imports`` (import-linter, the ``.importlinter`` file at the project root) checks that an
upper layer may import a lower one and never the other way round — commands → stages → models →
building blocks → infrastructure (docs/architecture.md §2) — and that no two sibling packages
or modules import each other, directly or through others. Imports inside function bodies hide
such cycles, so they are kept for optional or heavy dependencies only, each with its reason in a
comment on its line or the line above, and counted here.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "softdimo"
MAX_FUNCTION_IMPORTS = 50


def function_imports() -> list[tuple[Path, int, str]]:
    """(file, line, source line) of every import statement inside a function body under src/softdimo."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))

        def visit(node: ast.AST, inside: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
                    found.append((path, child.lineno))
                visit(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(tree, False)
    return [(p, n, p.read_text().splitlines()[n - 1]) for p, n in found]


def test_imports_inside_functions_are_few_and_explained():
    rows = function_imports()
    where = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p, n, line in rows]
    assert len(rows) <= MAX_FUNCTION_IMPORTS, "too many imports inside functions:\n" + "\n".join(where)
    silent = []
    for path, n, line in rows:
        above = path.read_text().splitlines()[n - 2].strip() if n > 1 else ""
        if "#" not in line and not above.startswith("#"):
            silent.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not silent, ("an import inside a function needs its reason (optional or heavy dependency) in a "
                        "comment on its line or the line above:\n" + "\n".join(silent))


def test_layers_and_no_cycles():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail('lint-imports is missing: pip install -e ".[test]" (import-linter)')
    res = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
