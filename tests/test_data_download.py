"""Checked downloads against a local HTTP server on 127.0.0.1: mirrors in order, bad checksums, 404s, short reads."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from convolve.data import CIFAR10, MNIST, DownloadError, FashionMNIST, check_md5, download_file
from tests.test_data_formats import MNIST_FILES, cifar10_members, write_mnist, write_tar_gz


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files[path]`; `server.truncate` paths announce more bytes than they send."""

    def do_GET(self):
        self.server.hits.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        if self.path in self.server.truncate:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on an ephemeral port; tests fill `files` ({url path: bytes})."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.truncate, httpd.hits = {}, set(), []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def test_first_good_mirror_wins_and_file_is_verified(server, tmp_path):
    payload = b"original bytes " * 1000
    server.files["/good/a.bin"] = payload
    path = download_file("a.bin", md5(payload), tmp_path / "cache", [server.base + "/good/"])
    assert path == tmp_path / "cache" / "a.bin" and path.read_bytes() == payload
    assert not list((tmp_path / "cache").glob(".*part"))  # the temp file was moved, not left behind


def test_wrong_checksum_mirror_then_good_one(server, tmp_path):
    payload = b"the real thing"
    server.files["/bad/a.bin"] = b"tampered content"
    server.files["/good/a.bin"] = payload
    path = download_file("a.bin", md5(payload), tmp_path, [server.base + "/bad/", server.base + "/good/"])
    assert path.read_bytes() == payload
    assert server.hits == ["/bad/a.bin", "/good/a.bin"]


def test_all_mirrors_fail_gives_a_clear_error_and_keeps_nothing(server, tmp_path):
    payload = b"the real thing" * 100
    server.files["/bad/a.bin"] = b"tampered content"
    server.files["/short/a.bin"] = payload
    server.truncate.add("/short/a.bin")
    mirrors = [server.base + "/missing/", server.base + "/bad/", server.base + "/short/"]
    with pytest.raises(DownloadError) as info:
        download_file("a.bin", md5(payload), tmp_path, mirrors)
    message = str(info.value)
    assert "/missing/a.bin: HTTP Error 404" in message and "/bad/a.bin: checksum mismatch" in message
    assert "/short/a.bin: short read: got 700 of 1400 bytes" in message
    assert list(tmp_path.iterdir()) == []  # neither the bad file nor a temp file is kept


def test_truncated_download_is_rejected_then_next_mirror_used(server, tmp_path):
    payload = bytes(range(256)) * 64
    server.files["/short/a.bin"] = payload
    server.truncate.add("/short/a.bin")
    server.files["/good/a.bin"] = payload
    path = download_file("a.bin", md5(payload), tmp_path, [server.base + "/short/", server.base + "/good/"])
    assert path.read_bytes() == payload


def test_unreachable_mirror_is_skipped(server, tmp_path):
    payload = b"x" * 10
    server.files["/good/a.bin"] = payload
    mirrors = ["http://127.0.0.1:9/nothing/", server.base + "/good/"]  # port 9 (discard): refused
    assert download_file("a.bin", md5(payload), tmp_path, mirrors, timeout=5).read_bytes() == payload


def test_existing_good_file_is_not_fetched_again_and_bad_one_is(server, tmp_path):
    payload = b"cached"
    (tmp_path / "a.bin").write_bytes(payload)
    assert download_file("a.bin", md5(payload), tmp_path, [server.base + "/none/"]).read_bytes() == payload
    assert server.hits == []  # no network access for a verified file
    (tmp_path / "a.bin").write_bytes(b"cach")  # a previous partial/corrupt copy
    server.files["/good/a.bin"] = payload
    download_file("a.bin", md5(payload), tmp_path, [server.base + "/good/"])
    assert (tmp_path / "a.bin").read_bytes() == payload and check_md5(tmp_path / "a.bin", md5(payload))


def test_download_file_rejects_no_mirrors(tmp_path):
    with pytest.raises(ValueError, match=r"download_file: `mirrors` must name at least one URL base"):
        download_file("a.bin", "0" * 32, tmp_path, [])


def _serve_mnist(server, tmp_path, prefix: str) -> dict[str, str]:
    """Write a tiny MNIST, serve its .gz files under `prefix`, return their {filename: md5}."""
    src = tmp_path / "src"
    write_mnist(src)
    resources = {}
    for name in (*MNIST_FILES[True], *MNIST_FILES[False]):
        raw = (src / name).read_bytes()
        server.files[f"{prefix}{name}"] = raw
        resources[name] = md5(raw)
    return resources


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_dataset_download_end_to_end(server, tmp_path, monkeypatch, cls):
    resources = _serve_mnist(server, tmp_path, "/mnist/")
    monkeypatch.setattr(cls, "resources", resources)
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError, match="download=True"):
        cls(root, mirrors=[server.base + "/mnist/"])
    ds = cls(root, train=False, download=True, mirrors=[server.base + "/nope/", server.base + "/mnist/"])
    expected = MNIST(tmp_path / "src", train=False)
    np.testing.assert_array_equal(ds.data, expected.data)
    assert sorted(p.name for p in root.iterdir()) == sorted(MNIST_FILES[False])  # only what was needed
    hits = len(server.hits)
    cls(root, train=False, download=True, mirrors=[server.base + "/mnist/"])
    assert len(server.hits) == hits  # already there: nothing fetched


def test_dataset_download_replaces_a_corrupt_file(server, tmp_path, monkeypatch):
    resources = _serve_mnist(server, tmp_path, "/mnist/")
    monkeypatch.setattr(MNIST, "resources", resources)
    root = tmp_path / "root"
    root.mkdir()
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    ds = MNIST(root, train=False, download=True, mirrors=[server.base + "/mnist/"])
    assert ds.data.shape == (7, 28, 28)
    assert check_md5(root / "t10k-images-idx3-ubyte.gz", resources["t10k-images-idx3-ubyte.gz"])


def test_dataset_download_with_only_bad_mirrors_fails_clearly(server, tmp_path):
    _serve_mnist(server, tmp_path, "/mnist/")  # served, but MNIST keeps the published MD5s: all mismatch
    with pytest.raises(DownloadError, match=r"t10k-images-idx3-ubyte\.gz with MD5 9fb629c4189551a2d022fa330f9573f3"):
        MNIST(tmp_path / "root", train=False, download=True, mirrors=[server.base + "/mnist/"])
    assert list((tmp_path / "root").iterdir()) == []


def test_cifar10_download_end_to_end(server, tmp_path, monkeypatch):
    archive = write_tar_gz(tmp_path / "src" / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_members(3))
    raw = archive.read_bytes()
    server.files["/kriz/cifar-10-python.tar.gz"] = raw
    monkeypatch.setattr(CIFAR10, "archive_md5", md5(raw))
    ds = CIFAR10(tmp_path / "root", train=True, download=True, mirrors=[server.base + "/kriz/"])
    assert ds.data.shape == (15, 32, 32, 3)
    assert Path(tmp_path / "root" / "cifar-10-python.tar.gz").read_bytes() == raw
