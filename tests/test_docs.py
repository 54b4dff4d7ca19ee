"""docs/ARCHITECTURE.md: it exists, its Python code blocks run, and no page points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for doc in (ROOT / "docs" / "ARCHITECTURE.md",):
        for i, match in enumerate(BLOCK.finditer(doc.read_text())):
            found.append((doc.relative_to(ROOT).as_posix(), i, match.group(1)))
    return found


def test_the_architecture_page_exists_and_stays_inside_the_repository():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert "engines/policy.py" in text and "nn/functional/geometry.py" in text
    for doc in DOCS:
        assert "/work/" not in doc.read_text() and "shared folder" not in doc.read_text(), doc


@pytest.mark.parametrize("doc, index, code", _blocks(), ids=lambda v: str(v)[:30])
def test_python_block_runs(doc, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{doc}[{index}]", "exec"), {"__name__": "__docs__"})
