"""Every code block in README.md and docs/*.md runs, so none can go stale.

Python blocks run in a fresh namespace; bash/sh blocks run as one `bash -euo pipefail` script. Both run in a
temporary folder that holds what the examples name: a tiny generated MNIST at `/path/to/mnist` (the placeholder
the docs use for the user's data folder), a `digit.png`, a `mynets.py` whose `build_model` builds "your own
model" with its weights in `weights.npz`, and `convolve` on the PATH. Install commands
(`pip install ...`) are not re-run: the suite runs after them, and CI runs them verbatim. A block preceded by
`<!-- docs-test: skip REASON -->` is not run; the reason must be given, and the list of skipped blocks is
checked below so that it cannot grow silently. The pages link only to files in the repository, never to machine
paths or notes outside it, and the accuracy figures they quote come from benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.test_data_formats import write_mnist

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"(?:<!-- docs-test: (?P<directive>[^>]*?) -->\s*\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "console": "bash"}
DATA_PLACEHOLDER = "/path/to/mnist"
ALLOWED_SKIPS = {  # (file, start of the block's first line) -> why it cannot run inside the suite
    ("README.md", 'pip install -e ".[test]" && python -m pytest'): "the test command itself",
    ("README.md", "python benchmarks/bench_ops.py"): "long benchmarks; tests/test_benchmarks.py runs their small cases",
    ("README.md", "chromium --headless"): "needs Chromium; tests/test_report.py runs it where a browser is installed",
    ("docs/inception-v2-to-v3.md", "convolve summary googlenet inception_v2"): "tests/test_docs_inception.py runs "
    "it and compares its output with the page",
    ("docs/inception-v2-to-v3.md", "import convolve as cv"): "tests/test_docs_inception.py runs it and compares "
    "its output with the page",
}

KNOWN_BROKEN: dict[str, str] = {  # first line of a block -> the open issue that fixes it (strict: a pass fails)
}


def _blocks() -> list[tuple[str, int, str, str, str | None]]:
    """(file name, line number, language, body, directive) of every fenced block with a language tag."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start("body"))
            found.append((str(path.relative_to(ROOT)), line, m["lang"], m["body"], m["directive"]))
    return found


BLOCKS = _blocks()


def _write_png(path: Path, image: np.ndarray) -> None:
    """An 8-bit grayscale PNG of `image` (H, W) uint8."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    h, w = image.shape
    rows = b"".join(b"\x00" + image[i].tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def docs_workdir(tmp_path_factory) -> Path:
    """A folder with the files the examples refer to."""
    work = tmp_path_factory.mktemp("docs")
    write_mnist(work / "mnist", n_train=64, n_test=32)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    _write_png(work / "digit.png", digit)
    (work / "mynets.py").write_text(OWN_MODEL)
    subprocess.run([sys.executable, "-c", "import convolve as cv, mynets; "
                    "cv.save(mynets.build_model().state_dict(), 'weights.npz')"],
                   cwd=work, env=_env(work), check=True)
    return work


OWN_MODEL = """import convolve.nn as nn


def build_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 14 * 14, 10))
"""


def _without_installs(script: str) -> str:
    """Drop `pip install ...` steps: the suite runs after them (CI runs them verbatim)."""
    script = re.sub(r"pip install [^\n&]*&&\s*", "", script)
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("pip install"))


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    env["CONVOLVE_DATA"] = str(work / "data")
    env["MPLBACKEND"] = "Agg"
    return env


def _id(block) -> str:
    return f"{block[0]}:{block[1]}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[2] in RUNNABLE], ids=_id)
def test_code_block_runs(block, docs_workdir):
    name, line, lang, body, directive = block
    if directive and directive.startswith("skip"):
        reason = directive[len("skip"):].strip()
        assert reason, f"{name}:{line}: a skipped block must say why"
        pytest.skip(f"{name}:{line}: {reason}")
    body = body.replace(DATA_PLACEHOLDER, str(docs_workdir / "mnist"))
    if RUNNABLE[lang] == "python":
        cmd = [sys.executable, "-c", body]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", _without_installs(body)]
    done = subprocess.run(cmd, cwd=docs_workdir, env=_env(docs_workdir), capture_output=True, text=True,
                          timeout=600)
    first = body.strip().splitlines()[0]
    if first in KNOWN_BROKEN:
        assert done.returncode != 0, f"{name}:{line} now runs: remove it from KNOWN_BROKEN"
        pytest.xfail(KNOWN_BROKEN[first])
    assert done.returncode == 0, f"{name}:{line} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_every_block_is_runnable_or_skipped_for_a_listed_reason():
    """A block without a language tag, or skipped without being listed here, fails."""
    for name, line, lang, body, directive in BLOCKS:
        if not lang:
            continue  # a plain text block (a layout sketch, a table of output)
        assert lang in RUNNABLE or lang in {"text", "json", "csv", "html"}, f"{name}:{line}: unknown language {lang!r}"
        if directive and directive.startswith("skip"):
            first = body.strip().splitlines()[0]
            assert any(name == f and first.startswith(start) for f, start in ALLOWED_SKIPS), \
                f"{name}:{line}: skipped block {first!r} is not in ALLOWED_SKIPS"


LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_pages_point_only_inside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if not target.startswith(("http://", "https://")):
            assert (path.parent / target).resolve().exists(), f"{path.name} links to missing {target}"
    for outside in ("/work/", "shared folder", "PERF_NOTES", "DESIGN.md", "/tmp/"):
        assert outside not in text, f"{path.name} mentions {outside!r}, which is not in the repository"


def test_accuracy_figures_come_from_results():
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    for path in DOC_FILES:
        for figure in re.findall(r"\b(99\.\d\d)%", path.read_text(encoding="utf-8")):
            assert f"0.{figure.replace('.', '')}" in results or f"{figure}%" in results, (path.name, figure)
