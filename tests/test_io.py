"""convolve.io: exact round trips of nested checkpoints; truncated, random, foreign, tampered and pickled files refused
with a ValueError naming the path; atomic writes."""

from __future__ import annotations

import io as pyio
import json
import math
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve import io, optim


def _same(a: Any, b: Any) -> None:
    """Deep equality including container types, dtypes and Tensor-ness."""
    assert type(a) is type(b), f"{type(a).__name__} != {type(b).__name__}"
    if isinstance(a, cv.Tensor):
        assert a.requires_grad == b.requires_grad
        _same(a.data, b.data)
    elif isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def _round_trip(obj: Any, tmp_path: Path) -> Any:
    path = tmp_path / "obj.npz"
    io.save(obj, path)
    return io.load(path)


RNG = np.random.default_rng(0)
CASES = {
    "float32 tensor": cv.tensor(RNG.standard_normal((2, 3)).astype(np.float32)),
    "float64 tensor with grad": cv.tensor(RNG.standard_normal(4), requires_grad=True),
    "int64 tensor": cv.tensor(np.arange(5)),
    "arrays": [
        np.zeros((0, 3)),
        np.array(2.5),
        np.array([True, False]),
        np.arange(6, dtype=np.uint8).reshape(2, 3),
        np.array([1 + 2j], np.complex64),
        np.asfortranarray(RNG.standard_normal((3, 2))),
    ],
    "numpy scalars": [np.float32(1.5), np.int64(-3), np.float64(0.1), np.bool_(True)],
    "python scalars": [0, -(2**70), 0.1, math.inf, -math.inf, math.nan, True, False, None, "", "ünïcode ✓"],
    "containers": {"t": (1, (2, [3])), "empty": {}, "l": [], "tuple": ()},
    "int keys": {0: {"step": 3.0}, 1: {}, "0": "a string key is not an int key"},
    "ordered": OrderedDict([("conv.weight", cv.tensor(np.ones((2, 1, 3, 3)))), ("conv.bias", cv.tensor(np.zeros(2)))]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_is_exact(tmp_path, name):
    obj = {"payload": CASES[name], "epoch": 7}
    _same(_round_trip(obj, tmp_path), obj)


def test_optimizer_state_dict_round_trip_resumes_identically(tmp_path):
    rng = np.random.default_rng(1)
    params = [
        cv.tensor(rng.standard_normal((3, 2)), requires_grad=True),
        cv.tensor(rng.standard_normal(4), requires_grad=True),
    ]
    opt = optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.01}], lr=0.1, amsgrad=True)
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(8)]

    def steps(opt, params, gs):
        for g in gs:
            for p, gi in zip(params, g):
                p.grad = cv.tensor(gi)
            opt.step()

    steps(opt, params, grads[:4])
    ckpt = {"params": [p.detach() for p in params], "optimizer": opt.state_dict(), "meta": {"epoch": 4}}
    loaded = _round_trip(ckpt, tmp_path)
    _same(loaded["optimizer"], ckpt["optimizer"])
    clones = [cv.tensor(p.data, requires_grad=True) for p in loaded["params"]]
    opt2 = optim.Adam([{"params": clones[:1]}, {"params": clones[1:]}])
    opt2.load_state_dict(loaded["optimizer"])
    steps(opt, params, grads[4:])
    steps(opt2, clones, grads[4:])
    for a, b in zip(params, clones):
        np.testing.assert_array_equal(a.data, b.data)


def test_file_is_plain_npz_readable_without_pickle(tmp_path):
    path = tmp_path / "m.npz"
    io.save({"w": cv.tensor(np.ones(3))}, path)
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__convolve__"].tobytes())
        assert meta["format"] == "convolve-checkpoint" and meta["version"] == io.VERSION
        np.testing.assert_array_equal(z["a0"], np.ones(3))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt.npz"
    io.save({"v": 1}, path)
    with pytest.raises(TypeError, match=r"save: obj\['bad'\] has type set"):
        io.save({"v": 2, "bad": {1, 2}}, path)
    assert io.load(path) == {"v": 1}, "a failed save must leave the previous file intact"
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    io.save({"v": 3}, str(path))
    assert io.load(str(path)) == {"v": 3} and os.listdir(tmp_path) == ["ckpt.npz"]


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"x": object()}, r"save: obj\['x'\] has type object; only dict/list/tuple of Tensor"),
        ({"x": [np.array([None, 1], dtype=object)]}, r"save: obj\['x'\]\[0\] is an array of dtype object"),
        ({"x": np.array(["a"])}, r"is an array of dtype <U1"),
        ({1.5: 2}, r"save: obj has a key 1.5 of type float; keys must be str or int"),
        ({True: 2}, r"keys must be str or int"),
    ],
)
def test_unstorable_objects_are_refused(tmp_path, obj, match):
    with pytest.raises(TypeError, match=match):
        io.save(obj, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)


# ----- damaged and hostile files ----------------------------------------------------------------------------


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.npz"
    io.save({"w": cv.tensor(np.arange(64.0)), "b": np.ones(3, np.float32), "meta": {"epoch": 1}}, path)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(arr: np.ndarray) -> bytes:
    buf = pyio.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _expect_invalid(path: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        io.load(path)
    assert str(path) in str(info.value), "the message must name the file"


@pytest.mark.parametrize("keep", [0.95, 0.5, 0.05])
def test_truncated_file(good, keep):
    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * keep)])
    _expect_invalid(good, r"is not a valid convolve checkpoint")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_invalid(path, r"is not a valid convolve checkpoint")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _expect_invalid(path, r"is not a valid convolve checkpoint")


def test_flipped_byte_in_an_array_is_detected(good):
    members = _members(good)
    raw = bytearray(members["a0.npy"])
    raw[-3] ^= 0xFF
    members["a0.npy"] = bytes(raw)
    _write_members(good, members)
    _expect_invalid(good, r"array 'a0' does not match its SHA-256 checksum")


def test_zip_crc_corruption_is_detected(good):
    data = bytearray(good.read_bytes())
    at = data.find(_npy(np.arange(64.0))[-64:])
    assert at > 0
    data[at + 10] ^= 0x01
    good.write_bytes(bytes(data))
    _expect_invalid(good, r"is not a valid convolve checkpoint: BadZipFile")


def test_missing_array(good):
    members = _members(good)
    del members["a1.npy"]
    _write_members(good, members)
    _expect_invalid(good, r"array 'a1' listed in the index is missing from the archive")


def test_object_array_is_refused_without_unpickling(good):
    members = _members(good)
    members["a1.npy"] = _npy(np.array([{"evil": 1}, None], dtype=object))
    _write_members(good, members)
    _expect_invalid(good, r"array 'a1' cannot be read without pickle \(object arrays are refused\)")


def test_swapped_array_of_other_shape_is_refused(good):
    members = _members(good)
    members["a1.npy"] = _npy(np.ones(4, np.float32))
    _write_members(good, members)
    _expect_invalid(good, r"array 'a1' is <f4 \[4\], the index says <f4 \[3\]")


def test_unlisted_extra_array_is_refused(good):
    members = _members(good)
    members["extra.npy"] = _npy(np.ones(2))
    _write_members(good, members)
    _expect_invalid(good, r"holds arrays the index does not list: \['extra'\]")


def _edit_meta(path: Path, edit) -> None:
    members = _members(path)
    meta = json.loads(np.load(pyio.BytesIO(members["__convolve__.npy"])).tobytes())
    members["__convolve__.npy"] = _npy(np.frombuffer(json.dumps(edit(meta)).encode(), np.uint8))
    _write_members(path, members)


def test_newer_format_version_is_refused(good):
    _edit_meta(good, lambda m: {**m, "version": 99})
    _expect_invalid(good, r"format version 99 is not supported")


def test_broken_structure_index_is_refused(good):
    _edit_meta(good, lambda m: {**m, "root": {"t": "dict", "items": [["w", {"t": "tensor", "key": "a9"}]]}})
    _expect_invalid(good, r"has a corrupt structure index: obj\['w'\]: refers to array 'a9'")
    _edit_meta(good, lambda m: {**m, "root": {"t": "pickle", "items": []}})
    _expect_invalid(good, r"unknown node type 'pickle'")


def test_index_that_is_not_json(good):
    members = _members(good)
    members["__convolve__.npy"] = _npy(np.frombuffer(b"{not json", np.uint8))
    _write_members(good, members)
    _expect_invalid(good, r"the '__convolve__' index is not valid JSON")


def test_foreign_npz_and_npy_are_refused(tmp_path):
    npz, npy = tmp_path / "plain.npz", tmp_path / "plain.npy"
    np.savez(npz, x=np.ones(2))
    np.save(npy, np.ones(2))
    _expect_invalid(npz, r"has no '__convolve__' index \(not written by convolve.io.save\)")
    _expect_invalid(npy, r"single .npy array, not a .npz archive")


def test_pickle_file_is_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"w": 1}))
    _expect_invalid(path, r"is not a valid convolve checkpoint")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load: no such file: .*nope.npz"):
        io.load(tmp_path / "nope.npz")


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.builds(lambda n, s: np.random.default_rng(s).standard_normal(n), st.integers(0, 4), st.integers(0, 9))
    | st.builds(lambda n: cv.tensor(np.arange(n, dtype=np.float32)), st.integers(0, 4))
)
_trees = st.recursive(
    _leaves,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.lists(kids, max_size=3).map(tuple)
        | st.dictionaries(st.integers(-5, 5) | st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees)
def test_random_nested_structures_round_trip(tmp_path, tree):
    _same(_round_trip(tree, tmp_path), tree)
