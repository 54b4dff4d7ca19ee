"""Everyday PyTorch API against torch: grad-mode decorators, custom Functions with ctx.saved_tensors, tensor and
module backward hooks, Tensor.to/type/contiguous/softmax, argmax/max/as_tensor, devices, cv.load's arguments."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn as nn
from tests.oracle import assert_close, compare_with_torch


def test_no_grad_works_bare_called_and_as_context():
    x = cv.randn(3, requires_grad=True)

    @cv.no_grad
    def bare(t):
        return t * 2

    @cv.no_grad()
    def called(t):
        return t * 2

    @cv.inference_mode
    def inferred(t):
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad and not inferred(x).requires_grad
    assert cv.is_grad_enabled() and (x * 2).requires_grad
    with cv.no_grad():
        assert not (x * 2).requires_grad
        with cv.enable_grad():
            assert (x * 2).requires_grad
    with cv.inference_mode():
        assert not (x * 2).requires_grad
    with cv.inference_mode(False):
        assert (x * 2).requires_grad
    assert bare.__name__ == "bare"


def test_set_grad_enabled_acts_when_called_as_torch_does():
    for lib in (torch, cv):
        lib.set_grad_enabled(False)
        assert not lib.is_grad_enabled()
        lib.set_grad_enabled(True)
        with lib.set_grad_enabled(False):
            assert not lib.is_grad_enabled()
        assert lib.is_grad_enabled()


def test_decorated_no_grad_is_per_thread_and_reentrant():
    seen = []

    @cv.no_grad
    def recurse(n):
        seen.append(cv.is_grad_enabled())
        return recurse(n - 1) if n else None

    recurse(3)
    t = threading.Thread(target=lambda: seen.append(("thread", cv.is_grad_enabled())))
    t.start()
    t.join()
    assert seen == [False] * 4 + [("thread", True)] and cv.is_grad_enabled()


def _torch_style(lib):
    class MyExp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result  # a bare gradient for the one input

    class Scale(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, k):
            ctx.save_for_backward(x, w)
            ctx.k = k
            return x * w * k

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g * w * ctx.k, (g * x * ctx.k).sum(0), None

    return MyExp, Scale


def test_torch_style_custom_functions_match_torch():
    xs = np.random.default_rng(0).standard_normal((3, 4))
    ws = np.random.default_rng(1).standard_normal(4)
    grads = []
    for lib in (cv, torch):
        my_exp, scale = _torch_style(lib)
        x = lib.tensor(xs, requires_grad=True)
        w = lib.tensor(ws, requires_grad=True)
        y = scale.apply(my_exp.apply(x), w, 3.0)
        assert y.requires_grad
        y.sum().backward()
        grads.append((x.grad.numpy().copy(), w.grad.numpy().copy(), y.detach().numpy().copy()))
    for a, b in zip(*grads):
        assert_close(a, b, np.float64, "custom Function")


def test_backward_returning_too_few_gradients_says_what_to_return():
    class Two(cv.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g

    a, b = cv.randn(2, requires_grad=True), cv.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"returned one gradient for 2 inputs; return a tuple"):
        Two.apply(a, b).sum().backward()


def test_tensor_register_hook_matches_torch():
    results = []
    for lib in (cv, torch):
        x = lib.tensor(np.arange(3.0), requires_grad=True)
        h = x * 2
        seen = []
        h.register_hook(lambda g, seen=seen: seen.append(g.numpy().copy()))
        h.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)
        (h * h).sum().backward()
        results.append((seen[0], x.grad.numpy().copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b)
    handle = (x := cv.randn(2, requires_grad=True)).register_hook(lambda g: g * 0)
    handle.remove()
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        cv.randn(2).register_hook(print)


def _hooked_net(lib, xs, weights, replace):
    net = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.ReLU(), lib.nn.Linear(3, 2)).double()
    with lib.no_grad():
        for p, w in zip(net.parameters(), weights):
            p.copy_(lib.tensor(w))
    calls = []

    def hook(module, grad_input, grad_output):
        calls.append((type(module).__name__, [None if g is None else g.numpy().copy() for g in grad_input],
                      [g.numpy().copy() for g in grad_output]))
        return (grad_input[0] * 2,) if replace and grad_input[0] is not None else None

    net[2].register_full_backward_hook(hook)
    net[0].register_full_backward_hook(hook)
    x = lib.tensor(xs, requires_grad=True)
    net(x).sum().backward()
    return calls, x.grad.numpy().copy(), net[0].weight.grad.numpy().copy()


@pytest.mark.parametrize("replace", [False, True])
def test_full_backward_hook_matches_torch(replace):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((5, 4))
    weights = [rng.standard_normal(s) for s in [(3, 4), (3,), (2, 3), (2,)]]
    ours, theirs = _hooked_net(cv, xs, weights, replace), _hooked_net(torch, xs, weights, replace)
    assert [c[0] for c in ours[0]] == [c[0] for c in theirs[0]] == ["Linear", "Linear"]
    for (_, gi_a, go_a), (_, gi_b, go_b) in zip(ours[0], theirs[0]):
        for a, b in zip(gi_a + go_a, gi_b + go_b):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12)


def test_backward_hook_on_a_first_layer_sees_none_for_the_input():
    layer = nn.Linear(3, 2)
    got = []
    layer.register_full_backward_hook(lambda m, gi, go: got.append((gi, go[0].shape)))
    layer(cv.randn(4, 3)).sum().backward()
    assert got == [((None,), (4, 2))]


def test_tensor_conversions_match_torch():
    a = np.arange(6.0).reshape(2, 3)
    x, t = cv.tensor(a, dtype=cv.float32), torch.tensor(a, dtype=torch.float32)
    assert x.to("cpu") is x and x.cpu() is x and x.to(cv.float32) is x
    assert x.to(cv.device("cpu"), cv.float64).dtype == np.float64
    assert x.to(dtype=cv.long).dtype == np.int64 and x.long().dtype == np.int64
    assert x.to(cv.zeros(1, dtype=cv.float64)).dtype == np.float64
    assert x.type() == "convolve.FloatTensor" and t.type() == "torch.FloatTensor"
    assert x.type("torch.DoubleTensor").dtype == np.float64
    assert str(x.device) == str(t.device) == "cpu" and x.device == "cpu" and not x.is_cuda
    assert x.T.contiguous().data.flags.c_contiguous and x.contiguous() is x
    np.testing.assert_allclose(x.softmax(1).numpy(), t.softmax(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.log_softmax(dim=0).numpy(), t.log_softmax(dim=0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(cv.softmax(x, dim=1).numpy(), torch.softmax(t, dim=1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.sigmoid().numpy(), t.sigmoid().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(x.relu().numpy(), t.relu().numpy())


def test_argmax_max_and_as_tensor_match_torch():
    a = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    x, t = cv.tensor(a), torch.tensor(a)
    assert cv.argmax(x).item() == torch.argmax(t).item()
    assert cv.argmax(x, dim=1).tolist() == torch.argmax(t, dim=1).tolist()
    assert cv.argmax(x, 0, keepdim=True).shape == tuple(torch.argmax(t, 0, keepdim=True).shape)
    values, indices = cv.max(x.data, 1)  # the classic torch.max(outputs.data, 1)
    tv, ti = torch.max(t.data, 1)
    assert values.tolist() == tv.tolist() and indices.tolist() == ti.tolist()
    assert cv.max(x).item() == torch.max(t).item() and cv.min(x, 1)[1].tolist() == torch.min(t, 1)[1].tolist()
    assert cv.max(x, cv.zeros(2, 3)).shape == (2, 3)
    shared = np.zeros(3, np.float32)
    y = cv.as_tensor(shared)
    shared[0] = 5
    assert y[0].item() == 5 and cv.from_numpy(shared).numpy() is shared
    assert cv.as_tensor([1, 2]).dtype == np.int64 and cv.as_tensor(shared, dtype=cv.float64).dtype == np.float64
    assert cv.as_tensor(y) is y


def test_devices_cpu_works_others_explain():
    device = cv.device("cuda" if cv.cuda.is_available() else "cpu")
    assert device == cv.device("cpu") and repr(device) == repr(torch.device("cpu"))
    model = nn.Linear(2, 2).to(device)
    x = cv.zeros(4, 2, device=device)
    assert model(x.to(device)).shape == (4, 2)
    assert cv.randn(2, device="cpu").shape == (2,) and cv.tensor([1.0], device=device).shape == (1,)
    for call in (lambda: cv.zeros(2).to("cuda"), lambda: model.to("cuda:0"), lambda: cv.zeros(2).cuda(),
                 lambda: model.cuda(), lambda: cv.zeros(2, device="mps")):
        with pytest.raises(RuntimeError, match=r"is not available: convolve computes with NumPy on the CPU only"):
            call()
    with pytest.raises(RuntimeError, match="expected one of"):
        cv.device("gpu")


def test_load_takes_map_location_and_weights_only(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "model.pt"
    cv.save(model.state_dict(), path)
    for kwargs in ({"map_location": "cpu"}, {"map_location": cv.device("cpu"), "weights_only": True},
                   {"map_location": lambda storage, loc: storage}, {"map_location": {"cuda:0": "cpu"}},
                   {"weights_only": False}):
        restored = nn.Linear(3, 2)
        restored.load_state_dict(cv.load(path, **kwargs))
        np.testing.assert_array_equal(restored.weight.numpy(), model.weight.numpy())
    with pytest.raises(RuntimeError, match=r"map_location`: device 'cuda' is not available"):
        cv.load(path, map_location="cuda")
    with pytest.raises(ValueError, match=r"`pickle_module` cannot be used"):
        cv.load(path, pickle_module=object())


def test_topk_sort_std_match_torch_with_gradients():
    a = np.random.default_rng(4).standard_normal((3, 6))
    for ours_fn, theirs_fn in [
        (lambda t: t.topk(3, 1)[0], lambda t: t.topk(3, 1)[0]),
        (lambda t: t.topk(2, 0, largest=False)[0], lambda t: t.topk(2, 0, largest=False)[0]),
        (lambda t: t.sort(dim=1, descending=True)[0], lambda t: t.sort(dim=1, descending=True)[0]),
        (lambda t: t.std(dim=1, keepdim=True), lambda t: t.std(dim=1, keepdim=True)),
        (lambda t: t.std(), lambda t: t.std()),
        (lambda t: t.masked_fill(t > 0, 0.5), lambda t: t.masked_fill(t > 0, 0.5)),
        (lambda t: t.t().mm(t), lambda t: t.t().mm(t)),
    ]:
        compare_with_torch(ours_fn, theirs_fn, [a])
    x, t = cv.tensor(a), torch.tensor(a)
    assert x.topk(3, 1)[1].tolist() == t.topk(3, 1)[1].tolist()
    assert x.sort(0)[1].tolist() == t.sort(0)[1].tolist()
    assert x.eq(x).all().item() and not x.ne(x).any().item()
    assert cv.isnan(cv.tensor([float("nan"), 1.0])).tolist() == [True, False]
    assert cv.allclose(x, x + 1e-9) and not cv.equal(x, x + 1)


def test_in_place_arithmetic_follows_torch_rules():
    w = cv.randn(3, requires_grad=True)
    (w * w).sum().backward()
    before = w
    with cv.no_grad():
        w -= 0.1 * w.grad
        w.add_(1.0, alpha=2)
    assert w is before and w.requires_grad
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad is being used in an in-place"):
        w += 1
    plain = cv.zeros(3)
    alias = plain
    plain += 1
    assert alias.tolist() == [1.0, 1.0, 1.0]  # written in place, as in PyTorch
    h = w * 2  # a non-leaf in a graph: the out-of-place result, so the graph stays right
    h += 1
    h.sum().backward()


def test_missing_pytorch_names_say_so():
    with pytest.raises(AttributeError, match=r"'convolve' has no attribute 'bfloat16': NumPy has no bfloat16"):
        cv.bfloat16  # noqa: B018
    with pytest.raises(AttributeError, match=r"`torch.nn.Transformer` is not implemented in convolve"):
        nn.Transformer  # noqa: B018
    with pytest.raises(AttributeError, match=r"`Tensor.scatter_` is not implemented.*x\.numpy\(\)"):
        cv.zeros(1).scatter_  # noqa: B018
    assert not hasattr(cv.zeros(1), "_private") and not hasattr(cv, "__wrapped__")


def test_autograd_grad_matches_torch_and_leaves_grad_alone():
    a = np.random.default_rng(8).standard_normal((3, 4))
    results = []
    for lib in (cv, torch):
        x = lib.tensor(a, requires_grad=True)
        w = lib.tensor(a[0], requires_grad=True)
        y = (x * w).sum() + (x ** 2).mean()
        gx, gw = lib.autograd.grad(y, [x, w], retain_graph=True)
        (h,) = lib.autograd.grad((x * 3).sum(dim=1), x, grad_outputs=lib.ones(3, dtype=lib.float64))
        assert x.grad is None and w.grad is None
        results.append([gx.numpy(), gw.numpy(), h.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    x, unused = cv.randn(2, requires_grad=True), cv.randn(2, requires_grad=True)
    assert cv.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match=r"inputs\[1\] was not used in the graph"):
        cv.autograd.grad((x * 2).sum(), [x, unused])
    with pytest.raises(RuntimeError, match=r"create_graph=True .* is not supported"):
        cv.autograd.grad((x * 2).sum(), x, create_graph=True)


def test_shape_and_indexing_methods_match_torch_with_gradients():
    a = np.random.default_rng(9).standard_normal((3, 4))
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    for ours_fn, theirs_fn in [
        (lambda t: t.repeat(2, 3), lambda t: t.repeat(2, 3)),
        (lambda t: t.repeat(2, 1, 1), lambda t: t.repeat(2, 1, 1)),
        (lambda t: t.flip(0, 1), lambda t: t.flip(0, 1)),
        (lambda t: t.cumsum(1), lambda t: t.cumsum(1)),
        (lambda t: t.gather(1, cv.tensor(idx)), lambda t: t.gather(1, torch.tensor(idx))),
        (lambda t: t.chunk(3, 1)[1] * 2, lambda t: t.chunk(3, 1)[1] * 2),
        (lambda t: t.split([1, 3], dim=1)[1], lambda t: t.split([1, 3], dim=1)[1]),
    ]:
        compare_with_torch(ours_fn, theirs_fn, [a])
    assert [p.shape for p in cv.tensor(a).split(3, 1)] == [tuple(p.shape) for p in torch.tensor(a).split(3, 1)]
    x = cv.tensor(a)
    assert x.is_contiguous() and not x.t().is_contiguous()
    y = x.clone()
    y.clamp_(-0.5, 0.5).abs_()
    np.testing.assert_allclose(y.numpy(), torch.tensor(a).clamp_(-0.5, 0.5).abs_().numpy())


def test_nn_wrappers_match_torch():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 5, 5))
    for ours, theirs, inp in [
        (nn.ZeroPad2d(1), torch.nn.ZeroPad2d(1), x), (nn.ReflectionPad2d((1, 2, 0, 1)),
                                                       torch.nn.ReflectionPad2d((1, 2, 0, 1)), x),
        (nn.ReplicationPad2d(2), torch.nn.ReplicationPad2d(2), x),
        (nn.ConstantPad2d(1, 3.5), torch.nn.ConstantPad2d(1, 3.5), x),
        (nn.InstanceNorm2d(3), torch.nn.InstanceNorm2d(3), x),
        (nn.AdaptiveAvgPool1d(2), torch.nn.AdaptiveAvgPool1d(2), x[:, :, 0]),
        (nn.AdaptiveMaxPool1d(3), torch.nn.AdaptiveMaxPool1d(3), x[:, :, 0]),
        (nn.Unflatten(1, (5, 5)), torch.nn.Unflatten(1, (5, 5)), x.reshape(2, 3, 25)[:, 0]),
    ]:
        compare_with_torch(lambda t, m=ours: m(t), lambda t, m=theirs: m(t), [inp])
    emb, temb = nn.Embedding(5, 3, padding_idx=1).double(), torch.nn.Embedding(5, 3, padding_idx=1).double()
    with torch.no_grad():
        temb.weight.copy_(torch.tensor(emb.weight.numpy()))
    idx = np.array([[0, 1, 4], [1, 1, 2]])
    out, tout = emb(cv.tensor(idx)), temb(torch.tensor(idx))
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    g = rng.standard_normal(out.shape)
    out.backward(cv.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(emb.weight.grad.numpy(), temb.weight.grad.numpy(), rtol=1e-12)


def test_similarity_and_kl_div_match_torch():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    logp = a - np.log(np.exp(a).sum(1, keepdims=True))
    q = np.exp(b) / np.exp(b).sum(1, keepdims=True)
    q[0, 0] = 0.0  # a zero target probability contributes 0
    F, TF = nn.functional, torch.nn.functional
    compare_with_torch(lambda t: F.normalize(t, dim=1), lambda t: TF.normalize(t, dim=1), [a])
    compare_with_torch(lambda t: F.normalize(t, p=1, dim=0), lambda t: TF.normalize(t, p=1, dim=0), [a])
    compare_with_torch(F.cosine_similarity, TF.cosine_similarity, [a, b])
    for reduction in ("batchmean", "sum", "mean", "none"):
        compare_with_torch(lambda t, r=reduction: F.kl_div(t, cv.tensor(q), reduction=r),
                           lambda t, r=reduction: TF.kl_div(t, torch.tensor(q), reduction=r), [logp])
    compare_with_torch(lambda t: nn.KLDivLoss(reduction="batchmean", log_target=True)(t, cv.tensor(logp)),
                       lambda t: torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(t, torch.tensor(logp)),
                       [a])


def test_random_likes_and_printing():
    x = cv.zeros(3, 4)
    assert cv.randn_like(x).shape == (3, 4) and cv.rand_like(x).dtype == x.dtype
    assert cv.full_like(x, 2.0).sum().item() == 24 and cv.empty_like(x).shape == (3, 4)
    assert set(cv.bernoulli(cv.full((100,), 0.5)).tolist()) <= {0.0, 1.0}
    draws = cv.multinomial(cv.tensor([0.0, 1.0, 1.0]), 2)
    assert sorted(draws.tolist()) == [1, 2] and draws.dtype == np.int64
    assert cv.Size([2, 3]) == (2, 3) and cv.Size([2, 3]).numel() == 6
    before = np.get_printoptions()
    try:
        cv.set_printoptions(precision=2)
        assert "3.14" in repr(cv.tensor([3.14159])) and "3.142" not in repr(cv.tensor([3.14159]))
    finally:
        np.set_printoptions(**before)
    assert nn.Linear(2, 2).half().weight.dtype == np.float16
