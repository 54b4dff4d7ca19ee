"""Progress bars: shown by default on a terminal and in a Jupyter kernel, the notebook widget at full width."""

from __future__ import annotations

import io
import sys
import types

import pytest

from convolve.train import progress


class ZMQInteractiveShell:  # the class name IPython's Jupyter kernel shell has
    pass


@pytest.fixture()
def notebook(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", fake)


def test_shown_by_default_in_a_notebook_not_in_a_log(monkeypatch, notebook):
    assert progress.in_notebook()
    assert progress.progress_enabled(None, io.StringIO())  # Jupyter's stderr is not a terminal
    assert not progress.progress_enabled(False, io.StringIO())


def test_hidden_by_default_when_not_a_terminal():
    assert not progress.in_notebook()
    assert not progress.progress_enabled(None, io.StringIO())
    assert progress.progress_enabled(True, io.StringIO())


def test_the_notebook_widget_spans_the_cell(monkeypatch, notebook):
    tqdm_notebook = pytest.importorskip("tqdm.notebook").tqdm_notebook
    made = {}

    class Widget(tqdm_notebook):
        def __init__(self, **kwargs):  # record what the bar is asked for, draw nothing
            made.update(kwargs)

        def __del__(self):
            pass

    monkeypatch.setattr("tqdm.auto.tqdm", Widget)
    progress.make_bar(10, "epoch 1/2")
    assert made["ncols"] == "100%" and made["total"] == 10


def test_a_terminal_bar_is_as_wide_as_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    stream = io.StringIO()
    bar = progress.make_bar(3, "epoch 1/1", stream)
    bar.update(1)
    bar.close()
    assert bar.ncols == 120 and "epoch 1/1" in stream.getvalue()
