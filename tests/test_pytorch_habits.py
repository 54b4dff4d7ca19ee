"""PyTorch habits (tests/pytorch_habits.py) run unchanged after renaming the module names; the few that cannot
work fail with a message saying what to do instead. Each snippet is also run under torch, so the list holds
genuine PyTorch code. `python -m tests.test_pytorch_habits` prints the ratio that runs."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.pytorch_habits import HABITS, Habit

_IMPORT = re.compile(r"^(\s*)(import|from) torch\b(\S*)(.*)$")


def to_convolve(code: str) -> str:
    """Rename the modules in import lines only: `import torch` -> `import convolve as torch`, `torch.x` ->
    `convolve.x` (torch.utils.data is convolve.utils.data); the body stays byte for byte the same."""
    lines = []
    for line in code.splitlines():
        m = _IMPORT.match(line)
        if m:
            indent, kind, sub, rest = m.groups()
            if kind == "import" and not sub and not rest.strip().startswith("as"):
                line = f"{indent}import convolve as torch{rest}"
            else:
                line = f"{indent}{kind} convolve{sub}{rest}"
        lines.append(line)
    return "\n".join(lines)


def run(code: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "<habit>", "exec"), {"__name__": "__habit__"})


RUNNABLE = [h for h in HABITS if h.fails is None]


@pytest.mark.parametrize("habit", RUNNABLE, ids=[h.name for h in RUNNABLE])
def test_habit_is_genuine_pytorch(habit: Habit) -> None:
    run(habit.code)  # under torch itself


@pytest.mark.parametrize("habit", HABITS, ids=[h.name for h in HABITS])
def test_habit_runs_under_convolve(habit: Habit) -> None:
    code = to_convolve(habit.code)
    if habit.fails is None:
        run(code)
        return
    with pytest.raises(Exception, match=habit.fails):
        run(code)


def test_enough_habits_and_most_run_unchanged() -> None:
    runs = sum(h.fails is None for h in HABITS)
    assert len(HABITS) >= 40 and runs / len(HABITS) >= 0.9


def test_renaming_touches_import_lines_only() -> None:
    src = "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\ny = torch.zeros(1)"
    assert to_convolve(src).splitlines() == [
        "import convolve as torch", "import convolve.nn as nn", "from convolve.utils.data import DataLoader",
        "y = torch.zeros(1)"]


if __name__ == "__main__":
    ok = sum(h.fails is None for h in HABITS)
    print(f"{ok}/{len(HABITS)} habits run unchanged ({100 * ok / len(HABITS):.0f}%); "
          f"{len(HABITS) - ok} fail with a message saying what to do instead")
