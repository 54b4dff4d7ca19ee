"""`convolve report` (a 1-epoch digits run, rendered in headless Chromium: loads, no console errors, screenshot not
blank; skipped with the reason where no browser exists) and the README's "Learn with it" section: the explain
output shown is what the command prints, the animation command reproduces docs/animate-conv.gif, and the
screenshot command (skipped by tests/test_docs.py, which runs the other blocks) is run here on the report."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from convolve import models
from convolve.cli import main
from convolve.viz.report import write_report
from tests.browser import FLAGS, find_browser, render

ROOT = Path(__file__).resolve().parents[1]
BROWSER = find_browser()
NO_BROWSER = "no Chromium-family browser installed (Debian: apt-get install chromium; CI installs it)"
PIL = pytest.importorskip("PIL.Image", reason="needs Pillow")


def learn_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the README's 'Learn with it' section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Learn with it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def readme_commands(program: str) -> list[list[str]]:
    """The argv of every `program ...` command in the section's bash blocks (lines split at &&)."""
    found = []
    for lang, body in learn_blocks():
        for line in body.strip().splitlines() if lang == "bash" else []:
            found += [shlex.split(c) for c in line.split("&&") if shlex.split(c)[0] == program]
    return found


def convolve(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0, argv
    return out.getvalue()


@contextlib.contextmanager
def inside(folder: Path):
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A scratch folder with runs/digits (1 epoch) and runs/digits/report.html (2 test images)."""
    cwd = tmp_path_factory.mktemp("report")
    with inside(cwd):
        trained = convolve("train", "--epochs", "1", "--out", "runs/digits", "--no-progress")
        convolve("report", "runs/digits", "--out", "runs/digits/report.html", "--num-images", "2")
    return cwd, re.search(r"test accuracy: (\d\.\d+)", trained).group(1)


def test_readme_explain_block_is_what_the_command_prints():
    (argv,) = [a for a in readme_commands("convolve") if a[1] == "explain"]
    shown = [body for lang, body in learn_blocks() if lang == "text"]
    assert len(shown) == 1 and convolve(*argv[1:]) == shown[0]


def test_readme_animation_is_reproduced(tmp_path):
    (argv,) = [a for a in readme_commands("convolve") if a[1:3] == ["visualize", "animate"]]
    with inside(tmp_path):
        convolve(*argv[1:])
    with PIL.open(tmp_path / "docs" / "animate-conv.gif") as made, \
            PIL.open(ROOT / "docs" / "animate-conv.gif") as kept:
        assert (made.n_frames, made.size) == (kept.n_frames, kept.size) and kept.n_frames == 26
    for name in ("animate-conv.gif", "report.png"):
        assert (ROOT / "docs" / name).stat().st_size < 200_000


def test_report_page_is_self_contained(run):
    cwd, accuracy = run
    page = (cwd / "runs" / "digits" / "report.html").read_text()
    assert f"test accuracy {accuracy}" in page
    for heading in ("Recipe", "Model: DigitsCNN", "Training curves", "Confusion matrix", "First-layer filters",
                    "Test image 1", "Receptive field"):
        assert heading in page, heading
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("data:") for r in refs)
    assert "<script" not in page and "http" not in page
    assert page.count("<img ") == 3 + 3 * 2 + 1  # curves, confusion, filters; 3 per test image; receptive field


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_report_renders_in_chromium_without_errors(run):
    cwd, _ = run
    page = render((cwd / "runs" / "digits" / "report.html").as_uri(), width=1000, height=1300)
    assert page.loaded and page.errors == []
    _assert_not_blank(page.screenshot)


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_readme_screenshot_command(run, tmp_path):
    """The README's chromium line, run as shown (plus a private profile and no background services)."""
    cwd, _ = run
    (argv,) = readme_commands("chromium")
    isolation = [f for f in FLAGS if f != "--remote-debugging-pipe"] + [f"--user-data-dir={tmp_path}"]
    (cwd / "docs").mkdir(exist_ok=True)
    subprocess.run([BROWSER, *argv[1:], *isolation], cwd=cwd, timeout=120, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    shot = cwd / "docs" / "report.png"
    with PIL.open(shot) as im:
        assert im.size == (1000, 1300)
    _assert_not_blank(shot.read_bytes())


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_the_browser_check_catches_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body><p>x</p>'
                   '<img src="missing.png"><script>console.error("boom"); notDefined();</script></body></html>')
    page = render(bad.as_uri(), width=400, height=300)
    text = "\n".join(page.errors)
    assert page.loaded and "boom" in text and "notDefined" in text and "missing.png" in text


def _assert_not_blank(png: bytes) -> None:
    with PIL.open(io.BytesIO(png)) as im:
        gray = im.convert("L")
        hist = gray.histogram()
        non_white = sum(hist[:240]) / (gray.width * gray.height)
        assert len(im.convert("RGB").getcolors(1 << 20) or []) > 50 and non_white > 0.05, non_white


def test_report_arguments(tmp_path):
    model = models.get_model("digits_cnn")
    with pytest.raises(ValueError, match=r"must end in \.html"):
        write_report(tmp_path / "r.pdf", model, [])
    with pytest.raises(ValueError, match="`num_images` must be a positive int"):
        write_report(tmp_path / "r.html", model, [], num_images=0)
    with pytest.raises(ValueError, match="`dpi` must be an int >= 20"):
        write_report(tmp_path / "r.html", model, [], dpi=5)


def test_report_of_a_missing_run_is_one_line(capsys, tmp_path):
    code = main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
