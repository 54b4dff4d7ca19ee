"""The `convolve` command line end to end on the bundled digits (1 epoch), its error voice (one line, non-zero
exit, no traceback), the image readers of `predict`, and the CIFAR-10 path on small generated files."""

from __future__ import annotations

import gzip
import pickle
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import convolve as cv
from convolve.cli import main
from convolve.data import get_dataset
from convolve.data.images import PNG_SIGNATURE, read_image, write_png
from convolve.train import History, load_checkpoint
from convolve.train.model_files import load_model
from convolve.train.recipe import prepare_image


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if not line.startswith("convolve: warning: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One 1-epoch `convolve train` on the digits, shared by the tests that need a checkpoint."""
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "1", "--out", str(out), "--batch-size", "32", "--lr", "0.01"])
    assert code == 0
    return out


def test_train_default_model_on_digits(digits_run):
    for name in ("last.npz", "best.npz", "history.csv", "history.json"):
        assert (digits_run / name).is_file()
    state, extra = load_checkpoint(digits_run / "last.npz")
    assert "features.0.weight" in state
    meta = extra["meta"]
    assert meta["model"] == "digits_cnn" and meta["dataset"] == "digits" and meta["image_shape"] == [1, 8, 8]
    assert extra["epoch"] == 1 and len(History.load_json(digits_run / "history.json")) == 1


def test_train_prints_test_accuracy_last(capsys, tmp_path):
    code, out, _ = run(capsys, "train", "digits_cnn", "--dataset", "digits", "--epochs", "1", "--out", tmp_path,
                       "--optimizer", "sgd", "--schedule", "cosine", "--label-smoothing", "0.1", "--augment")
    last = out.strip().splitlines()[-1]
    assert code == 0 and last.startswith("test accuracy: ") and 0.0 <= float(last.split(": ")[1]) <= 1.0
    assert "epoch 1: train loss" in out and "test loss" in out and "(losses with label smoothing 0.1)" in out
    from convolve.cli.visualize import _curve_labels

    assert _curve_labels(tmp_path) == ("test", "with label smoothing 0.1")  # the curves say what they measure


def test_evaluate_matches_and_prints_confusion(capsys, digits_run):
    code, out, _ = run(capsys, "evaluate", digits_run / "last.npz")
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1].startswith("test accuracy: ")
    assert "confusion matrix" in out and "per-class accuracy" in out
    code2, out2, _ = run(capsys, "evaluate", digits_run)  # a run folder works too
    assert code2 == 0 and out2.strip().splitlines()[-1] == lines[-1]


def test_cli_resume_is_exact(capsys, tmp_path):
    common = ["train", "--epochs", "2", "--schedule", "none", "--augment", "--seed", "5"]
    assert run(capsys, *common, "--out", tmp_path / "full")[0] == 0
    assert run(capsys, "train", "--epochs", "1", "--schedule", "none", "--augment", "--seed", "5",
               "--out", tmp_path / "cut")[0] == 0
    code, out, _ = run(capsys, *common, "--out", tmp_path / "cut", "--resume")
    assert code == 0 and "epoch 2:" in out and "epoch 1:" not in out
    a, _ = load_checkpoint(tmp_path / "full" / "last.npz")
    b, extra = load_checkpoint(tmp_path / "cut" / "last.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert extra["epoch"] == 2


def test_cli_early_stopping_on_a_validation_split(capsys, tmp_path):
    code, out, _ = run(capsys, "train", "--val-split", "0.2", "--patience", "1", "--epochs", "40", "--schedule",
                       "none", "--out", tmp_path)
    assert code == 0 and "/ 287 validation /" in out and "val loss" in out
    assert "early stopping after epoch" in out and out.strip().splitlines()[-1].startswith("test accuracy: ")
    assert len(History.load_json(tmp_path / "history.json")) < 40


def _model_probs(run_dir, image):
    model, meta = load_model(str(run_dir))
    with cv.no_grad():
        logits = model(cv.tensor(prepare_image(image, meta, "x"))).numpy()[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def test_predict_pgm_png_npy(capsys, digits_run, tmp_path):
    img = get_dataset("digits", train=False).data[0]  # uint8 8x8 in 0..16
    pgm = tmp_path / "d.pgm"
    pgm.write_bytes(b"P5\n# a digit\n8 8\n16\n" + img.tobytes())
    npy = tmp_path / "d.npy"
    np.save(npy, img)
    png = tmp_path / "d.png"
    write_png(png, np.round(img * 255.0 / 16).astype(np.uint8))
    code, out, _ = run(capsys, "predict", digits_run, pgm, npy, png, "--top", "2")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 3
    p = _model_probs(digits_run, img[:, :, None] / 16.0)
    k = int(p.argmax())
    for line in lines[:2]:
        assert line.split(": ")[1].startswith(f"{k} ({p[k]:.4f})"), line
    assert lines[2].split(": ")[1].count("(") == 2


def test_predict_wrong_size_and_channels(capsys, digits_run, tmp_path):
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((28, 28), np.uint8))
    code, _, err = run(capsys, "predict", digits_run, big)
    assert_one_line_error(code, err, "expected a 1-channel 8x8 image", "got 1 channel of 28x28")
    rgb = tmp_path / "rgb.png"
    write_png(rgb, np.zeros((8, 8, 3), np.uint8))
    code, _, err = run(capsys, "predict", digits_run, rgb)
    assert_one_line_error(code, err, "expected a 1-channel", "got 3 channels of 8x8")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"hello")
    code, _, err = run(capsys, "predict", digits_run, junk)
    assert_one_line_error(code, err, "not a PNG, PGM/PPM or NPY file")


@pytest.mark.parametrize("argv, needles", [
    (["train", "nosuchnet"], ["unknown model 'nosuchnet'"]),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/dir"], ["/nonexistent/dir does not exist"]),
    (["train", "--dataset", "imagenet"], ["unknown dataset 'imagenet'"]),
    (["train", "--epochs", "zero"], ["--epochs", "invalid positive_int value"]),
    (["train", "--epochs", "0"], ["must be a positive integer"]),
    (["train", "--optimizer", "lbfgs"], ["invalid choice: 'lbfgs'"]),
    (["train", "vgg_small", "--dataset", "digits"], ["vgg_small", "expects 3-channel inputs", "1-channel"]),
    (["train", "--option", "nosuch=1", "--epochs", "1"], ["no option 'nosuch'"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    (["evaluate", "/nonexistent.npz"], ["no checkpoint file at /nonexistent.npz"]),
    (["summary", "nosuchnet"], ["unknown model"]),
    (["train", "--lr"], ["expected one argument"]),
    (["train", "--lr", "1e6", "--optimizer", "sgd"], ["the loss is nan", "lower learning rate"]),
    (["train", "--resume"], ["cannot resume, no checkpoint"]),
    (["train", "--patience", "2"], ["--patience needs a validation split"]),
    (["train", "--val-split", "1.5"], ["--val-split 1.5 leaves"]),
])
def test_errors_are_one_line(capsys, tmp_path, argv, needles):
    if argv[0] == "train" and argv[-1] != "--lr":
        argv = [*argv, "--out", str(tmp_path)]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)


def test_corrupt_dataset_and_checkpoint(capsys, tmp_path):
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "convolve: error:")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run(capsys, "evaluate", bad)
    assert_one_line_error(code, err, "bad.npz")


def test_listing_commands_and_summary(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "lenet5" in out and "digits_cnn" in out and "1x32x32" in out
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and all(n in out for n in ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100"))
    code, out, _ = run(capsys, "summary", "digits_cnn")
    assert code == 0 and "Conv2d" in out
    code, out, _ = run(capsys, "summary", "lenet5", "--input-size", "1", "32", "32")
    assert code == 0 and ("61,706" in out or "61706" in out)
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "--label-smoothing" in out
    code, out, _ = run(capsys, "visualize", "--help")  # wired from convolve.cli.visualize
    assert code == 0 and "filters" in out


def test_help_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "convolve", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "train" in proc.stdout and "predict" in proc.stdout and not proc.stderr


# ----- image readers --------------------------------------------------------------------------------------
def _png_bytes(img: np.ndarray, ctype: int, filters: list[int], bpp: int) -> bytes:
    """A PNG whose row y uses filter filters[y % len]; the reference encoder, byte by byte."""
    h = img.shape[0]
    rows = img.reshape(h, -1).astype(np.int64)
    raw = bytearray()
    prev = np.zeros(rows.shape[1], np.int64)
    for y in range(h):
        f = filters[y % len(filters)]
        cur = rows[y]
        out = []
        for x in range(len(cur)):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c)
                                                                                      else c)
            pred = [0, a, b, (a + b) // 2, paeth][f]
            out.append((cur[x] - pred) & 0xFF)
        raw += bytes([f]) + bytes(out)
        prev = cur

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", img.shape[1], h, 8, ctype, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ctype, channels", [(0, 1), (2, 3), (6, 4)])
def test_png_reader_all_filters(tmp_path, ctype, channels):
    img = np.random.default_rng(ctype).integers(0, 256, (10, 7, channels)).astype(np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(img, ctype, [0, 1, 2, 3, 4], channels))
    got = read_image(path)
    np.testing.assert_allclose(got, img[:, :, : min(channels, 3)] / 255.0)


def test_pnm_and_npy_readers(tmp_path):
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "a.pgm").write_bytes(b"P2\n4 3\n11\n" + " ".join(map(str, img.ravel())).encode())
    np.testing.assert_allclose(read_image(tmp_path / "a.pgm")[:, :, 0], img / 11.0)
    rgb = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
    (tmp_path / "a.ppm").write_bytes(b"P6 4 3 255\n" + rgb.tobytes())
    np.testing.assert_allclose(read_image(tmp_path / "a.ppm"), rgb / 255.0)
    (tmp_path / "short.pgm").write_bytes(b"P5 4 3 255\n" + img.tobytes()[:5])
    with pytest.raises(ValueError, match="expected 12 samples"):
        read_image(tmp_path / "short.pgm")
    np.save(tmp_path / "chw.npy", rgb.transpose(2, 0, 1).astype(np.float32) / 255)
    np.testing.assert_allclose(read_image(tmp_path / "chw.npy"), rgb / 255.0, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "missing.png")


# ----- CIFAR-10 end to end on generated files ---------------------------------------------------------------
def test_cifar10_path_end_to_end(capsys, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def batch(n):
        labels = [int(v) for v in rng.integers(0, 10, n)]
        return {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"labels": labels}

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(8), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(10), protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--dataset", "cifar10", "--data-dir", tmp_path, "--epochs",
                            "1", "--batch-size", "20", "--augment", "--out", out)
    assert code == 0, err
    # the default model for cifar10 is resnet20: BatchNorm buffers go through the checkpoint
    assert "training resnet20 on cifar10 (40 train / 10 test" in stdout
    trained_line = stdout.strip().splitlines()[-1]
    assert trained_line.startswith("test accuracy: ")
    img = tmp_path / "plane.png"
    write_png(img, rng.integers(0, 256, (32, 32, 3)).astype(np.uint8))
    code, stdout, err = run(capsys, "predict", out, img)
    assert code == 0 and stdout.split(": ")[1].split(" (")[0] in [n.decode() for n in names]
    code, stdout, _ = run(capsys, "evaluate", out)
    assert code == 0 and "airplane" in stdout and stdout.strip().splitlines()[-1] == trained_line
