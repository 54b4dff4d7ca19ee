"""Your own models everywhere: a model built by your code and saved with convolve.save(model.state_dict(), path)
is evaluated, used for prediction and visualized from the command line with --model module:function; a missing
factory is explained; Grad-CAM and saliency warn when their map is blank; --version and --debug anywhere."""

from __future__ import annotations

import sys
import textwrap
import warnings

import numpy as np
import pytest

import convolve as cv
import convolve.nn as nn
import convolve.nn.functional as F
from convolve import viz
from convolve.cli import main
from convolve.train import model_files

FACTORY = textwrap.dedent("""
    import convolve.nn as nn
    import convolve.nn.functional as F

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 4 * 4, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)  # functional ReLU: no activation layer to record
            return self.fc(x.flatten(1))

    def build():
        return Small()

    not_a_function = 3
""")


NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def own(tmp_path, monkeypatch):
    """mynets.py with a factory in the current folder, and its weights trained for a few steps on the digits."""
    (tmp_path / "mynets.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    factory = model_files.import_factory("mynets:build")
    cv.manual_seed(0)
    model = factory()
    loader = cv.data.DataLoader(cv.data.Digits(), batch_size=64, shuffle=True, generator=cv.Generator(0))
    opt = cv.optim.Adam(model.parameters(), lr=0.01)
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    weights = tmp_path / "weights.pt"
    cv.save(model.state_dict(), weights)
    yield tmp_path, weights, model
    sys.modules.pop("mynets", None)


def test_evaluate_and_predict_a_model_of_your_own(own, capsys):
    folder, weights, model = own
    code, out, _ = run(capsys, "evaluate", weights, "--model", "mynets:build", "--dataset", "digits")
    assert code == 0 and "test accuracy:" in out and "without label smoothing" in out
    accuracy = float(out.strip().splitlines()[-1].split()[-1])
    assert accuracy > 0.5  # trained for one epoch: well above chance
    image = cv.data.Digits(train=False).data[0]
    np.save(folder / "digit.npy", image.astype(np.float64) / 16)
    code, out, _ = run(capsys, "predict", weights, folder / "digit.npy", "--model", f"{folder / 'mynets.py'}:build",
                       "--classes", ",".join(NAMES),
                       "--top", "2")
    assert code == 0 and out.count("(") == 2
    with cv.no_grad():
        best = int(model(cv.tensor(image[None, None].astype(np.float32) / 16)).argmax())
    assert out.split(": ")[1].split()[0] == NAMES[best]


def test_a_missing_or_wrong_factory_says_what_to_do(own, capsys):
    _, weights, _ = own
    code, _, err = run(capsys, "evaluate", weights, "--dataset", "digits")
    assert code == 1 and "has no model metadata" in err and "pass --model module:function" in err
    for spec, needle in [("mynets", "must be 'module:function'"), ("nope:build", "no module named 'nope'"),
                         ("mynets:missing", "has no attribute 'missing'"), ("mynets:not_a_function", "not a callable"),
                         ("mynets:nn", "not a callable")]:
        code, _, err = run(capsys, "evaluate", weights, "--dataset", "digits", "--model", spec)
        assert code == 1 and needle in err, err
    cv.save({"epoch": 3}, weights)
    code, _, err = run(capsys, "evaluate", weights, "--dataset", "digits", "--model", "mynets:build")
    assert code == 1 and "holds no state_dict" in err


def test_weights_under_a_model_key_and_strict_keys(own, tmp_path):
    model = own[2]
    cv.save({"model_state_dict": model.state_dict(), "epoch": 1}, tmp_path / "ckpt.pt")
    loaded, meta = model_files.load_model(tmp_path / "ckpt.pt", "mynets:build")
    np.testing.assert_array_equal(loaded.fc.weight.numpy(), model.fc.weight.numpy())
    assert not loaded.training and meta["factory"] == "mynets:build"
    cv.save({"conv.weight": model.conv.weight}, tmp_path / "partial.pt")
    with pytest.raises((KeyError, RuntimeError, ValueError), match=r"fc\.weight"):
        model_files.load_model(tmp_path / "partial.pt", "mynets:build")


@pytest.mark.parametrize("view", ["gradcam", "saliency", "features", "filters", "confusion"])
def test_visualize_a_model_of_your_own(own, capsys, view):
    pytest.importorskip("matplotlib")
    folder, weights, _ = own
    extra = [] if view in ("filters", "confusion") else ["--test-index", "3"]
    code, out, err = run(capsys, "visualize", view, weights, "--model", "mynets:build", "--dataset", "digits",
                         "--out", folder / "viz", *extra)
    assert code == 0, err
    assert (folder / "viz").is_dir() and out.strip().splitlines()[-1].startswith("wrote ")


class Negative(nn.Module):
    """Conv maps that are negative everywhere feeding a positive linear read-out: Grad-CAM's ReLU of the weighted
    sum is zero at every location (the 'pre-activation maps' case)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 2)
        with cv.no_grad():
            self.conv.weight.fill_(-1.0)
            self.conv.bias.fill_(-0.1)
            self.fc.weight.fill_(0.5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(cv.tensor(x.numpy().reshape(1, -1)))  # leaves the graph


def test_grad_cam_and_saliency_warn_on_blank_maps():
    x = np.ones((1, 4, 4), np.float32)
    with pytest.warns(UserWarning, match=r"grad_cam: the map is all zeros: .* negative everywhere; .*F\.relu"):
        cam = viz.grad_cam(Negative(), x, target=0)  # default layer: the only conv
    assert not cam.any()
    with pytest.warns(UserWarning, match=r"saliency: the class score does not depend on the input"):
        viz.saliency(Detached(), x, target=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cv.manual_seed(0)
        model = cv.models.get_model("digits_cnn")
        digit = cv.data.Digits(train=False)[0][0].numpy()
        assert viz.grad_cam(model, digit).shape == (8, 8)  # a normal map: no warning


def test_features_default_skips_1x1_maps():
    model = cv.models.get_model("lenet5")
    maps = viz.feature_maps(model, np.zeros((1, 32, 32), np.float32))
    assert maps and all(m.ndim == 3 and m.shape[1] * m.shape[2] > 1 for m in maps.values())


def test_version_and_debug_anywhere(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"convolve {cv.__version__}"
    code, _, err = run(capsys, "evaluate", "/no/such/file.npz", "--model", "x:y")
    assert code == 1 and "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["evaluate", "/no/such/file.npz", "--debug"])
