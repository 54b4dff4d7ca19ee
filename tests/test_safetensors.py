"""safetensors weights: convolve -> file -> PyTorch's twin of the model (safetensors.torch), and back, with
equal eval outputs; every dtype, metadata, and bad input refused by name."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="safetensors is not installed")
torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

import convolve as cv  # noqa: E402
import convolve.models as M  # noqa: E402
from convolve import nn  # noqa: E402
from convolve.safetensors_io import safetensors_metadata  # noqa: E402
from tests.test_models_torchvision import RefResNet18, randomize  # noqa: E402


def _twins() -> tuple[nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ref = RefResNet18().eval()
    randomize(ref)
    return M.resnet18().eval(), ref


def _outputs(ours: nn.Module, theirs: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with cv.no_grad():
        got = ours(cv.tensor(x)).numpy()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    return got, expected


def test_convolve_file_loads_into_the_pytorch_twin(tmp_path) -> None:
    ours, theirs = _twins()
    ours.load_state_dict(theirs.state_dict())  # make the two equal, then scramble torch's copy
    for p in theirs.parameters():
        torch.nn.init.zeros_(p)
    path = cv.save_safetensors(ours.state_dict(), tmp_path / "resnet18.safetensors", metadata={"format": "pt"})
    loaded = load_file(str(path))
    assert set(loaded) == set(ours.state_dict())
    assert loaded["bn1.num_batches_tracked"].dtype == torch.int64
    theirs.load_state_dict(loaded, strict=True)
    got, expected = _outputs(ours, theirs)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert safetensors_metadata(path) == {"format": "pt"}


def test_pytorch_file_loads_into_convolve(tmp_path) -> None:
    ours, theirs = _twins()
    save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    state = cv.load_safetensors(tmp_path / "torch.safetensors")
    assert all(isinstance(v, cv.Tensor) for v in state.values())
    ours.load_state_dict(state)
    got, expected = _outputs(ours, theirs)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert int(ours.state_dict()["bn1.num_batches_tracked"].item()) == 7


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"])
def test_round_trip_keeps_values_and_dtypes(tmp_path, dtype: str) -> None:
    values = (np.random.default_rng(0).standard_normal((3, 4)) * 10).astype(dtype)
    state = {"w": cv.tensor(values), "array": values[::2, ::-1], "scalar": np.asarray(values[0, 0])}
    cv.save_safetensors(state, tmp_path / "x.safetensors")
    back = cv.load_safetensors(tmp_path / "x.safetensors")
    assert sorted(back) == sorted(state)
    for key, value in state.items():
        expected = value.numpy() if isinstance(value, cv.Tensor) else value
        assert back[key].dtype == np.dtype(dtype) and back[key].shape == expected.shape
        np.testing.assert_array_equal(back[key].numpy(), expected)


def test_bad_input_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="keys must be str"):
        cv.save_safetensors({1: np.zeros(2)}, path)
    with pytest.raises(TypeError, match=r"value of 'w' must be a Tensor or a NumPy array, got list"):
        cv.save_safetensors({"w": [1, 2]}, path)
    with pytest.raises(TypeError, match="'c' has dtype complex128"):
        cv.save_safetensors({"c": np.zeros(2, dtype=complex)}, path)
    with pytest.raises(TypeError, match="metadata"):
        cv.save_safetensors({"w": np.zeros(2)}, path, metadata={"epochs": 3})
    assert not path.exists(), "a refused save must not leave a file"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        cv.load_safetensors(path)
    with pytest.raises(FileNotFoundError, match="no file"):
        cv.load_safetensors(tmp_path / "missing.safetensors")


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    import convolve._atomic as atomic

    path = tmp_path / "w.safetensors"
    cv.save_safetensors({"w": np.ones(3, dtype=np.float32)}, path)

    def crash(label: str) -> None:  # a kill after the new content is written, before the rename
        if "temporary" in label:
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "fault_hook", crash)
    with pytest.raises(KeyboardInterrupt):
        cv.save_safetensors({"w": np.zeros(3, dtype=np.float32)}, path)
    np.testing.assert_array_equal(cv.load_safetensors(path)["w"].numpy(), np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


HOSTILE = {  # 8-byte little-endian header length, then the JSON header, then data
    "header_length_2^62": (2**62).to_bytes(8, "little") + b"{}",
    "huge_shape": (lambda h: len(h).to_bytes(8, "little") + h)(
        b'{"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}'),
    "offsets_past_the_end": (lambda h: len(h).to_bytes(8, "little") + h + b"\0" * 8)(
        b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'),
    "shape_disagrees_with_offsets": (lambda h: len(h).to_bytes(8, "little") + h + b"\0" * 8)(
        b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}'),
}

_HOSTILE_DRIVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # 2 GB of address space: no giant allocation
import convolve as cv
try:
    cv.load_safetensors(sys.argv[1])
except ValueError as e:
    print("ValueError:", e)
"""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_under_a_memory_limit(tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(HOSTILE[name])
    result = subprocess.run([sys.executable, "-c", _HOSTILE_DRIVER, str(path)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ValueError:") and "not a readable safetensors file" in result.stdout
