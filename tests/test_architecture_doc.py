"""docs/ARCHITECTURE.md describes the code as it is (its code blocks run in tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_the_architecture_page_names_exists():
    import re

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:nn/functional|engines|data|train|cli)/[\w/]+\.py)", text))
    assert {"nn/functional/geometry.py", "engines/kernel.py"} <= named
    for path in sorted(named):
        assert (ROOT / "src" / "convolve" / path).is_file(), path
