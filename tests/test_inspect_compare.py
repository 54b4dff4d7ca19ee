"""`inspect.compare`: each row's totals equal its own `summary()`, differences are to the row above, bad input is
refused with the argument named."""

from __future__ import annotations

import pytest

import convolve.models as M
from convolve.inspect import compare, summary


def test_rows_are_summaries_and_differences_are_to_the_previous_row() -> None:
    models = [("lenet5", M.lenet5()), ("relu", M.lenet5(activation="relu", partial_c3=True)),
              ("digits", M.digits_cnn())]
    result = compare(models)
    for row, (label, model) in zip(result.rows, models):
        s = summary(model)
        assert (row.label, row.input_size, row.params, row.macs) == (label, model.input_size, s.total_params,
                                                                     s.total_macs)
    lines = str(result).splitlines()
    assert len(lines) == 2 + len(models)
    second, third = result.rows[1], result.rows[2]
    assert f"| {third.params - second.params:+,} |" in lines[4] and f"| {third.macs - second.macs:+,} |" in lines[4]
    assert lines[4].endswith(f"| {third.macs / result.rows[0].macs:.2f}x |")
    small = compare([("resnet20", M.resnet20()), ("resnet20 again", M.resnet20())], input_size=(3, 16, 16))
    assert [r.input_size for r in small.rows] == [(3, 16, 16)] * 2
    assert small.rows[0].macs == summary(M.resnet20(), (3, 16, 16)).total_macs


@pytest.mark.parametrize(("models", "error", "match"), [
    ([], ValueError, "`models` must be a non-empty sequence of \\(label, model\\) pairs, got \\[\\]"),
    ("lenet5", ValueError, "`models` must be a non-empty sequence"),
    ([M.lenet5()], TypeError, r"`models\[0\]` must be a \(label, model\) pair"),
    ([("a", M.lenet5()), (1, M.lenet5())], TypeError, r"`models\[1\]` must be a \(label, model\) pair"),
])
def test_bad_input(models, error, match) -> None:
    with pytest.raises(error, match=match):
        compare(models)
