"""The README's quick-start snippet runs as written."""
import re

from softdimo.paths import project_root


def test_quickstart_snippet_runs(capsys):
    text = (project_root() / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README quick-start block not found"
    exec(compile(block.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([8, 7, 7])" in out and "tensor(True)" in out
    assert out.count("torch.Size([2, 1, 28, 28])") == 2  # teacher and one-step student samples


def test_readme_names_the_test_command_ci_runs():
    root = project_root()
    assert "make test" in (root / ".ci" / "run").read_text()
    assert "make test" in (root / "README.md").read_text()
