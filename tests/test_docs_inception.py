"""docs/inception-v2-to-v3.md runs as written: each `convolve ...` line of a sh block prints exactly the table
that follows the block on the page, and each Python block prints exactly the text block that follows it."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from convolve.cli import main
from tests.model_helpers import one_blas_thread  # noqa: F401 (autouse fixture)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "inception-v2-to-v3.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def blocks_with_what_follows(text: str) -> list[tuple[str, str, str]]:
    """(language, code, what the page shows after the block: a text block or a Markdown table)."""
    found = []
    for match in FENCE.finditer(text):
        after = text[match.end():].lstrip("\n")
        shown = ""
        if after.startswith("```text\n"):
            shown = after[len("```text\n"):after.index("```", len("```text\n"))]
        elif after.startswith("|"):
            shown = "".join(line + "\n" for line in after.splitlines() if line.startswith("|") or not line)
            shown = shown.split("\n\n")[0] + "\n"
        found.append((match.group(1), match.group(2), shown))
    return found


def test_every_block_of_the_page_runs_and_prints_what_the_page_shows() -> None:
    blocks = blocks_with_what_follows(PAGE.read_text())
    assert [lang for lang, _, _ in blocks] == ["sh", "python", "text"]
    for lang, code, shown in blocks:
        if lang == "text":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if lang == "sh":
                for line in code.replace("\\\n", " ").splitlines():
                    assert line.startswith("convolve "), line
                    assert main(shlex.split(line)[1:]) == 0, line
            else:
                exec(compile(code, str(PAGE), "exec"), {})
        assert out.getvalue() == shown, f"the page shows\n{shown}\nbut the {lang} block printed\n{out.getvalue()}"
