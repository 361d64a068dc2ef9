"""Every code block of README.md's "Python (notebooks)" section runs, in order, in a fresh directory."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_section_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Python (notebooks)")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def test_readme_python_section_runs(tmp_path, monkeypatch, capsys):
    blocks = python_section_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, f"README.md (Python block {blocks.index(block) + 1})", "exec"), namespace)
    out = capsys.readouterr().out
    ev = namespace["ev"]
    assert ev.summary() in out and "probe vs dg: dJS" in out  # printed what the command prints
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"metrics.json", "per_user.parquet"}
    assert namespace["report"].to_markdown() in out
    assert namespace["headline"]["level"] == "latent"
