"""A fake Ollama server on loopback: a real HTTP server answering the endpoints the `ollama`
client calls (POST /api/chat streamed as chunked NDJSON or not, GET /api/tags, GET
/api/version, GET /), with scripted answers.

Every request is recorded (`requests`: method, path, JSON body). Each /api/chat request takes
the next behaviour from `plans` (then `default`):

  good            a valid script whose narration has the word count asked in the prompt
  short / long    the same at half / 1.8 times the words asked; shorter: a quarter
  malformed       JSON with a missing comma
  truncated       non-streamed: JSON cut mid-object with done_reason "length";
                  streamed: a few chunks, then the connection closes mid-object
  cut_line        streamed: the last NDJSON line itself is cut in the middle
  no_done         streamed: the stream ends cleanly without the final "done" message
  empty_narration a segment with empty narration
  bad_speaker     a dialogue segment spoken by someone not asked for
  slow            answers after `slow_s` seconds (beyond the client's timeout)
  drip            a good answer sent one byte every `drip_s` seconds (never a silent read)
  html            200 with an HTML page instead of JSON (a web server that is not Ollama)
  secret_500      500 with a body that must never be shown to the user (SECRET_BODY)
  huge            a good script whose last narration is padded to `huge_bytes` bytes
  many_segments   a script of `many_segments` short segments

A model not in `models` answers 404 exactly as Ollama does.
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SENTENCES = [
    "Have you ever wondered how a tiny seed becomes a towering oak tree?",
    "The answer is photosynthesis, the process plants use to turn sunlight into food.",
    "Inside every green leaf are millions of chloroplasts, small structures that capture light energy.",
    "They use that energy to combine carbon dioxide from the air with water drawn up from the roots.",
    "The result is glucose, a simple sugar that fuels the plant's growth.",
    "Oxygen is released into the air we breathe as a welcome side effect.",
    "Photosynthesis happens in two main stages.",
    "In the first stage, chlorophyll absorbs sunlight and splits water molecules.",
    "This releases oxygen and stores energy in carrier molecules.",
    "In the second stage, known as the Calvin cycle, the plant builds sugar from carbon dioxide.",
    "This stage doesn't need light directly, but it depends on the products of the first.",
    "Almost every food chain on Earth begins with photosynthesis.",
    "The vegetables on your plate and the grain that feeds livestock all trace their energy back to sunlight.",
    "Photosynthesis also keeps our atmosphere balanced by removing carbon dioxide.",
    "So the next time you walk past a tree, remember the quiet chemistry happening inside it.",
]
SECRET_BODY = "internal-token-7f3a9c: this body must never reach the user"
MODEL_NOT_FOUND = '{"error":"model \\"%s\\" not found, try pulling it first"}'


def narration(words: int, offset: int = 0) -> str:
    """English prose of exactly `words` words (the last sentence cut short if need be)."""
    out, left, i = [], words, offset
    while left > 0:
        sentence = SENTENCES[i % len(SENTENCES)].split()
        i += 1
        if len(sentence) > left:
            if left < 3:
                sentence = ["Indeed."] if left == 1 else ["Remember", "that."]
            else:
                sentence = sentence[:left]
                sentence[-1] = sentence[-1].rstrip(",.?!") + "."
        out.append(" ".join(sentence))
        left -= len(sentence)
    return " ".join(out)


def asked_length(messages: list[dict]) -> tuple[int, int]:
    """(total words, segments) from the last user message that asks for a length."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        words = re.search(r"about (\d+) words of narration in total", message["content"])
        count = re.search(r"in (\d+) segments?\b", message["content"])
        if words:
            return int(words.group(1)), int(count.group(1)) if count else 1
    return 150, 3


def good_script(words: int, segments: int, speakers: list[str] | None = None) -> dict:
    per, extra = divmod(words, segments)
    out = []
    for i in range(segments):
        n = per + (1 if i < extra else 0)
        seg = {"slide_title": f"Part {i + 1}", "narration": narration(n, offset=i * 4),
               "bullets": [f"Point {i + 1}a", f"Point {i + 1}b"]}
        if speakers:
            seg = {"speaker": speakers[i % len(speakers)], **seg}
        out.append(seg)
    return {"title": "How Plants Make Food",
            "stage": "A friendly teacher in a green sweater stands in a sunny greenhouse.",
            "segments": out}


class FakeOllama:
    def __init__(self, models=("llama3.2:latest",), slow_s: float = 3.0, not_ollama: bool = False,
                 drip_s: float = 0.2, huge_bytes: int = 12_000_000, many_segments: int = 20_000):
        self.models = list(models)
        self.slow_s = slow_s
        self.drip_s, self.huge_bytes, self.many_segments = drip_s, huge_bytes, many_segments
        self.not_ollama = not_ollama  # answer 404 with an HTML page everywhere (a wrong host)
        self.plans: list[str] = []
        self.default = "good"
        self.requests: list[tuple[str, str, dict | None]] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def chats(self) -> list[dict]:
        """The bodies of every /api/chat request, in order."""
        return [body for method, path, body in self.requests if path == "/api/chat"]

    def next_plan(self) -> str:
        with self._lock:
            return self.plans.pop(0) if self.plans else self.default

    def __enter__(self) -> "FakeOllama":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_known(name: str, models: list[str]) -> bool:
    full = name if ":" in name else f"{name}:latest"
    return full in models or name in models


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeOllama

    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _send(self, status: int, body: str, content_type: str = "application/json; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        fake = self.server_fake
        fake.requests.append(("GET", self.path, None))
        if fake.not_ollama:
            return self._send(404, "<html><body><h1>Not Found</h1></body></html>", "text/html")
        if self.path == "/":
            return self._send(200, "Ollama is running", "text/plain; charset=utf-8")
        if self.path == "/api/version":
            return self._send(200, '{"version":"0.12.6"}')
        if self.path == "/api/tags":
            return self._send(200, json.dumps({"models": [
                {"name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z", "size": 2019393189,
                 "digest": "a80c4f17acd5" + "0" * 52,
                 "details": {"parent_model": "", "format": "gguf", "family": "llama",
                             "families": ["llama"], "parameter_size": "3.2B",
                             "quantization_level": "Q4_K_M"}}
                for m in fake.models]}))
        self._send(404, "404 page not found", "text/plain")

    def do_HEAD(self):
        self._send(200, "")

    def do_POST(self):
        fake = self.server_fake
        body = self._body()
        fake.requests.append(("POST", self.path, body))
        if fake.not_ollama:
            return self._send(404, "<html><body><h1>Not Found</h1></body></html>", "text/html")
        if self.path != "/api/chat":
            return self._send(404, "404 page not found", "text/plain")
        model = body.get("model", "")
        if not _model_known(model, fake.models):
            return self._send(404, MODEL_NOT_FOUND % model)
        plan = fake.next_plan()
        stream = body.get("stream", True)  # Ollama streams unless told not to
        if plan == "slow":
            fake._release.wait(fake.slow_s)
        if plan == "html":
            return self._send(200, "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1>"
                                   f"<p>{SECRET_BODY}</p></body></html>", "text/html")
        if plan == "secret_500":
            return self._send(500, SECRET_BODY, "text/plain")
        content, reason = self._content(plan, body)
        try:
            if plan == "drip":
                return self._drip(model, content, stream)
            if stream:
                self._stream(model, content, reason, plan)
            else:
                self._send(200, json.dumps(_message(model, content, done=True, reason=reason)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout)

    def _content(self, plan: str, body: dict) -> tuple[str, str]:
        words, count = asked_length(body.get("messages", []))
        speakers = segment_schema(body.get("format") or {}).get("properties", {}) \
            .get("speaker", {}).get("enum")
        factor = {"short": 0.5, "long": 1.8, "shorter": 0.25}.get(plan, 1.0)
        if plan == "many_segments":
            words, count = self.server_fake.many_segments, self.server_fake.many_segments
        script = good_script(max(count, round(words * factor)), count, speakers)
        if plan == "huge":
            pad = " Indeed." * (self.server_fake.huge_bytes // 8)
            script["segments"][-1]["narration"] += pad
        if plan == "empty_narration":
            script["segments"][-1]["narration"] = "  "
        if plan == "bad_speaker":
            script["segments"][0]["speaker"] = "Mallory"
        text = json.dumps(script, ensure_ascii=False)
        if plan == "malformed":
            text = text.replace('", "stage"', '" "stage"', 1)
        if plan == "truncated":
            return text[: len(text) // 2], "length"
        return text, "stop"

    def _drip(self, model: str, content: str, stream: bool) -> None:
        """The answer one byte at a time, each after `drip_s`: no read ever waits long."""
        fake = self.server_fake
        body = (json.dumps(_message(model, content, done=True, reason="stop")) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if stream else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for i in range(len(body)):
            if fake._release.wait(fake.drip_s):
                return
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, model: str, content: str, reason: str, plan: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = [content[i:i + 24] for i in range(0, len(content), 24)]
        if plan == "truncated":  # the connection drops mid-object, no end of the chunked body
            for piece in pieces[: len(pieces) // 2]:
                self._chunk((json.dumps(_message(model, piece)) + "\n").encode())
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        for piece in pieces:
            self._chunk((json.dumps(_message(model, piece)) + "\n").encode())
            time.sleep(0)
        if plan == "cut_line":  # the final line itself is cut, then the body ends
            line = json.dumps(_message(model, "", done=True, reason="stop"))
            self._chunk(line[: len(line) // 2].encode())
        elif plan != "no_done":
            self._chunk((json.dumps(_message(model, "", done=True, reason=reason)) + "\n").encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def segment_schema(schema: dict) -> dict:
    """The schema of one segment in a `format` schema, following a "$ref" into "$defs"."""
    items = schema.get("properties", {}).get("segments", {}).get("items", {})
    ref = items.get("$ref", "")
    if ref.startswith("#/$defs/"):
        items = schema.get("$defs", {}).get(ref[len("#/$defs/"):], {})
    return items


def _message(model: str, content: str, done: bool = False, reason: str = "") -> dict:
    out = {"model": model, "created_at": "2025-01-01T00:00:00.000000Z",
           "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        out.update(done_reason=reason, total_duration=1_000_000, load_duration=100_000,
                   prompt_eval_count=200, prompt_eval_duration=100_000, eval_count=300,
                   eval_duration=800_000)
    return out
