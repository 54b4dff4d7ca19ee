"""`convolve report` and the README's "Learn with it" section: its code blocks are run as shown (in a scratch
folder), the explain output must be what the command prints, and the report page is rendered in headless
Chromium (loads, no console errors, screenshot not blank; skipped with the reason where no browser exists)."""

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


def _run_line(line: str, cwd: Path, profile: Path) -> str:
    """Run one shell line of `convolve ...` / `chromium ...` commands joined by &&; returns convolve's stdout."""
    out = io.StringIO()
    for command in line.split("&&"):
        argv = shlex.split(command)
        if argv[0] == "convolve":
            with contextlib.redirect_stdout(out):
                assert main(argv[1:]) == 0, command
        elif argv[0] == "chromium":
            if BROWSER is None:
                continue
            isolation = [f for f in FLAGS if f != "--remote-debugging-pipe"] + [f"--user-data-dir={profile}"]
            subprocess.run([BROWSER, *argv[1:], *isolation], cwd=cwd, timeout=120, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            raise AssertionError(f"unexpected command in the README: {command}")
    return out.getvalue()


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """Run the section's bash blocks in a scratch folder; returns (folder, [stdout of each bash block])."""
    cwd = tmp_path_factory.mktemp("readme")
    profile = tmp_path_factory.mktemp("browser-profile")
    outputs = []
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for lang, body in learn_blocks():
            if lang == "bash":
                outputs.append("".join(_run_line(line, cwd, profile) for line in body.strip().splitlines()))
    finally:
        os.chdir(old)
    return cwd, outputs


def test_readme_explain_block_is_what_the_command_prints(readme):
    _, outputs = readme
    shown = [body for lang, body in learn_blocks() if lang == "text"]
    assert len(shown) == 1 and outputs[0] == shown[0]


def test_readme_animation_is_reproduced(readme):
    cwd, _ = readme
    with PIL.open(cwd / "docs" / "animate-conv.gif") as made, PIL.open(ROOT / "docs" / "animate-conv.gif") as kept:
        assert (made.n_frames, made.size) == (kept.n_frames, kept.size) == (26, kept.size)
    for name in ("animate-conv.gif", "report.png"):
        assert (ROOT / "docs" / name).stat().st_size < 200_000


def test_report_page_is_self_contained(readme):
    cwd, outputs = readme
    page = (cwd / "runs" / "digits" / "report.html").read_text()
    accuracy = re.search(r"test accuracy: (\d\.\d+)", outputs[1]).group(1)
    assert f"test accuracy {accuracy}" in page
    for heading in ("Recipe", "Model: DigitsCNN", "Training curves", "Confusion matrix", "First-layer filters",
                    "Test image 2", "Receptive field"):
        assert heading in page, heading
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("data:") for r in refs)
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count("<img ") == 3 + 3 * 3 + 1  # curves, confusion, filters; 3 per test image; receptive field


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_report_renders_in_chromium_without_errors(readme):
    cwd, _ = readme
    page = render((cwd / "runs" / "digits" / "report.html").as_uri(), width=1000, height=1300)
    assert page.loaded and page.errors == []
    _assert_not_blank(page.screenshot)


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_readme_screenshot_command(readme):
    cwd, _ = readme
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
