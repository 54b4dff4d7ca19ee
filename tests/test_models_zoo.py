"""Every zoo model: parameter count against the reference, one forward + backward at its native input size,
and every summary row's claimed output shape equal to the shape the layer really produced."""

from __future__ import annotations

import numpy as np
import pytest

import convolve.models as M
from convolve.inspect import summary
from tests.model_helpers import n_params, one_blas_thread  # noqa: F401 (autouse fixture)

# Reference counts: the papers and torchvision 0.29 (see /work/shared/LECTURE_FACTS.md); He et al. for ResNet-20.
REFERENCE_PARAMS = {
    "lenet5": 156 + 2_416 + 48_120 + 10_164 + 850,
    "alexnet": 60_965_224,
    "alexnet_torchvision": 61_100_840,
    "zfnet": None,  # no reference count published; checked layer by layer in test_models.py
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_047_848 + 2 * (64 * 2 + 128 * 2 + 256 * 2 + 512 * 4),
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_667_240 + 2 * (64 * 2 + 128 * 2 + 256 * 4 + 512 * 8),
    "googlenet": 13_004_888,
    "inception_v2": None,  # no published count: derived from the paper's Table 1 in test_inception_v2.py
    "inception_v3": 27_161_264,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet20": 269_722,
    "digits_cnn": None,
    "mnist_cnn": None,
    "vgg_small": (3 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128)
    + (128 * 256 * 9 + 256) + (256 * 4 * 4 * 10 + 10),
}
# torchvision's published "GFLOPS" per model, which count multiply-accumulates of convs and linear layers, i.e.
# MACs in our terms (eval mode: aux heads excluded), 224x224 input (299 for Inception v3).
TORCHVISION_GMACS = {"alexnet_torchvision": 0.71, "vgg11": 7.61, "vgg11_bn": 7.61, "vgg13": 11.31, "vgg13_bn": 11.31,
                     "vgg16": 15.47, "vgg16_bn": 15.47, "vgg19": 19.63, "vgg19_bn": 19.63, "googlenet": 1.50,
                     "inception_v3": 5.71, "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09}
AUX = ("aux1.", "aux2.", "AuxLogits.")
# Batch 2 for Inception v2/v3: in training mode the aux head's BatchNorm sees a 1x1 map (PyTorch needs > 1 value).
BATCH = {"inception_v2": 2, "inception_v3": 2}


def test_reference_table_covers_the_zoo() -> None:
    assert sorted(REFERENCE_PARAMS) == M.list_models()


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_zoo_model(name: str) -> None:
    """Count, native-size forward in training mode (aux heads on), backward to every parameter, shape claims."""
    model = M.get_model(name)
    expected = REFERENCE_PARAMS[name]
    if expected is not None:
        assert n_params(model) == expected, f"{name}: {n_params(model):,} parameters, reference {expected:,}"
    spec = M.model_spec(name)
    assert model.input_size == spec.input_size
    s = summary(model, batch_size=BATCH.get(name, 1), mode="train")
    assert s.total_params == n_params(model)
    for row in s.rows:
        assert row.claimed_shape == row.output_shape, f"{name}.{row.name}: claimed {row.claimed_shape}"
        assert row.receptive_field is not None, f"{name}.{row.name}: receptive field unknown"
        assert row.flops == 2 * row.macs
    batch = BATCH.get(name, 1)
    if name in TORCHVISION_GMACS:
        macs = sum(r.macs for r in s.rows if not r.name.startswith(AUX)) / batch
        assert round(macs / 1e9, 2) == TORCHVISION_GMACS[name], f"{name}: {macs:,} MACs"
    outputs = s.output if isinstance(s.output, tuple) else (s.output,)
    for out in outputs:
        assert out.shape == (batch, spec.num_classes)
        assert np.isfinite(out.numpy()).all()
    loss = outputs[0].sum()
    for aux in outputs[1:]:
        loss = loss + 0.3 * aux.sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:5]}"
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())


def test_aux_heads_are_trained_only() -> None:
    """GoogLeNet/Inception v3 with aux_logits: a namedtuple in training mode, a tensor in eval mode."""
    import convolve as cv

    g = M.googlenet(num_classes=7)
    x = cv.randn(1, 3, 64, 64)
    out = g(x)
    assert isinstance(out, M.GoogLeNetOutputs)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (1, 7)
    g.eval()
    assert isinstance(g(x), cv.Tensor)
    no_aux = M.googlenet(num_classes=7, aux_logits=False)
    assert isinstance(no_aux(x), cv.Tensor)
    assert no_aux.aux1 is None and n_params(no_aux) == 6_624_904 - 1000 * 1024 - 1000 + 7 * 1024 + 7
    v3 = M.inception_v3(aux_logits=False)
    assert n_params(v3) == 23_834_568
    v3.eval()
    assert isinstance(v3(cv.randn(1, 3, 75, 75)), cv.Tensor)  # 75x75 is the smallest input it accepts
    assert M.InceptionOutputs._fields == ("logits", "aux_logits")
