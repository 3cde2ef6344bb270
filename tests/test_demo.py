"""`softdimo demo` end to end at a tiny size."""
import pytest

from softdimo.cli import main


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    assert main(["demo", "--tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "report.md"
    assert report.is_file() and str(report) in out
    text = report.read_text()
    assert "| mnist |" in text and "| world |" in text
    assert (tmp_path / "reconstructions_mnist.png").is_file()
    assert (tmp_path / "reconstructions_world.png").is_file()
