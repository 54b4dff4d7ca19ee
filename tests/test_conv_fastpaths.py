"""Every conv2d kernel of the "fast" engine forced on, against PyTorch (forward and every gradient, float64, float32).

The "fast" engine picks a kernel per layer (`convolve.engines.policy`): SmallConv2d (NCHW-native im2col, few
channels or 1x1), GemmConv2d (channels-last im2col + GEMM; its stride-1 input gradient is either a flipped-filter
convolution or col2im) and DepthwiseConv2d (shifted multiply-add). Each test below runs one kernel on every call it
supports, so that every path is checked on the whole hypothesis sweep of configurations, with tiny chunks and
worker threads as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.engines import workspace
from convolve.engines.depthwise import DepthwiseConv2d
from convolve.engines.gemm_nhwc import GemmConv2d
from convolve.engines.policy import policy
from convolve.engines.small_nchw import SmallConv2d
from convolve.nn.functional.conv import Conv2dFunction
from tests.engine_helpers import forced
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(1)
SWEEP = settings(max_examples=25, deadline=None)


class AlwaysFlipped(GemmConv2d):
    """Every stride-1 layer: dX = conv(dY, flipped W)."""

    flipped_min_channels = 1


class NeverFlipped(GemmConv2d):
    """Never flipped: dX = col2im(dY @ W^T)."""

    flipped_min_channels = 10**9


@st.composite
def cases(draw, depthwise=False, groups_max=3):
    """(x, w, b, kwargs, dtype): stride, dilation, int/tuple/'same'/'valid' padding, odd and even kernels."""
    n = draw(st.integers(1, 3))
    if depthwise:
        groups, c_g, k_g = draw(st.integers(2, 5)), 1, draw(st.integers(1, 2))
    else:
        groups, c_g, k_g = draw(st.integers(1, groups_max)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if padding == "int":
        padding = draw(st.integers(0, 3))
    elif padding == "tuple":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilation))
    x = rng.standard_normal((n, groups * c_g, *spatial))
    w = rng.standard_normal((groups * k_g, c_g, *kernel))
    b = rng.standard_normal(groups * k_g) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kwargs, draw(st.sampled_from(DTYPES))


def _check(case):
    x, w, b, kwargs, dtype = case
    if b is None:
        compare_with_torch(lambda a, c: F.conv2d(a, c, **kwargs), lambda a, c: TF.conv2d(a, c, **kwargs), [x, w], dtype)
    else:
        compare_with_torch(lambda a, c, d: F.conv2d(a, c, d, **kwargs), lambda a, c, d: TF.conv2d(a, c, d, **kwargs),
                           [x, w, b], dtype)


def chosen(c, weight_shape, groups, stride=(1, 1), dilation=(1, 1)):
    """The kernel the "fast" engine picks for a conv2d of this geometry."""
    x, w = np.empty((1, c, 9, 9)), np.empty(weight_shape)
    with cv.use_engine("fast"):
        return policy.select(Conv2dFunction, x, w, None, stride=stride, padding=((1, 1), (1, 1)), dilation=dilation,
                             groups=groups)


@SWEEP
@given(cases(groups_max=1))
def test_small_channel_path(case):
    with forced(SmallConv2d):
        _check(case)


@SWEEP
@given(cases())
def test_gemm_path_with_flipped_filter_input_gradient(case):
    with forced(AlwaysFlipped):
        _check(case)


@SWEEP
@given(cases())
def test_gemm_path_with_col2im_input_gradient(case):
    with forced(NeverFlipped):
        _check(case)


@SWEEP
@given(cases(depthwise=True))
def test_depthwise_path(case):
    stride = case[3]["stride"]
    square = stride[0] == stride[1]
    assert (chosen(case[0].shape[1], case[1].shape, case[3]["groups"], stride) is DepthwiseConv2d) == square
    with forced(DepthwiseConv2d, GemmConv2d):
        _check(case)


@SWEEP
@given(cases(depthwise=True))
def test_depthwise_layers_through_the_gemm_path(case):
    with forced(GemmConv2d):
        _check(case)


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1), dict(stride=3, dilation=(2, 1), padding=(0, 2)),
                                    dict(padding="same", dilation=2)])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_flat_grid_strides_dilations_multipliers(kwargs, multiplier):
    """The flat-grid taps: square strides, unequal dilations, asymmetric padding, depth multiplier."""
    x, w = rng.standard_normal((2, 3, 9, 11)), rng.standard_normal((3 * multiplier, 1, 3, 2))
    assert chosen(3, w.shape, 3, (2, 2)) is DepthwiseConv2d
    with forced(DepthwiseConv2d):
        for dtype in DTYPES:
            _check((x, w, rng.standard_normal(3 * multiplier), dict(kwargs, groups=3), dtype))


@pytest.mark.parametrize("kernel", [SmallConv2d, AlwaysFlipped, NeverFlipped, DepthwiseConv2d])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_tiny_chunks_on_worker_threads(monkeypatch, kernel, threads):
    """One image per chunk, chunks spread over threads: per-thread buffers and dW partial sums add up."""
    monkeypatch.setattr(workspace, "COLS_BUDGET_BYTES", 1)
    groups = 4 if kernel is DepthwiseConv2d else 1
    x, w, b = rng.standard_normal((7, 4, 9, 8)), rng.standard_normal((8, 4 // groups, 3, 3)), rng.standard_normal(8)
    cv.set_num_threads(threads)
    try:
        with forced(kernel):
            for kwargs in (dict(padding=1), dict(stride=2, padding=(2, 0), dilation=(1, 2))):
                _check((x, w, b, dict(kwargs, groups=groups), np.float64))
    finally:
        cv.set_num_threads(None)


def test_kernels_are_chosen_as_documented():
    assert chosen(1, (6, 1, 5, 5), 1) is SmallConv2d  # LeNet C1
    assert chosen(3, (64, 3, 3, 3), 1) is SmallConv2d  # RGB input layer
    assert chosen(64, (64, 64, 3, 3), 1) is GemmConv2d
    assert chosen(64, (64, 1, 3, 3), 64) is DepthwiseConv2d
    assert chosen(64, (128, 1, 3, 3), 64) is DepthwiseConv2d  # depth multiplier 2
    assert chosen(4, (4, 2, 3, 3), 2) is GemmConv2d  # grouped, not depthwise
    assert chosen(128, (64, 128, 1, 1), 1) is SmallConv2d  # 1x1: the image is its column matrix
    with cv.use_engine("reference"):
        assert policy.select(Conv2dFunction, np.empty((1, 3, 5, 5)), np.empty((4, 3, 3, 3)), None, stride=(1, 1),
                             padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1) is Conv2dFunction


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2), dict(padding=1), dict(stride=(1, 2), padding=(0, 1))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_1x1_convolutions(kwargs, dtype):
    """1x1 stride 1 unpadded: no im2col copy, dX = W^T @ dY; strided/padded 1x1 take the gather + col2im."""
    x, w, b = rng.standard_normal((3, 12, 5, 6)), rng.standard_normal((7, 12, 1, 1)), rng.standard_normal(7)
    assert chosen(12, w.shape, 1) is SmallConv2d
    _check((x, w, b, kwargs, dtype))
    _check((x, w, None, kwargs, dtype))


@pytest.mark.parametrize("kernel, c", [(SmallConv2d, 3), (GemmConv2d, 16), (DepthwiseConv2d, 16), (SmallConv2d, 16)])
def test_dtype_and_contiguity_are_kept(kernel, c):
    for dtype in (np.float32, np.float64):
        x = cv.tensor(rng.standard_normal((2, c, 5, 5)).astype(dtype), requires_grad=True)
        shape = {DepthwiseConv2d: (c, 1, 3, 3), SmallConv2d: (4, c, 1, 1)}.get(kernel, (4, c, 3, 3))
        w = cv.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
        groups = c if kernel is DepthwiseConv2d else 1
        assert chosen(c, w.shape, groups) is kernel
        y = F.conv2d(x, w, padding=1, groups=groups)
        y.sum().backward()
        assert y.dtype == dtype and x.grad.dtype == dtype and w.grad.dtype == dtype
        assert y.data.flags.c_contiguous and x.grad.data.flags.c_contiguous


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="set_num_threads: `n` must be a positive int or None, got 0"):
        cv.set_num_threads(0)
    with pytest.raises(ValueError, match="positive int or None, got True"):
        cv.set_num_threads(True)


def test_small_gemms_outside_the_chunks_run_on_one_blas_thread():
    """Linear layers' GEMMs below BLAS_THREADING_MIN_MACS hold OpenBLAS to one thread (and restore it)."""
    from threadpoolctl import threadpool_limits

    if workspace._BLAS is None:
        pytest.skip("OpenBLAS not found: nothing to hold")
    with threadpool_limits(limits=2):
        with workspace.blas_threads_for(workspace.BLAS_THREADING_MIN_MACS - 1):
            assert workspace.blas_threads() == 1
        assert workspace.blas_threads() == 2
        with workspace.blas_threads_for(workspace.BLAS_THREADING_MIN_MACS):
            assert workspace.blas_threads() == min(2, workspace.get_num_threads())
        assert workspace.blas_threads() == 2


def test_every_kernel_runs_with_openblas_on_one_thread(monkeypatch):
    """Each kernel's forward and backward hold OpenBLAS to one thread, and restore the user's setting after.

    An OpenBLAS call spread over its threads leaves them spinning on the cores convolve's chunk threads need
    (Winograd's filter transforms slowed the VGG step at 2 threads by a quarter); big GEMMs still get threads.
    """
    from threadpoolctl import threadpool_limits

    from convolve.engines import winograd

    if workspace._BLAS is None:
        pytest.skip("OpenBLAS not found: nothing to hold")
    seen: list[tuple[int, int, int]] = []
    transform = winograd._sandwich

    def watched(m: np.ndarray, arr: np.ndarray) -> np.ndarray:
        with workspace.blas_threads_for(workspace.BLAS_THREADING_MIN_MACS):  # a GEMM that asks for threads
            granted = workspace.blas_threads()
        seen.append((workspace.blas_threads(), workspace.get_num_threads(), granted))
        return transform(m, arr)

    monkeypatch.setattr(winograd, "_sandwich", watched)
    monkeypatch.setattr(workspace, "_override", None)
    x = cv.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w = cv.tensor(rng.standard_normal((5, 4, 3, 3)), requires_grad=True)
    with threadpool_limits(limits=2), forced(winograd.WinogradConv2d):
        F.conv2d(x, w, padding=1).sum().backward()
        assert workspace.blas_threads() == 2
    assert len(seen) == 3  # forward, dX and dW transforms
    assert set(seen) == {(1, 2, 2)}  # held to 1; convolve still uses the user's 2 threads; big GEMMs get 2


@pytest.mark.parametrize("kernel", sorted(set(policy.kernels("fast")) | set(policy.kernels("numpy")),
                                          key=lambda k: k.__qualname__), ids=lambda k: k.__qualname__)
def test_every_registered_kernel_holds_openblas(kernel):
    """The hold above comes from the `Kernel` base class: every registered kernel's forward and backward have it."""
    from convolve.engines.kernel import Kernel

    assert issubclass(kernel, Kernel)
    for method in (kernel.forward, kernel.backward):
        function = getattr(method, "__func__", method)  # class methods are bound
        assert getattr(function, "__wrapped__", None) is not None, method


def test_openblas_holds_nest_and_restore():
    from threadpoolctl import threadpool_limits

    if workspace._BLAS is None:
        pytest.skip("OpenBLAS not found: nothing to hold")
    with threadpool_limits(limits=2):
        with workspace.one_blas_thread():
            with workspace.one_blas_thread():
                assert workspace.blas_threads() == 1
            assert workspace.blas_threads() == 1
        assert workspace.blas_threads() == 2
        with pytest.raises(RuntimeError), workspace.one_blas_thread():
            raise RuntimeError("restored even on an error")
        assert workspace.blas_threads() == 2


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_guided_chunks_cover_the_batch_and_shrink(monkeypatch, threads):
    """Each chunk is 1/(2T) of what is left (at least 2): in order, no gap or overlap, never growing."""
    monkeypatch.setattr(workspace, "_override", threads)
    for n in range(0, 300):
        chunks = workspace.guided_chunks(n)
        assert [i for c in chunks for i in range(c.start, c.stop)] == list(range(n))
        sizes = [c.stop - c.start for c in chunks]
        assert sizes == sorted(sizes, reverse=True)
        assert all(size == max(2, -(-(n - c.start) // (2 * threads))) for c, size in zip(chunks[:-1], sizes))


def test_guided_chunks_of_a_batch_of_128():
    """What the direct convolution hands out at batch 128 (written out: 13 chunks on 2 threads, not 16 of 8)."""
    cv.set_num_threads(2)
    try:
        assert [c.stop - c.start for c in workspace.guided_chunks(128)] == [32, 24, 18, 14, 10, 8, 6, 4, 3, 3, 2, 2, 2]
        cv.set_num_threads(1)
        assert [c.stop - c.start for c in workspace.guided_chunks(128)] == [64, 32, 16, 8, 4, 2, 2]
    finally:
        cv.set_num_threads(None)


def test_first_come_chunks_each_run_once(monkeypatch):
    monkeypatch.setattr(workspace, "_override", 2)
    seen: list[int] = []
    chunks = [slice(i, i + 1) for i in range(40)]
    spaces = workspace.run_chunks(lambda c, ws: (seen.append(c.start), ws.append(c.start)), chunks, list,
                                 first_come=True)
    assert sorted(seen) == list(range(40))
    assert sorted(x for ws in spaces for x in ws) == list(range(40))  # each chunk used one thread's workspace


def test_sums_over_first_come_chunks_do_not_depend_on_the_threads(monkeypatch):
    """Each chunk's partial sum is added in chunk order, whichever thread ran it (threads scrambled by sleeps)."""
    import time

    monkeypatch.setattr(workspace, "_override", 2)
    values = (rng.standard_normal((40, 7)) * 10.0 ** rng.integers(-6, 6, (40, 1))).astype(np.float32)
    chunks = [slice(i, i + 2) for i in range(0, 40, 2)]
    expected = np.zeros(7, np.float32)
    for chunk in chunks:
        expected += values[chunk].sum(axis=0)
    for trial in range(5):
        delays = np.random.default_rng(trial).uniform(0, 2e-3, len(chunks))

        def task(chunk: slice, partial: np.ndarray, _: None, delays: np.ndarray = delays) -> None:
            time.sleep(delays[chunk.start // 2])  # GIL released: the other thread takes the next chunks
            partial += values[chunk].sum(axis=0)

        got = workspace.sum_over_chunks(task, chunks, lambda: None, (7,), np.float32)
        np.testing.assert_array_equal(got, expected)


def test_threaded_weight_gradients_are_bit_reproducible(monkeypatch):
    """Partial sums of dW (per chunk, or per thread over a fixed share of chunks) are always added alike."""
    monkeypatch.setattr(workspace, "COLS_BUDGET_BYTES", 1)
    x = cv.tensor(rng.standard_normal((23, 16, 7, 7)).astype(np.float32))
    grads = []
    cv.set_num_threads(3)
    try:
        for _ in range(4):
            w = cv.tensor(np.linspace(-1, 1, 16 * 16 * 9, dtype=np.float32).reshape(16, 16, 3, 3), requires_grad=True)
            F.conv2d(x, w, padding=1).sum().backward()
            grads.append(w.grad.numpy())
    finally:
        cv.set_num_threads(None)
    assert all(np.array_equal(grads[0], g) for g in grads[1:])
