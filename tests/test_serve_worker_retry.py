"""A worker's calls to the server meet a server that is away for a while: a real HTTP server on
loopback answers 503 (with Retry-After) and then takes the upload, whole, on a later try."""
from __future__ import annotations

import http.server
import threading

import pytest

from conftest import free_port


class _Flaky(http.server.BaseHTTPRequestHandler):
    refusals = 2
    bodies: list[bytes] = []

    def do_PUT(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        if type(self).refusals > 0:
            type(self).refusals -= 1
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"busy")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_an_upload_is_sent_again_whole_until_the_server_takes_it(tmp_path):
    from orchestrator.service.worker import Api, ApiError

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        video = tmp_path / "video.mp4"
        video.write_bytes(bytes(range(256)) * 400)
        with open(video, "rb") as body:
            answer = Api(base, "t" * 20, patience_s=30).call("PUT", "/api/jobs/x/outputs/video", data=body)
        assert answer.status_code == 200
        assert _Flaky.bodies == [video.read_bytes()] * 3  # each try carried the whole file

        _Flaky.refusals, _Flaky.bodies = 1, []
        with open(video, "rb") as body, pytest.raises(ApiError, match="503"):
            Api(base, None).call("PUT", "/x", patient=False, data=body)  # progress: one try only
        assert len(_Flaky.bodies) == 1
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ApiError, match="127.0.0.1"):
        Api(f"http://127.0.0.1:{free_port()}", None, patience_s=1).call("PUT", "/x", data=b"x")
