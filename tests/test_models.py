"""The model registry and what is specific to each architecture (geometry, options, keys, conventions)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.models as M
import convolve.nn.functional as F
from convolve import nn
from convolve.inspect import summary
from tests.model_helpers import n_params, one_blas_thread  # noqa: F401 (autouse fixture)
from tests.oracle import assert_close, compare_with_torch

ZOO = ["alexnet", "alexnet_torchvision", "digits_cnn", "googlenet", "inception_v2", "inception_v3", "lenet5",
       "mnist_cnn", "resnet18", "resnet20", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
       "vgg16_bn", "vgg19", "vgg19_bn", "vgg_small", "zfnet"]


def shapes(model: nn.Module, types: tuple[type, ...], input_size: tuple[int, ...] | None = None) -> list[tuple]:
    """Output shapes (without the batch) of the layers of the given types, from a summary."""
    return [r.output_shape[1:] for r in summary(model, input_size).rows if isinstance(
        model.get_submodule(r.name) if r.name != type(model).__name__ else model, types)]


# ----- registry -----------------------------------------------------------------------------------------------
def test_list_models_and_functions() -> None:
    assert M.list_models() == ZOO
    assert M.list_models("resnet") == ["resnet18", "resnet20", "resnet34", "resnet50"]
    for name in ZOO:
        assert name in M.__all__ and callable(getattr(M, name))
        spec = M.model_spec(name)
        assert len(spec.input_size) == 3 and spec.num_classes >= 10 and spec.description


def test_get_model_options_and_classes() -> None:
    m = M.get_model("lenet5", num_classes=3, activation="relu", partial_c3=True)
    assert isinstance(m.act1, nn.ReLU) and isinstance(m.c3, M.PartialConv2d)
    assert m(cv.randn(2, 1, 32, 32)).shape == (2, 3)
    assert M.get_model("LeNet5").output.out_features == 10  # names are case-insensitive; default classes
    assert M.model_spec("googlenet").options == ("aux_logits", "dropout", "dropout_aux", "true_5x5")
    assert M.resnet20(num_classes=100).fc.out_features == 100


def test_get_model_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet99'; valid names: alexnet, alexnet_torchvision"):
        M.get_model("resnet99")
    with pytest.raises(TypeError, match=r"get_model: model 'resnet18' has no option 'dropuot'; valid options: "
                                        r"zero_init_residual"):
        M.get_model("resnet18", dropuot=0.5)
    with pytest.raises(ValueError, match=r"get_model: `num_classes` must be a positive int, got 0"):
        M.get_model("lenet5", num_classes=0)
    with pytest.raises(TypeError, match="model_spec: `name` must be a str, got int"):
        M.model_spec(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        M.resnet18(foo=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="register_model: a model named 'lenet5' is already registered"):
        M.register_model((1, 32, 32), 10, "lenet")(M.lenet5.__wrapped__)  # type: ignore[attr-defined]


# ----- LeNet-5 ------------------------------------------------------------------------------------------------
def test_lenet5_layers() -> None:
    m = M.lenet5()
    assert [n_params(getattr(m, k)) for k in ("c1", "c3", "c5", "f6")] == [156, 2_416, 48_120, 10_164]
    assert n_params(M.lenet5(partial_c3=True).c3) == 1_516
    assert shapes(m, (nn.Conv2d, nn.AvgPool2d)) == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5),
                                                    (120, 1, 1)]
    assert isinstance(m.act1, nn.Tanh) and isinstance(m.s2, nn.AvgPool2d)
    with pytest.raises(ValueError, match="LeNet5: `activation` must be 'tanh' or 'relu', got 'gelu'"):
        M.lenet5(activation="gelu")


def test_partial_c3_table() -> None:
    table = M.LENET5_C3_TABLE
    assert [len(c) for c in table] == [3] * 6 + [4] * 9 + [6]
    conv = M.PartialConv2d(6, 16, 5, table)
    dense = conv.dense_weight().numpy()
    mask = np.zeros((16, 6), bool)
    for o, ins in enumerate(table):
        mask[o, list(ins)] = True
    assert (dense[~mask] == 0).all() and (dense[mask] != 0).all()
    assert mask.sum() * 25 == conv.weight.numel() == 1_500


def test_partial_conv_matches_masked_torch_conv() -> None:
    conv = M.PartialConv2d(6, 16, 5, M.LENET5_C3_TABLE).double()
    w, b = conv.weight.numpy().copy(), conv.bias.numpy().copy()
    index = conv._index
    dense = np.concatenate([w, np.zeros((1, 5, 5))])[index]
    x = np.random.default_rng(0).standard_normal((2, 6, 14, 14))
    compare_with_torch(lambda t: conv(t), lambda t: torch.nn.functional.conv2d(t, torch.tensor(dense),
                                                                               torch.tensor(b)), [x])
    wt = torch.tensor(w, requires_grad=True)
    th = torch.nn.functional.conv2d(torch.tensor(x), torch.cat([wt, torch.zeros(1, 5, 5, dtype=wt.dtype)])[index])
    th.sum().backward()
    conv.zero_grad()
    (conv(cv.tensor(x)) - conv.bias.reshape(1, 16, 1, 1)).sum().backward()
    assert_close(conv.weight.grad.numpy(), wt.grad.numpy(), np.float64, "PartialConv2d weight gradient")


def test_partial_conv_errors() -> None:
    with pytest.raises(ValueError, match="PartialConv2d: `connections` must list the inputs of each of the 2"):
        M.PartialConv2d(3, 2, 3, ((0,),))
    with pytest.raises(ValueError, match=r"PartialConv2d: `connections\[1\]` must be distinct input maps in"):
        M.PartialConv2d(3, 2, 3, ((0,), (1, 3)))


# ----- AlexNet, ZFNet --------------------------------------------------------------------------------------
def test_alexnet_paper_geometry() -> None:
    m = M.alexnet()
    convs = [mod for mod in m.features if isinstance(mod, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # conv3 and the FC layers connect the two towers
    assert (convs[0].kernel_size, convs[0].stride, convs[0].out_channels) == ((11, 11), (4, 4), 96)
    assert shapes(m, (nn.MaxPool2d,)) == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]
    pools = [mod for mod in m.features if isinstance(mod, nn.MaxPool2d)]
    assert all((p.kernel_size, p.stride) == (3, 2) for p in pools)  # overlapping pooling
    assert [d.p for d in m.classifier if isinstance(d, nn.Dropout)] == [0.5, 0.5]
    tv = M.alexnet_torchvision()
    assert not any(isinstance(mod, nn.LocalResponseNorm) for mod in tv.modules())


def test_alexnet_lrn_is_the_papers() -> None:
    """PyTorch's LocalResponseNorm divides alpha by n: our module must compute the paper's formula with alpha=1e-4."""
    lrn = [mod for mod in M.alexnet().features if isinstance(mod, nn.LocalResponseNorm)]
    assert len(lrn) == 2
    assert (lrn[0].size, lrn[0].alpha, lrn[0].beta, lrn[0].k) == (5, pytest.approx(5e-4), 0.75, 2.0)
    a = np.random.default_rng(1).standard_normal((2, 12, 3, 3)) * 10
    sq = np.pad(a**2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(sq[:, i:i + 12] for i in range(5))  # sum over max(0, i-n/2) .. min(N-1, i+n/2)
    paper = a / (2 + 1e-4 * window) ** 0.75
    ours = lrn[0].double()(cv.tensor(a)).numpy()
    assert_close(ours, paper, np.float64, "AlexNet LRN vs the paper's formula")


def test_zfnet_geometry() -> None:
    m = M.zfnet()
    assert (m.features[0].kernel_size, m.features[0].stride) == ((7, 7), (2, 2))
    assert shapes(m, (nn.Conv2d, nn.MaxPool2d)) == [
        (96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13), (384, 13, 13), (384, 13, 13),
        (256, 13, 13), (256, 6, 6)]
    expected = (3 * 49 * 96 + 96) + (96 * 25 * 256 + 256) + (256 * 9 * 384 + 384) + (384 * 9 * 384 + 384) \
        + (384 * 9 * 256 + 256) + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert n_params(m) == expected


# ----- VGG, ResNet ------------------------------------------------------------------------------------------
def test_vgg_only_3x3_convs_and_2x2_pools() -> None:
    """The conv part of every configuration (the full models are built in test_models_zoo / _torchvision)."""
    from convolve.models.vgg import VGG_CONFIGS, make_vgg_features

    for config, n_convs in (("A", 8), ("B", 10), ("D", 13), ("E", 16)):
        features = make_vgg_features(VGG_CONFIGS[config], batch_norm=config == "D")
        convs = [m for m in features if isinstance(m, nn.Conv2d)]
        pools = [m for m in features if isinstance(m, nn.MaxPool2d)]
        assert len(convs) == n_convs and len(pools) == 5  # + 3 FC layers: VGG-11, -13, -16, -19
        assert all((c.kernel_size, c.stride, c.padding) == ((3, 3), (1, 1), (1, 1)) for c in convs)
        assert all((p.kernel_size, p.stride) == (2, 2) for p in pools)
    keys = list(make_vgg_features(VGG_CONFIGS["A"], batch_norm=True).state_dict())
    assert keys[:6] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    assert keys[6] == "1.num_batches_tracked"


def test_resnet_keys_and_blocks() -> None:
    m = M.resnet50()
    keys = set(m.state_dict())
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer2.0.downsample.0.weight",
              "layer2.0.downsample.1.num_batches_tracked", "fc.bias"):
        assert k in keys
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)  # v1.5: stride on the 3x3
    r18 = M.resnet18(zero_init_residual=True)
    assert all((blk.bn2.weight.numpy() == 0).all() for blk in r18.layer1)
    assert r18.layer1[0].downsample is None and r18.layer2[0].downsample is not None


def test_resnet20_shortcut_option_a() -> None:
    m = M.resnet20()
    sc = m.layer2[0].shortcut
    assert isinstance(sc, M.small.ShortcutA) and n_params(sc) == 0
    x = np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32)
    out = sc(cv.tensor(x)).numpy()
    assert out.shape == (2, 32, 4, 4)
    assert (out[:, :8] == 0).all() and (out[:, 24:] == 0).all()
    np.testing.assert_array_equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert sum(len(layer) for layer in (m.layer1, m.layer2, m.layer3)) * 2 + 2 == 20  # 6n + 2 weighted layers


# ----- Inception ---------------------------------------------------------------------------------------------
def test_inception_blocks() -> None:
    g = M.googlenet()
    assert g.inception3a(cv.randn(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    assert g.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision's "5x5" branch
    assert M.googlenet(true_5x5=True).inception3a.branch3[1].conv.kernel_size == (5, 5)
    block = M.InceptionBlockV2(192, 64, 96, 128, 16, 32, 32)
    assert block(cv.randn(1, 192, 9, 9)).shape == (1, 256, 9, 9)
    two_3x3 = [m.conv for m in block.branch5x5[1:]]
    assert all(c.kernel_size == (3, 3) for c in two_3x3)
    square = M.InceptionBlockV2(32, 8, 8, 8, 32, 32, 8).branch5x5  # 32 -> 32 -> 32 channels
    weights = sum(m.conv.weight.numel() for m in square[1:])
    assert weights / nn.Conv2d(32, 32, 5).weight.numel() == pytest.approx(1 - 0.28)  # 5x5 -> two 3x3: 28% cheaper
    v3 = M.inception_v3()
    assert (v3.Mixed_6b.branch7x7_2.conv.kernel_size, v3.Mixed_6b.branch7x7_3.conv.kernel_size) == ((1, 7), (7, 1))
    e = v3.Mixed_7b  # 1x3 and 3x1 of 384 -> 384: 2/3 of the weights of a 3x3 (33% cheaper)
    pair = e.branch3x3_2a.conv.weight.numel() + e.branch3x3_2b.conv.weight.numel()
    assert pair / nn.Conv2d(384, 384, 3).weight.numel() == pytest.approx(2 / 3)
    v3.eval()
    grid = v3.Mixed_6a(cv.randn(1, 288, 35, 35))  # grid reduction: stride-2 convs and pooling side by side
    assert grid.shape == (1, 768, 17, 17)


# ----- small models ---------------------------------------------------------------------------------------------
def test_digits_cnn_learns_the_digits() -> None:
    """The default model of `convolve train`: >= 97% held-out accuracy after a few epochs of momentum SGD."""
    from convolve.data.digits import load_digits_arrays

    images, labels, test = load_digits_arrays()
    x = (images.astype(np.float32) / 16)[:, None]  # (N, 1, 8, 8)
    y = labels.astype(np.int64)
    cv.manual_seed(0)
    model = M.digits_cnn()
    params = list(model.parameters())
    velocity = [np.zeros_like(p.numpy()) for p in params]
    rng = np.random.default_rng(0)
    train_idx = np.flatnonzero(~test)
    start = time.process_time()
    for _ in range(5):
        order = rng.permutation(train_idx)
        for i in range(0, len(order), 32):
            batch = order[i:i + 32]
            model.zero_grad()
            F.cross_entropy(model(cv.tensor(x[batch])), cv.tensor(y[batch])).backward()
            for p, v in zip(params, velocity):
                v *= 0.9
                v += p.grad.numpy()
                p.data -= 0.05 * v
    cpu = time.process_time() - start
    model.eval()
    with cv.no_grad():
        accuracy = (model(cv.tensor(x[test])).numpy().argmax(1) == y[test]).mean()
    assert accuracy >= 0.97, f"held-out accuracy {accuracy:.3f}"
    assert cpu < 45, f"5 epochs took {cpu:.1f} s of CPU"
