"""The engine policy, and every engine kernel equal to the reference ops over the sweeps that compare with PyTorch.

Kernels are forced on every call they support (tests/engine_helpers.py); the "reference" engine runs the plain
code of nn/functional. Float64 must agree to 1e-12 and float32 to 1e-5, relative to each array's magnitude.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.models as M
import convolve.nn.functional as F
from convolve.cli import main
from convolve.engines.policy import EnginePolicy, policy
from convolve.nn.functional import loss, pool
from convolve.nn.functional.conv import Conv2dFunction
from convolve.nn.functional.norm import BatchNormFunction
from tests.engine_helpers import assert_engine_equals_reference, forced, run_with_grads
from tests.test_conv_fastpaths import cases as conv_cases
from tests.test_conv_winograd import cases as winograd_cases

CONV_KERNELS = [k for k in policy.kernels("fast") if issubclass(k, Conv2dFunction)]
SWEEP = settings(max_examples=20, deadline=None)


def _conv_case_arrays(case):
    x, w, b, kwargs, dtype = case
    return [x, w] if b is None else [x, w, b], kwargs, dtype


def _compare_conv(kernel, arrays, kwargs, dtype):
    fn = (lambda a, c: F.conv2d(a, c, **kwargs)) if len(arrays) == 2 else (lambda a, c, d: F.conv2d(a, c, d, **kwargs))
    with cv.use_engine("reference"):
        want = run_with_grads(fn, arrays, dtype)
    with forced(kernel):
        got = run_with_grads(fn, arrays, dtype)
    assert_engine_equals_reference(got, want, dtype)


def _supports(kernel, arrays, kwargs):
    """Whether `kernel` takes this conv2d call (geometry normalised as F.conv2d does)."""
    from convolve.nn.functional.geometry import parse_geometry, parse_padding

    x, w = arrays[0], arrays[1]
    strides, dilations = parse_geometry("t", kwargs["stride"], kwargs["dilation"], 2)
    pads = parse_padding("t", kwargs["padding"], w.shape[2:], strides, dilations)
    return kernel.supports(x, w, None, stride=strides, padding=pads, dilation=dilations, groups=kwargs["groups"])


@pytest.mark.parametrize("kernel", CONV_KERNELS, ids=lambda k: k.__name__)
@SWEEP
@given(case=st.one_of(conv_cases(), conv_cases(depthwise=True)))
def test_conv_kernels_equal_the_reference(kernel, case):
    arrays, kwargs, dtype = _conv_case_arrays(case)
    if _supports(kernel, arrays, kwargs):
        _compare_conv(kernel, arrays, kwargs, dtype)


@settings(max_examples=20, deadline=None)
@given(case=winograd_cases())
def test_winograd_kernel_equals_the_reference(case):
    from convolve.engines.winograd import WinogradConv2d

    x, w, b, padding, dtype = case
    _compare_conv(WinogradConv2d, [x, w] if b is None else [x, w, b],
                  dict(stride=1, padding=padding, dilation=1, groups=1), dtype)


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(4, 3, 5, 5), (3, 2, 7), (6, 4), (2, 3, 2, 3, 2), (17, 5, 3, 3)]),
       training=st.booleans(), affine=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]))
def test_batch_norm_kernel_equals_the_reference(shape, training, affine, dtype):
    from convolve.engines.batchnorm import ChunkedBatchNorm

    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    x = 3 * rng.standard_normal(shape) + 1
    stats = {}

    def fn(t, *wb):
        rm, rv = stats.setdefault(cv.get_engine(), (cv.tensor(np.full(c, 0.5), dtype=dtype),
                                                    cv.tensor(np.full(c, 2.0), dtype=dtype)))
        return F.batch_norm(t, rm, rv, *wb, training=training)

    arrays = [x, rng.standard_normal(c), rng.standard_normal(c)] if affine else [x]
    with cv.use_engine("reference"):
        want = run_with_grads(fn, arrays, dtype)
    with forced(ChunkedBatchNorm):
        got = run_with_grads(fn, arrays, dtype)
    assert_engine_equals_reference(got, want, dtype)


def test_ops_without_kernels_run_their_reference_under_every_engine():
    """Adaptive pooling and the losses have no engine kernels: the oracle suite of those ops covers every engine at
    once (the compiled 2x2 max/average pooling kernels have their own tests: tests/test_engine_compiled.py)."""
    references = [pool.AdaptiveAvgPool2dFunction, pool.AdaptiveMaxPool2dFunction, loss.CrossEntropyFunction,
                  loss.NLLLossFunction]
    for name in policy.names():
        for kernel in policy.kernels(name):
            assert not any(issubclass(kernel, r) for r in references), (name, kernel)


def test_use_engine_switches_per_thread_and_nests():
    assert cv.get_engine() == "fast"
    seen = []
    with cv.use_engine("reference"):
        assert cv.get_engine() == "reference"
        with cv.use_engine("fast"):
            assert cv.get_engine() == "fast"
        assert cv.get_engine() == "reference"
        worker = threading.Thread(target=lambda: seen.append(cv.get_engine()))
        worker.start()
        worker.join()
    assert cv.get_engine() == "fast" and seen == ["fast"]
    with pytest.raises(ValueError, match=r"use_engine: `name` must be one of \[.*'fast'.*'reference'.*\], got 'gpu'"):
        cv.use_engine("gpu").__enter__()


def test_an_engine_is_one_registration():
    """A new engine: a file of kernels, one `register` line; its kernels come first, the reference after."""
    local = EnginePolicy(default="reference")
    local.register("reference", ())
    local.register("mine", ("convolve.engines.depthwise:DepthwiseConv2d",))
    x, w = np.empty((1, 4, 6, 6)), np.empty((4, 1, 3, 3))
    kwargs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=4)
    assert local.select(Conv2dFunction, x, w, None, **kwargs) is Conv2dFunction
    with local.use("mine"):
        assert local.select(Conv2dFunction, x, w, None, **kwargs).__name__ == "DepthwiseConv2d"
        assert local.select(Conv2dFunction, x, np.empty((4, 4, 3, 3)), None, **dict(kwargs, groups=1)) \
            is Conv2dFunction
        assert local.select(BatchNormFunction, x) is BatchNormFunction


# One model of each family at a small input, float64 (deep float32 nets at batch 2 amplify rounding; the kernel
# tests above bound float32): fast and reference agree on the output and every parameter gradient.
FAMILY_MODELS = {"lenet5": 32, "digits_cnn": 8, "mnist_cnn": 28, "vgg_small": 32, "resnet20": 32, "resnet18": 32,
                 "googlenet": 64}


@pytest.mark.parametrize("name", sorted(FAMILY_MODELS))
def test_zoo_models_agree_on_both_engines(name):
    c = M.model_spec(name).input_size[0]
    size = FAMILY_MODELS[name]
    x = np.random.default_rng(0).standard_normal((2, c, size, size))
    results = {}
    previous = cv.get_default_dtype()
    cv.set_default_dtype(np.float64)
    try:
        for engine in ("fast", "reference"):
            cv.manual_seed(0)
            model = M.get_model(name, num_classes=10)
            with cv.use_engine(engine):
                out = model(cv.tensor(x))
                outputs = out if isinstance(out, tuple) else (out,)
                sum(o.sum() for o in outputs).backward()
            results[engine] = [outputs[0].numpy()] + [p.grad.numpy() for p in model.parameters()]
    finally:
        cv.set_default_dtype(previous)
    got, want = results["fast"], results["reference"]
    assert len(got) == len(want) and got[0].dtype == np.float64
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.abs(a - b).max() <= 1e-9 * max(float(np.abs(b).max()), 1e-30), f"{name}: array {i} differs"


def test_digits_job_trains_to_the_same_accuracy_on_both_engines(tmp_path, capsys):
    accuracy = {}
    for engine in ("fast", "reference"):
        with cv.use_engine(engine):
            code = main(["train", "--epochs", "1", "--out", str(tmp_path / engine), "--batch-size", "32",
                         "--lr", "0.01", "--seed", "0"])
        assert code == 0
        accuracy[engine] = float(capsys.readouterr().out.strip().splitlines()[-1].split(": ")[1])
    assert accuracy["reference"] > 0.5
    assert abs(accuracy["fast"] - accuracy["reference"]) <= 0.01, accuracy
