"""Downloads have an overall deadline and a size cap: a server trickling one byte at a time, a stream without
Content-Length that never ends, and a server announcing 10 GB each fail with a message saying which limit hit."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from convolve.data import DownloadError, download_file


class _Hostile(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        try:
            if self.path.endswith("/slow/f.bin"):
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100000):  # 1 byte every 20 ms: each read is quick, the whole never ends
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.02)
            elif self.path.endswith("/endless/f.bin"):
                self.end_headers()
                while True:
                    self.wfile.write(bytes(1 << 16))
            else:
                self.send_header("Content-Length", str(10**10))
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("route, limits, message", [
    ("slow", {"deadline": 0.5}, "not finished after 0.5 s"),
    ("endless", {"max_bytes": 1 << 20}, "more than 1,048,576 bytes received"),
    ("huge", {}, "announces 10,000,000,000 bytes"),
])
def test_download_limits(hostile_server, tmp_path, route, limits, message):
    with pytest.raises(DownloadError, match=message):
        download_file("f.bin", "0" * 32, tmp_path, [f"{hostile_server}/{route}/"], timeout=5, verbose=False,
                      **limits)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_a_killed_download_leaves_nothing_the_next_one_keeps(hostile_server, tmp_path):
    (tmp_path / ".f.bin.abc123.part").write_bytes(b"half a file")
    with pytest.raises(DownloadError):
        download_file("f.bin", "0" * 32, tmp_path, [f"{hostile_server}/huge/"], verbose=False)
    assert list(tmp_path.iterdir()) == []
