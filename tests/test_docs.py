"""Every code block of README.md and docs/*.md, so none can go stale.

Python blocks run as they are (in a scratch folder). Shell blocks are checked command by command: every
`convolve ...` line is parsed by the real argument parser (so each subcommand, option and value exists), and the
quick ones (the digits training, the zoo listing, summaries, predict/evaluate/visualize of a model of your own)
run for real; long trainings on MNIST are parsed, not rerun. `pip install` lines must name extras that exist,
and scripts named in `python ...` lines must exist. Links to files must point inside the repository.
"""

from __future__ import annotations

import re
import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import convolve as cv
from convolve.cli import main
from convolve.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
RUN_FOR_REAL = {"models", "datasets"}  # plus the cases handled in `_run_convolve`


def blocks(lang: tuple[str, ...]) -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            if m.group(1) in lang:
                found.append((f"{page.relative_to(ROOT)}#{i}", i, m.group(2)))
    return found


PYTHON = blocks(("python",))
SHELL = blocks(("bash", "sh"))


def test_every_page_has_its_blocks_covered():
    langs = {m.group(1) for page in PAGES for m in BLOCK.finditer(page.read_text())}
    assert langs <= {"python", "bash", "sh", ""}, f"a code block of an unchecked language: {langs}"
    assert len(PYTHON) >= 5 and len(SHELL) >= 5


@pytest.mark.parametrize(("where", "index", "code"), PYTHON, ids=[b[0] for b in PYTHON])
def test_python_block_runs(where, index, code, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    cv.manual_seed(0)
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})


def commands(code: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, comments dropped, `a && b` split, $VARs set."""
    joined = code.replace("\\\n", " ")
    env: dict[str, str] = {}
    out = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            words = shlex.split(part)
            if len(words) == 1 and "=" in words[0] and not words[0].startswith("-"):
                key, value = words[0].split("=", 1)
                env[key] = value
                continue
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value command
                words = words[1:]
            out.append([re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), w) for w in words])
    return out


def _extras() -> set[str]:
    """The names of pyproject.toml's optional-dependencies (read without tomllib, which Python 3.10 lacks)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^(\w+)\s*=", section, re.M))


OWN_MODEL = textwrap.dedent("""
    import convolve.nn as nn

    def build_model():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 14 * 14, 10))
""")


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    """A folder with the files the README's commands name: mynets.py, its weights, a digit image."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "mynets.py").write_text(OWN_MODEL)
    namespace: dict[str, object] = {}
    exec(OWN_MODEL, namespace)
    cv.save(namespace["build_model"]().state_dict(), tmp_path / "weights.npz")
    from convolve.cli.images import write_png

    write_png(tmp_path / "digit.png", np.zeros((28, 28), np.uint8))
    yield tmp_path
    sys.modules.pop("mynets", None)


def _check_command(words: list[str], capsys) -> None:
    tool, args = words[0], words[1:]
    if tool == "pip":
        assert args[0] == "install", words
        for target in args[1:]:
            extras = re.findall(r"\[([\w,]+)\]", target)
            for extra in ",".join(extras).split(",") if extras else []:
                assert extra in _extras(), f"pip extra {extra!r} is not in pyproject.toml"
        return
    if tool == "python":
        if args[:2] == ["-m", "pytest"]:
            return  # this very suite
        assert (ROOT / args[0]).is_file(), f"{args[0]} does not exist"
        return
    assert tool == "convolve", f"unchecked shell command in the docs: {words}"
    if args == ["--version"]:
        return
    parsed = build_parser().parse_args([a for a in args if a != "--debug"])
    if parsed.command in RUN_FOR_REAL or _quick(args):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 0, f"`{shlex.join(words)}` failed: {err}"


def _quick(args: list[str]) -> bool:
    """Commands cheap enough to run in the suite: the default digits training, summaries of small inputs, and
    everything done with the README's own-model example (mnist replaced by the bundled digits shape)."""
    if args == ["train"]:
        return True
    if args[0] == "summary":
        return "vgg16" not in args
    return "mynets:build_model" in args and "mnist" not in args


@pytest.mark.parametrize(("where", "index", "code"), SHELL, ids=[b[0] for b in SHELL])
def test_shell_block_commands_are_valid(where, index, code, scratch, capsys):
    pytest.importorskip("matplotlib")
    for words in commands(code):
        _check_command(words, capsys)


def test_own_model_commands_run_on_a_matching_dataset(scratch, capsys):
    """The README's own-model lines, on data this suite has offline: 28x28 test images generated as MNIST files."""
    from tests.test_data_formats import write_mnist

    data_dir = scratch / "mnist"
    write_mnist(data_dir)
    readme = (ROOT / "README.md").read_text()
    lines = [w for code in (m.group(2) for m in BLOCK.finditer(readme)) for w in commands(code)
             if "mynets:build_model" in w]
    assert len(lines) == 3
    for words in lines:
        args = [*words[1:], "--data-dir", str(data_dir)] if words[1] != "predict" else words[1:]
        code = main(args)
        _, err = capsys.readouterr()
        assert code == 0, f"`{shlex.join(words)}` failed: {err}"


LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_and_paths_stay_inside_the_repository(page):
    text = page.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        assert (page.parent / target).resolve().exists(), f"{page.name} links to missing {target}"
    for forbidden in ("/work/", "shared folder", "PERF_NOTES", "DESIGN.md", "/tmp/"):
        assert forbidden not in text, f"{page.name} mentions {forbidden!r}"


def test_accuracy_figures_come_from_results():
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    for page in PAGES:
        for figure in re.findall(r"\b(99\.\d\d)%", page.read_text()):
            assert f"0.{figure.replace('.', '')}" in results or f"{figure}%" in results, (page.name, figure)
