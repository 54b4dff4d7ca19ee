"""The compiled (Numba) kernels of the "fast" engine equal the NumPy engine and reference (float64 tight, float32
1e-5 relative) and PyTorch; seeded runs are bit-reproducible; convolve imports and runs without Numba."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn.functional as F
from convolve.engines import compiled
from convolve.engines.policy import DIRECT_CONV, FAST_KERNELS, policy
from convolve.engines.workspace import set_num_threads
from tests.oracle import compare_with_torch

pytest.importorskip("numba", reason="the compiled kernels need numba (a dependency of convolve)")

REF_TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def _forward_backward(fn, x: np.ndarray, params: tuple[np.ndarray, ...] = ()) -> list[np.ndarray]:
    """Output and the gradient of x and of each param for a fixed random upstream gradient."""
    tensors = [cv.tensor(a.copy(), requires_grad=True) for a in (x, *params)]
    y = fn(*tensors)
    upstream = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    y.backward(cv.tensor(upstream))
    return [y.numpy(), *(t.grad.numpy() for t in tensors)]


def _assert_engines_equal(fn, x: np.ndarray, params: tuple[np.ndarray, ...] = (), exact: bool = False,
                          engine: str = "fast") -> None:
    """The kernel and the reference give the same output and gradients: bit for bit (`exact`), within 1e-12 in
    float64, and in float32 within 1e-5 relative, or no further from the float64 result than the reference is
    (a float32 sum over thousands of values, e.g. dW of batch norm, cancels: both carry that rounding)."""
    with cv.use_engine(engine):
        ours = _forward_backward(fn, x, params)
    with cv.use_engine("numpy"):
        ref = _forward_backward(fn, x, params)
        truth = _forward_backward(fn, x.astype(np.float64), tuple(p.astype(np.float64) for p in params))
    for i, (a, b, t) in enumerate(zip(ours, ref, truth)):
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=f"result {i}")
        elif x.dtype == np.float64 or np.allclose(a, b, equal_nan=True, **REF_TOL[x.dtype.type]):
            np.testing.assert_allclose(a, b, **REF_TOL[x.dtype.type], err_msg=f"result {i}")
        else:
            ours_err, ref_err = np.max(np.abs(a - t)), np.max(np.abs(b - t))
            assert ours_err <= 2 * ref_err, f"result {i}: error {ours_err:.3g} vs the reference's {ref_err:.3g}"


def _compiled(kernel: type) -> bool:
    """Whether the policy chose one of the compiled kernels."""
    return kernel.__module__ == "convolve.engines.compiled.kernels"


@pytest.fixture(autouse=True)
def _kernels_at_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test tensors take the kernels too (by default they stay below MIN_ELEMENTS, on the reference)."""
    monkeypatch.setattr(compiled, "MIN_ELEMENTS", -1)


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request: pytest.FixtureRequest) -> type:
    return request.param


def test_the_kernels_are_selected_only_for_calls_they_support() -> None:
    from convolve.nn.functional.activation import ReLUFunction
    from convolve.nn.functional.norm import BatchNormFunction

    x = cv.tensor(np.ones((2, 3, 4, 4), np.float32))
    with cv.use_engine("fast"):
        assert policy.select(ReLUFunction, x).__name__ == "CompiledReLU"
        assert not _compiled(policy.select(ReLUFunction, x.permute(0, 3, 1, 2)))  # not contiguous
        assert not _compiled(policy.select(BatchNormFunction, x, None, None, training=False))
    with cv.use_engine("numpy"):
        assert not _compiled(policy.select(ReLUFunction, x))
    with cv.use_engine("reference"):
        assert not _compiled(policy.select(ReLUFunction, x))  # the reference engine runs plain NumPy


def test_small_tensors_stay_on_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    from convolve.nn.functional.activation import ReLUFunction

    monkeypatch.setattr(compiled, "MIN_ELEMENTS", 1000)
    with cv.use_engine("fast"):
        assert not _compiled(policy.select(ReLUFunction, cv.tensor(np.ones(1000, np.float32))))
        assert _compiled(policy.select(ReLUFunction, cv.tensor(np.ones(1001, np.float32))))


def test_compiled_col2im_follows_the_engine() -> None:
    """The NumPy conv kernels add their columns with the compiled loop only under an engine that lists compiled
    kernels: "fast" does, "numpy" and "reference" do not."""
    dx = np.zeros((2, 4, 4, 3), np.float32)
    with cv.use_engine("fast"):
        assert compiled.col2im_loop("nhwc", dx) is compiled.compiled_loops().col2im_nhwc_add
        assert compiled.col2im_loop("nchw", dx) is compiled.compiled_loops().col2im_nchw_add
        assert compiled.col2im_loop("nhwc", dx.astype(np.float16)) is None
    for name in ("numpy", "reference"):
        with cv.use_engine(name):
            assert compiled.col2im_loop("nhwc", dx) is None


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (1, 7), (2, 3, 64, 64)])
def test_relu_and_tanh_kernels_equal_reference_exactly(dtype: type, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.flat[::5] = 0.0  # the derivative at 0 is 0
    x.flat[1] = np.nan
    _assert_engines_equal(F.relu, x, exact=True)
    _assert_engines_equal(lambda t: F.relu(t * 1, inplace=True), x, exact=True)
    _assert_engines_equal(F.tanh, x, exact=dtype == np.float64)  # float32: the rational tanh, tested below
    with cv.use_engine("fast"):
        compare_with_torch(F.tanh, torch.tanh, [np.nan_to_num(x)], dtype)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between float32 arrays of the same signs."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32))


def test_float32_tanh_is_within_one_ulp_of_the_correctly_rounded_value() -> None:
    """Over a dense sweep of [-12, 12], the tiny and huge magnitudes, and the specials: at most 1 ulp from
    tanh computed in float64 and rounded once (NumPy's own float32 tanh is off by 1 ulp as often, or more)."""
    sweep = np.linspace(-12, 12, 2_000_001, dtype=np.float32)
    magnitudes = np.geomspace(1e-38, 1e38, 20_001, dtype=np.float32)
    x = np.concatenate([sweep, magnitudes, -magnitudes, np.float32([0.0, -0.0, 1e-45, -1e-45])])
    with cv.use_engine("fast"):
        got = F.tanh(cv.tensor(x)).numpy()
    want = np.tanh(x.astype(np.float64)).astype(np.float32)
    assert _ulps(got, want).max() <= 1
    assert np.signbit(got[-3]) and np.signbit(got[-1])  # tanh(-0) = -0, tanh(-denormal) < 0
    with cv.use_engine("fast"):
        special = F.tanh(cv.tensor(np.float32([np.nan, np.inf, -np.inf] + [0.5] * 200_000))).numpy()[:3]
    assert np.isnan(special[0]) and special[1] == 1.0 and special[2] == -1.0


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation, ceil_mode",
    [(2, 2, 0, 1, False), (2, 2, 0, 1, True), (3, 2, 1, 1, False), ((2, 3), (1, 2), (1, 0), 1, True)],
)
@pytest.mark.parametrize("with_nan", [False, True])
def test_max_pool_kernel_equals_reference_and_torch(dtype: type, kernel, stride, padding, dilation,
                                                    ceil_mode: bool, with_nan: bool) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 11)).astype(dtype)
    x[0, 0, :3, :3] = 1.5  # ties: the first maximum in row-major order wins
    x[0, 1] = -np.inf  # windows of -inf pick their first tap
    if with_nan:
        x[1, 2, 4, 4] = np.nan  # a NaN wins its window (the kernel's exact path)
        x[1, 2, 4, 5] = np.nan  # ... the last NaN of the window, as PyTorch's scan

    def ours(t):
        return F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode)

    _assert_engines_equal(ours, x, exact=True)
    with cv.use_engine("fast"):
        compare_with_torch(ours, lambda t: torch.nn.functional.max_pool2d(t, kernel, stride, padding, dilation,
                                                                          ceil_mode), [x], dtype)
        _, idx = F.max_pool2d(cv.tensor(x), kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    _, idx_torch = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation, ceil_mode,
                                                  return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idx_torch.numpy())
    assert idx.dtype == np.int64


def test_max_pool_kernel_takes_2x2_windows_only() -> None:
    from convolve.nn.functional.pool import MaxPool2dFunction

    x = cv.tensor(np.zeros((2, 3, 9, 8), np.float32))
    window = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1))
    with cv.use_engine("fast"):
        assert _compiled(policy.select(MaxPool2dFunction, x, out=(4, 4), **window))
        assert not _compiled(policy.select(MaxPool2dFunction, x, out=(5, 4), **window))  # ceil_mode
        assert not _compiled(policy.select(MaxPool2dFunction, x, out=(3, 3), **{**window, "kernel": (3, 3)}))


def test_max_pool1d_and_unbatched_inputs_take_the_kernel(dtype: type) -> None:
    x = np.random.default_rng(2).standard_normal((3, 8, 10)).astype(dtype)
    _assert_engines_equal(lambda t: F.max_pool2d(t, 2), x, exact=True)
    _assert_engines_equal(lambda t: F.max_pool1d(t, 3, 2, 1), x, exact=True)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 5), (3, 4, 7), (16, 8, 32, 32)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_kernel_equals_reference_and_torch(dtype: type, shape: tuple[int, ...], affine: bool) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    c = shape[1]
    params = (rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)) if affine else ()

    def ours(t, *wb):
        return F.batch_norm(t, None, None, *wb, training=True)

    _assert_engines_equal(ours, x, params)
    with cv.use_engine("fast"):
        compare_with_torch(ours, lambda t, *wb: torch.nn.functional.batch_norm(t, None, None, *wb, training=True),
                           [x, *params], dtype)


def test_batch_norm_kernel_updates_running_stats_as_reference(dtype: type) -> None:
    x = np.random.default_rng(4).standard_normal((8, 3, 5, 5)).astype(dtype) + 4
    stats = []
    for on in (True, False):
        bn = cv.nn.BatchNorm2d(3).to(dtype)
        with cv.use_engine("fast" if on else "numpy"):
            bn(cv.tensor(x))
        stats.append((bn.running_mean.numpy(), bn.running_var.numpy()))
    for a, b in zip(*stats):
        np.testing.assert_allclose(a, b, **REF_TOL[np.dtype(dtype).type])


def test_batch_norm_kernel_float32_with_a_large_mean_stays_accurate() -> None:
    x = np.random.default_rng(5).standard_normal((16, 4, 8, 8)) + 50.0  # mean/std = 50
    with cv.use_engine("fast"):
        ours = _forward_backward(lambda t: F.batch_norm(t, None, None, training=True), x.astype(np.float32))
    ref64 = _forward_backward(lambda t: F.batch_norm(t, None, None, training=True), x)
    for a, b in zip(ours, ref64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_kernels_give_the_same_bits_for_a_given_thread_count() -> None:
    """A seeded ResNet step twice at 2 threads, with tensors large enough to be split over both: same bits."""
    from convolve.models import get_model

    def step() -> list[np.ndarray]:
        cv.manual_seed(0)
        model = get_model("resnet20", num_classes=10)
        x = cv.tensor(np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32))
        y = cv.tensor(np.arange(16) % 10)
        F.cross_entropy(model(x), y).backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    set_num_threads(2)
    try:
        with cv.use_engine("fast"):
            first, second = step(), step()
    finally:
        set_num_threads(None)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_import_does_not_load_numba_and_the_reference_runs_without_it() -> None:
    code = (
        "import sys, numpy as np\n"
        "import convolve as cv, convolve.nn.functional as F\n"
        "assert 'numba' not in sys.modules, 'import convolve loaded numba'\n"
        "from convolve.engines import compiled\n"
        "compiled._installed = False\n"
        "compiled.MIN_ELEMENTS = -1\n"
        "x = cv.tensor(np.ones((2, 3, 4, 4)), requires_grad=True)\n"
        "F.max_pool2d(F.relu(F.batch_norm(x, None, None, training=True)), 2).sum().backward()\n"
        "assert 'numba' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_the_readme_main_job_compiles_no_convolution(tmp_path: Path) -> None:
    """`convolve train` (digits_cnn on the 8x8 digits) keeps its convolutions on NumPy, so its first run never
    compiles the direct convolution (~10-25 s); its evaluation batches (256 images) do use the compiled ReLU."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['convolve', 'train', '--epochs', '1', '--out', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('convolve', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "from convolve.engines.compiled import direct_conv, row_conv\n"
        "print('compiled convolutions:', sorted(direct_conv._ready), row_conv._jit)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "compiled convolutions: [] None"


@pytest.mark.parametrize(
    "c, k, kernel, stride, padding, dilation, groups",
    [(16, 8, 3, 2, 1, 1, 1),  # channels-last engine, strided: col2im
     (16, 8, 3, 1, 1, 1, 4),  # grouped: col2im on a channel slice
     (6, 16, 5, 1, 0, 1, 1),  # LeNet C3: the few-channel NCHW path's col2im
     (3, 4, 3, 2, 2, 2, 1)],  # few channels, strided and dilated
)
def test_conv_input_gradient_with_compiled_col2im_is_bit_identical(dtype: type, c: int, k: int, kernel: int,
                                                                    stride: int, padding: int, dilation: int,
                                                                    groups: int) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, c, 11, 12)).astype(dtype)
    w = rng.standard_normal((k, c // groups, kernel, kernel)).astype(dtype)
    # the NumPy conv kernels with compiled col2im vs without (the direct convolution, which would take C3, is off)
    policy.register("fast-without-direct", tuple(k for k in FAST_KERNELS if k != DIRECT_CONV))
    _assert_engines_equal(lambda t, wt: F.conv2d(t, wt, None, stride, padding, dilation, groups), x, (w,),
                          exact=True, engine="fast-without-direct")


@pytest.mark.parametrize("shape", [(2, 3, 10, 8), (3, 6, 4)])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_pool_kernel_equals_reference_bit_for_bit_and_torch(dtype: type, shape: tuple[int, ...],
                                                                 divisor_override: int | None) -> None:
    x = np.random.default_rng(9).standard_normal(shape).astype(dtype)

    def ours(t):
        return F.avg_pool2d(t, 2, divisor_override=divisor_override)

    _assert_engines_equal(ours, x, exact=True)
    with cv.use_engine("fast"):
        compare_with_torch(ours, lambda t: torch.nn.functional.avg_pool2d(t, 2, divisor_override=divisor_override),
                           [x], dtype)


def test_avg_pool_kernel_takes_exactly_tiled_2x2_windows_only() -> None:
    from convolve.nn.functional.pool import AvgPool2dFunction

    x = cv.tensor(np.zeros((2, 3, 9, 8), np.float32))  # 9 rows: the last one is not pooled
    window = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    with cv.use_engine("fast"):
        assert not _compiled(policy.select(AvgPool2dFunction, x, out=(4, 4), **window))
        y = cv.tensor(np.zeros((2, 3, 8, 8), np.float32))
        assert _compiled(policy.select(AvgPool2dFunction, y, out=(4, 4), **window))
