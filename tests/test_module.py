"""Module machinery: registration, traversal order, modes, dtype conversion, state_dict (keys equal torch's),
strict/non-strict loading, hooks, zero_grad, repr, containers."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn as nn


def populate(self, lib, tensor, parameter) -> None:
    """The same nested model, written once for both libraries (lib = torch.nn or convolve.nn)."""
    self.features = lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2))
    self.heads = lib.ModuleList([lib.Linear(16, 3), lib.Linear(16, 2, bias=False)])
    self.extra = lib.ModuleDict({"norm": lib.BatchNorm1d(3, affine=False)})
    self.scale = parameter(tensor(np.ones(1)))
    self.register_buffer("steps", tensor(np.zeros(2)))
    self.register_buffer("cache", tensor(np.zeros(1)), persistent=False)


def forward(self, x):
    h = self.features(x).flatten(1)
    return self.extra["norm"](self.heads[0](h)) * self.scale, self.heads[1](h)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        populate(self, nn, cv.tensor, nn.Parameter)

    forward = forward


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        populate(self, torch.nn, torch.tensor, torch.nn.Parameter)

    forward = forward


def make_pair() -> tuple[Block, TorchBlock]:
    torch.manual_seed(0)
    theirs = TorchBlock().double()
    ours = Block().double()
    return ours, theirs


def test_registration_order_and_state_dict_keys_equal_torch() -> None:
    ours, theirs = make_pair()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == ["features", "heads", "extra"]
    assert "cache" not in ours.state_dict() and "steps" in ours.state_dict()
    assert ours.state_dict()["features.1.num_batches_tracked"].dtype == np.int64


def test_loading_torch_state_dict_reproduces_torch_forward() -> None:
    ours, theirs = make_pair()
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    for a, b in zip(ours(cv.tensor(x)), theirs(torch.tensor(x))):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-6)


def test_state_dict_accepts_numpy_and_shares_memory() -> None:
    layer = nn.Linear(3, 2)
    sd = layer.state_dict()
    assert isinstance(sd, OrderedDict) and not sd["weight"].requires_grad
    sd["weight"].data[0, 0] = 42.0
    assert layer.weight.data[0, 0] == 42.0  # detached views of the live arrays, as PyTorch
    layer.load_state_dict({"weight": np.zeros((2, 3)), "bias": [1.0, 2.0]})
    np.testing.assert_array_equal(layer.bias.numpy(), [1.0, 2.0])
    assert layer.weight.dtype == np.float32  # values are cast to the parameter's dtype


def test_strict_load_lists_every_problem_and_copies_nothing() -> None:
    layer = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    bad = {"0.weight": np.ones((2, 3)), "0.bias": np.ones(5), "1.weight": np.ones((1, 2)), "2.weight": np.ones(1)}
    with pytest.raises(RuntimeError) as info:
        layer.load_state_dict(bad)
    msg = str(info.value)
    assert 'Missing key(s) in state_dict: "1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "2.weight"' in msg
    assert "size mismatch for 0.bias: copying a param with shape (5,)" in msg
    for k, v in layer.state_dict().items():  # never half-loaded: 0.weight was valid but is untouched
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_non_strict_load_returns_incompatible_keys_but_still_checks_shapes() -> None:
    layer = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    result = layer.load_state_dict({"0.weight": np.ones((2, 3)), "extra": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"] and result.unexpected_keys == ["extra"]
    missing, unexpected = result
    assert unexpected == ["extra"] and len(missing) == 3
    np.testing.assert_array_equal(layer[0].weight.numpy(), np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        layer.load_state_dict({"0.weight": np.ones((3, 2))}, strict=False)
    with pytest.raises(TypeError, match=r"load_state_dict: value for `0\.bias` must be numeric"):
        layer.load_state_dict({"0.bias": np.array(["a", "b"])}, strict=False)
    with pytest.raises(TypeError, match="`state_dict` must be a mapping"):
        layer.load_state_dict([("0.bias", np.ones(2))])


def test_attribute_assignment_registers_and_replaces() -> None:
    m = nn.Module()
    m.w = nn.Parameter(cv.tensor(np.ones(2)))
    m.child = nn.Linear(2, 2)
    m.register_buffer("buf", cv.zeros(3))
    m.plain = 3
    assert [n for n, _ in m.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert list(m._buffers) == ["buf"] and m.plain == 3 and "plain" not in m.state_dict()
    m.w = None  # a registered parameter may be set to None (e.g. bias removed)
    assert "w" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'w'"):
        m.w = cv.zeros(2)
    with pytest.raises(TypeError, match="cannot assign int as buffer 'buf'"):
        m.buf = 1
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        m.register_buffer("plain", cv.zeros(1))
    with pytest.raises(KeyError, match="contain no"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="add_module: int is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        _ = m.nope
    del m.child
    assert "child.weight" not in m.state_dict()


def test_assignment_before_init_is_a_clear_error() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Broken()


def test_shared_parameters_are_listed_once() -> None:
    fc = nn.Linear(2, 2)
    model = nn.Sequential(fc, nn.ReLU(), fc)
    assert len(list(model.parameters())) == 2
    assert len(list(model.modules())) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as PyTorch


def test_train_eval_propagate() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="`mode` must be a bool"):
        model.train("no")


def test_zero_grad_and_requires_grad() -> None:
    layer = nn.Linear(3, 2)
    layer(cv.tensor(np.ones((1, 3), np.float32))).sum().backward()
    layer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(layer.weight.grad.numpy(), 0)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None
    layer.requires_grad_(False)
    assert not any(p.requires_grad for p in layer.parameters())


def test_dtype_conversion_in_place_keeps_identity_and_int_buffers() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    weight = model[0].weight
    assert model.double() is model
    assert model[0].weight is weight and weight.dtype == np.float64  # optimizers keep working
    assert model[1].running_mean.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    assert model(cv.tensor(np.ones((1, 1, 4, 4)))).dtype == np.float64
    assert model.to("float32")[1].running_var.dtype == np.float32
    assert model.to("cpu") is model
    with pytest.raises(TypeError, match="only floating dtypes"):
        model.to(np.int32)


def test_apply_visits_children_then_parent() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    seen: list[str] = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Sequential", "Sequential"]


def test_forward_hooks_record_shapes_and_can_be_removed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    shapes: list[tuple[str, tuple[int, ...]]] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: shapes.append((type(mod).__name__, out.shape)))
               for m in model]
    model(cv.tensor(np.ones((2, 1, 4, 4), np.float32)))
    assert shapes == [("Conv2d", (2, 2, 2, 2)), ("ReLU", (2, 2, 2, 2)), ("Flatten", (2, 8)), ("Linear", (2, 3))]
    for h in handles:
        h.remove()
    model(cv.tensor(np.ones((2, 1, 4, 4), np.float32)))
    assert len(shapes) == 4


def test_hooks_can_replace_input_and_output() -> None:
    layer = nn.Identity()
    pre = layer.register_forward_pre_hook(lambda mod, inp: (inp[0] * 2,))
    post = layer.register_forward_hook(lambda mod, inp, out: out + 1)
    assert layer(cv.tensor([1.0])).item() == 3.0
    with post:
        pass  # leaving the context removes the hook
    assert layer(cv.tensor([1.0])).item() == 2.0
    pre.remove()
    assert layer(cv.tensor([1.0])).item() == 1.0


def test_missing_forward_is_reported() -> None:
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward"'):
        nn.Module()(1)


def test_repr_matches_torch_for_nested_model() -> None:
    ours, theirs = make_pair()
    assert repr(ours).replace("Block", "X") == repr(theirs).replace("TorchBlock", "X")


def test_sequential_indexing_slicing_and_append() -> None:
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2] and list(seq) == layers
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[1] is layers[1]
    assert seq.append(nn.Sigmoid()) is seq and list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(cv.tensor(np.ones((4, 2), np.float32))).shape == (4, 1)
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.act is named[1]
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Sigmoid"] and list(seq._modules) == ["0", "1", "2"]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    with pytest.raises(IndexError, match="Sequential: index 5 is out of range for a container of length 3"):
        seq[5]


def test_module_list_and_dict() -> None:
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.ReLU())
    ml += [nn.Tanh()]
    ml.insert(0, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "Linear", "ReLU", "Tanh"]
    assert list(ml.state_dict()) == ["1.weight", "1.bias"] and len(ml[1:]) == 3
    with pytest.raises(TypeError, match=r"ModuleList\.extend: `modules` must be an iterable"):
        ml.extend(nn.ReLU())
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md) == ["a", "b"] and "a" in md and len(md) == 2
    assert list(md.state_dict()) == ["a.weight", "a.bias"]
    assert list(nn.ModuleDict(md)) == ["a", "b"]
    assert isinstance(md.pop("b"), nn.ReLU) and list(md.keys()) == ["a"]
    with pytest.raises(KeyError, match="ModuleDict: no module named 'z'"):
        md["z"]


def test_parameter_is_a_tensor_requiring_grad() -> None:
    p = nn.Parameter(cv.tensor(np.ones(3)))
    assert isinstance(p, cv.Tensor) and p.requires_grad and p.dtype == np.float64
    assert "Parameter containing" in repr(p)
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)


def test_module_pickles() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    clone = pickle.loads(pickle.dumps(model))
    for (k, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert isinstance(clone[0].weight, nn.Parameter)
