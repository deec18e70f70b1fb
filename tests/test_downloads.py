"""orchestrator.servers.downloads against a real HTTP server on loopback that can cut the connection,
ignore Range, serve wrong bytes and stall. Nothing here reaches the internet."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from orchestrator.servers import downloads
from orchestrator.servers.downloads import DownloadError, download, part_path


class FileServer:
    """Serves `files` {path: bytes} on 127.0.0.1 with Range support. Knobs:
    cut[path] = (n, times): close the connection after n body bytes, `times` times;
    ignore_range: always answer 200 with the whole file; corrupt: paths served with wrong
    bytes (same length); stall[path] = seconds: pause once after the first 64 KiB."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict]] = []
        self.cut: dict[str, tuple[int, int]] = {}
        self.stall: dict[str, float] = {}
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.lstrip('/')}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(server):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.lstrip("/")
                server.requests.append((path, dict(self.headers)))
                if path not in server.files:
                    self.send_error(404)
                    return
                body = server.files[path]
                if path in server.corrupt:
                    body = bytes(b ^ 0xFF for b in body)
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match and not server.ignore_range else 0
                if start >= len(body) and match and not server.ignore_range:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = body[start:]
                n, times = server.cut.get(path, (None, 0))
                if times:
                    server.cut[path] = (n, times - 1)
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                for i in range(0, len(body), 1 << 16):
                    if i and path in server.stall:
                        time.sleep(server.stall.pop(path))
                    try:
                        self.wfile.write(body[i:i + (1 << 16)])
                    except (BrokenPipeError, ConnectionResetError):
                        return
        return Handler


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.01)


def payload(n: int = 700_000, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 9)) % 251 for i in range(n))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fresh_download_is_checked_and_renamed(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    dest = tmp_path / "sub" / "m.bin"
    assert download(server.url("m.bin"), dest, sha256=sha(data), size=len(data), progress=True) == dest
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == ["m.bin"]
    assert "Range" not in server.requests[0][1]


def test_a_cut_connection_resumes_with_a_range_request(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    server.cut["m.bin"] = (300_000, 1)
    dest = tmp_path / "m.bin"
    download(server.url("m.bin"), dest, sha256=sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    assert len(server.requests) == 2
    assert server.requests[1][1]["Range"] == "bytes=300000-"
    assert leftovers(tmp_path) == ["m.bin"]


def test_retries_run_out_keep_the_part_and_a_rerun_resumes(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    server.cut["m.bin"] = (100_000, 2)
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(server.url("m.bin"), dest, sha256=sha(data), progress=False, retries=1)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == 200_000
    download(server.url("m.bin"), dest, sha256=sha(data), progress=False)
    assert server.requests[-1][1]["Range"] == "bytes=200000-"
    assert dest.read_bytes() == data and not part_path(dest).exists()


def test_a_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    server.ignore_range = True
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(b"stale bytes that must not stay in front" * 100)
    download(server.url("m.bin"), dest, sha256=sha(data), size=len(data), progress=False)
    assert server.requests[0][1]["Range"] == "bytes=3900-"
    assert dest.read_bytes() == data
    assert leftovers(tmp_path) == ["m.bin"]


def test_a_part_longer_than_the_file_is_refused_and_restarted(server, tmp_path):
    data = payload(50_000)
    server.files["m.bin"] = data
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(b"x" * 60_000)  # 416 from the server: start again
    download(server.url("m.bin"), dest, sha256=sha(data), progress=False)
    assert dest.read_bytes() == data and "Range" not in server.requests[-1][1]


def test_wrong_checksum_leaves_nothing_behind(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    server.corrupt.add("m.bin")
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError) as err:
        download(server.url("m.bin"), dest, sha256=sha(data), size=len(data), progress=False)
    message = str(err.value)
    assert f"expected {sha(data)}" in message and f"got {sha(bytes(b ^ 0xFF for b in data))}" in message
    assert "was not written" in message
    assert leftovers(tmp_path) == []


def test_wrong_checksum_leaves_an_existing_good_file_untouched(server, tmp_path):
    data = payload()
    server.files["m.bin"] = data
    server.corrupt.add("m.bin")
    dest = tmp_path / "m.bin"
    dest.write_bytes(data)
    before = dest.stat().st_mtime_ns
    with pytest.raises(DownloadError, match="left as it was"):
        download(server.url("m.bin"), dest, sha256=sha(data), progress=False)
    assert dest.read_bytes() == data and dest.stat().st_mtime_ns == before
    assert leftovers(tmp_path) == ["m.bin"]


def test_wrong_size_leaves_nothing_behind(server, tmp_path):
    server.files["m.bin"] = payload(1000)
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError, match="expected 999 bytes, got 1000"):
        download(server.url("m.bin"), dest, size=999, progress=False)
    assert leftovers(tmp_path) == []


def test_a_stalled_server_times_out_and_the_download_resumes(server, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "TIMEOUT", (5, 0.5))
    data = payload()
    server.files["m.bin"] = data
    server.stall["m.bin"] = 2.0
    dest = tmp_path / "m.bin"
    download(server.url("m.bin"), dest, sha256=sha(data), progress=False)
    assert dest.read_bytes() == data and len(server.requests) == 2


def test_http_errors_are_not_retried_and_write_nothing(server, tmp_path):
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("absent.bin"), dest, progress=False)
    assert len(server.requests) == 1 and leftovers(tmp_path) == []


def test_a_given_session_is_used(server, tmp_path):
    server.files["m.bin"] = b"abc"
    session = requests.Session()
    session.headers["X-Podium-Test"] = "1"
    download(server.url("m.bin"), tmp_path / "m.bin", session=session, progress=False)
    assert server.requests[0][1]["X-Podium-Test"] == "1"


def test_hf_token_goes_to_huggingface_only(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert downloads.auth_headers("https://huggingface.co/a/b/resolve/main/x.onnx") == \
        {"Authorization": "Bearer hf_secret"}
    assert downloads.auth_headers("https://cdn-lfs.huggingface.co/x") == {"Authorization": "Bearer hf_secret"}
    assert downloads.auth_headers("https://nothuggingface.co/x") == {}
    assert downloads.auth_headers("http://127.0.0.1:8000/x") == {}
    monkeypatch.delenv("HF_TOKEN")
    assert downloads.auth_headers("https://huggingface.co/x") == {}
