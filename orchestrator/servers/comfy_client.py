"""A client for one ComfyUI server, faithful to the protocol recorded from ComfyUI 0.3.64.

Events reach `on_event(type, data)` with the websocket's own names and shapes (the ones
orchestrator.render.local sends), so one progress view serves both runners. The websocket is not
trusted alone: it drops on long runs, so the client reconnects with backoff and polls
/queue and /history/{id} (which stays `{}` until the prompt ends). That polling is also the
heartbeat: every `heartbeat` seconds, with short request timeouts, so a hung server (stopped,
deadlocked) is noticed after `gone_after` seconds of silence, while a server busy on one long
node without progress events still answers /queue and is left alone. Silence raises
ServerGone, and a prompt that outlives the caller's deadline PromptTimeout, so a dispatcher can
run the work elsewhere. No torch here: requests and websocket-client only.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Callable

import requests
import websocket

from podium.errors import PodiumError
from podium.files import publish, temp_path

from orchestrator.render.local import ExecutionError, PromptError
from orchestrator.graphs.prompt_errors import describe_prompt_error, node_label

__all__ = ["ComfyClient", "ComfyError", "ServerGone", "PromptTimeout", "Interrupted", "PromptError",
           "ExecutionError"]

log = logging.getLogger(__name__)
EventSink = Callable[[str, dict], None]
REFUSED_GRACE_S = 5.0  # a port refusing this long: the server is gone, not busy


def _refused(err: BaseException) -> bool:
    """Whether a connection refusal (nothing listens on the port) is behind `err`."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ConnectionRefusedError):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class ComfyError(PodiumError):
    """The server answered, but not as hoped (an HTTP error, a missing file...)."""


class ServerGone(ComfyError):
    """The server stopped answering, or forgot the prompt (restarted); run the work elsewhere."""


class PromptTimeout(ServerGone):
    """The server answers, but the prompt did not end before the caller's deadline."""


class Interrupted(PodiumError):
    """The prompt was interrupted on the server; `.data` is the execution_interrupted message."""

    def __init__(self, data: dict, prompt: dict | None = None):
        self.data = data
        node = data.get("node_id")
        where = node_label(node, prompt, data.get("node_type")) if node else "the prompt"
        super().__init__(f"{where} was interrupted (prompt {data.get('prompt_id')})")


class ComfyClient:
    """One ComfyUI server at `base_url` ("http://host:8188"). `timeout`: seconds for one HTTP
    request or websocket handshake; `gone_after`: seconds without any answer (no websocket
    frame, no answered poll) before ServerGone; `heartbeat`: seconds between polls while the
    websocket is up (`poll_interval` while it is down)."""

    def __init__(self, base_url: str, client_id: str | None = None, timeout: float = 10.0,
                 gone_after: float = 10.0, poll_interval: float = 1.0, reconnect_max: float = 8.0,
                 heartbeat: float = 2.0):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout, self.gone_after, self.heartbeat = timeout, gone_after, heartbeat
        self.poll_interval, self.reconnect_max = poll_interval, reconnect_max
        self.session = requests.Session()
        self._ws: websocket.WebSocket | None = None
        self._object_info: dict | None = None
        self._graphs: dict[str, dict] = {}  # prompt_id -> graph, for node titles in errors

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._drop_ws()
        self.session.close()

    # ---- HTTP ----

    def _http(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, self.base_url + path, **kw)
        except requests.RequestException as err:
            raise ServerGone(f"{self.base_url} does not answer {method} {path}: {err}") from err

    def _json(self, method: str, path: str, **kw):
        r = self._http(method, path, **kw)
        if r.status_code != 200:
            raise ComfyError(f"{self.base_url}: {method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def queue_status(self, timeout: float | None = None) -> dict:
        """{"queue_running": [[number, prompt_id, prompt, extra, outputs]], "queue_pending": [...]}"""
        return self._json("GET", "/queue", timeout=timeout or self.timeout)

    def system_stats(self) -> dict:
        return self._json("GET", "/system_stats")

    def object_info(self, refresh: bool = False) -> dict:
        """Every node class the server knows, as /object_info gives it (cached)."""
        if self._object_info is None or refresh:
            self._object_info = self._json("GET", "/object_info")
        return self._object_info

    def model_folders(self) -> list[str]:
        """The model folder names the server knows (GET /models; [] where it has no such route)."""
        r = self._http("GET", "/models")
        if r.status_code == 404:
            return []
        if r.status_code != 200:
            raise ComfyError(f"{self.base_url}: GET /models answered {r.status_code}")
        return list(r.json() or [])

    def models(self, folder: str) -> list[str]:
        """The files in one model folder (GET /models/{folder}); [] for a folder it lacks (404)."""
        r = self._http("GET", f"/models/{folder}")
        if r.status_code == 404:
            return []
        if r.status_code != 200:
            raise ComfyError(f"{self.base_url}: GET /models/{folder} answered {r.status_code}")
        return list(r.json() or [])

    def health(self) -> bool:
        try:
            return self._http("GET", "/system_stats", timeout=min(self.timeout, 5.0)).status_code == 200
        except ServerGone:
            return False

    def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt; with `prompt_id`, only that prompt is stopped, and only if it runs."""
        self._json("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def delete_queued(self, prompt_ids: list[str]) -> None:
        """Remove prompts that have not started yet (a running one is left alone)."""
        self._json("POST", "/queue", json={"delete": list(prompt_ids)})

    def queue(self, graph: dict, extra_data: dict | None = None, prompt_id: str | None = None) -> str:
        """Submit an API-format graph for this client; its prompt_id (ours if the server takes
        one). Raises PromptError (400), ComfyError, ServerGone."""
        payload = {"prompt": graph, "client_id": self.client_id, **({"prompt_id": prompt_id} if prompt_id else {})}
        if extra_data:
            payload["extra_data"] = extra_data
        r = self._http("POST", "/prompt", json=payload)
        if r.status_code == 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text}
            raise PromptError(body, graph)
        if r.status_code != 200:
            hint = ""
            if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
                hint = ("; this is a UI-format workflow (as the editor saves it): convert it first "
                        "with orchestrator.graphs.ui_format.ui_to_api / load_any_workflow")
            raise ComfyError(f"{self.base_url}: POST /prompt answered {r.status_code}{hint}: {r.text[:200].strip()}")
        body = r.json()
        if body.get("node_errors"):  # a 200 for a partly valid graph: the valid outputs run
            log.warning("outputs left out, their graph is invalid:\n%s", describe_prompt_error(body, graph))
        self._graphs[body["prompt_id"]] = graph
        return body["prompt_id"]

    # ---- files ----

    def upload(self, path: str | Path, subfolder: str = "podium", kind: str = "input",
               overwrite: bool = False) -> str:
        """POST /upload/image (images and audio alike); the name a LoadImage/LoadAudio input
        takes: "subfolder/name". The server may rename a file whose name is taken."""
        path = Path(path)
        with path.open("rb") as f:
            body = self._json("POST", "/upload/image", files={"image": (path.name, f)},
                              data={"type": kind, "subfolder": subfolder,
                                    "overwrite": "true" if overwrite else "false"})
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    def download(self, file_info: dict, dest_path: str | Path, chunk: int = 1 << 20) -> Path:
        """GET /view of one output entry ({"filename", "subfolder", "type"}) to `dest_path`,
        streamed to a hidden name beside it and renamed when complete: never a partial file."""
        params = {"filename": file_info["filename"], "subfolder": file_info.get("subfolder", ""),
                  "type": file_info.get("type", "output")}
        dest = Path(dest_path)
        part = temp_path(dest)
        try:
            with self._http("GET", "/view", params=params, stream=True) as r:
                if r.status_code != 200:
                    raise ComfyError(f"{self.base_url}: GET /view {params} answered {r.status_code}")
                expected, done = r.headers.get("Content-Length"), 0
                with part.open("xb") as out:
                    try:
                        for block in r.iter_content(chunk):
                            out.write(block)
                            done += len(block)
                    except requests.RequestException as err:
                        raise ServerGone(f"download of {params['filename']} broke off: {err}") from err
                if expected is not None and done != int(expected):
                    raise ServerGone(f"download of {params['filename']} broke off at {done} of {expected} bytes")
            publish(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    # ---- running ----

    def run(self, graph: dict, on_event: EventSink | None = None) -> dict[str, dict]:
        """queue + follow. On KeyboardInterrupt the prompt is interrupted if it runs, or deleted
        if still queued, then the KeyboardInterrupt goes on."""
        if self._ws is None:
            self._connect()  # listen before queueing, so no event is missed
        prompt_id = str(uuid.uuid4())  # known even if Ctrl-C comes while the POST is on its way
        try:
            prompt_id = self.queue(graph, prompt_id=prompt_id)
            return self.follow(prompt_id, on_event)
        except KeyboardInterrupt:
            self.cancel(prompt_id)
            raise

    def cancel(self, prompt_id: str) -> None:
        """Delete the prompt if it waits in the queue, interrupt it if it runs (best effort)."""
        try:
            if any(item[1] == prompt_id for item in self.queue_status()["queue_pending"]):
                self.delete_queued([prompt_id])
            if any(item[1] == prompt_id for item in self.queue_status()["queue_running"]):
                self.interrupt(prompt_id)
        except ComfyError as err:
            log.warning("could not cancel prompt %s on %s: %s", prompt_id, self.base_url, err)

    def follow(self, prompt_id: str, on_event: EventSink | None = None,
               timeout_s: float | None = None) -> dict[str, dict]:
        """Pass the prompt's events to `on_event` until it ends; its outputs ({node_id: ui}, as
        /history has them). Raises ExecutionError, Interrupted, ServerGone, or PromptTimeout
        when it has not ended `timeout_s` seconds from now (the prompt is left as it is)."""
        emit, graph, seen = on_event or (lambda _t, _d: None), self._graphs.get(prompt_id, {}), set()
        last_alive, refused_since, last_error = time.monotonic(), None, None
        deadline = None if timeout_s is None else last_alive + timeout_s
        beat, every = self._beat_timeout(), min(self.heartbeat, self.gone_after / 3)
        next_poll, next_connect, backoff = 0.0, 0.0, 0.25  # poll at once: it may have ended
        while True:
            now = time.monotonic()
            if now - last_alive > self.gone_after:
                raise ServerGone(f"{self.base_url} has not answered for {self.gone_after:g} s: it "
                                 f"hangs or is gone (prompt {prompt_id})") from last_error
            if deadline is not None and now > deadline:
                raise PromptTimeout(f"prompt {prompt_id} did not finish within {timeout_s:g} s "
                                    f"on {self.base_url}")
            if self._ws is None and now >= next_connect:
                if self._connect(beat):
                    backoff, last_alive, next_poll = 0.25, time.monotonic(), 0.0  # catch up
                else:
                    next_connect, backoff = time.monotonic() + backoff, min(backoff * 2, self.reconnect_max)
            if time.monotonic() >= next_poll:
                try:
                    state, entry = self._poll(prompt_id, beat)
                    last_alive, refused_since = time.monotonic(), None
                except ComfyError as err:
                    # A closed port means the process is gone, and ComfyUI's queue with it:
                    # waiting the full gone_after would only delay the re-run elsewhere.
                    last_error = err
                    if _refused(err):
                        refused_since = refused_since or time.monotonic()
                        if time.monotonic() - refused_since > REFUSED_GRACE_S:
                            raise ServerGone(f"{self.base_url} refuses connections (prompt "
                                             f"{prompt_id} is lost with it): {err}") from err
                    state = "waiting"  # silence is judged at the top of the loop
                if state == "done":
                    return self._finish(prompt_id, entry, graph, emit, seen)
                if state == "lost":
                    raise ServerGone(f"{self.base_url} no longer knows prompt {prompt_id} (restarted?)")
                ended = seen & {"execution_success", "executing_null"}
                # with a live websocket, /queue and /history are the heartbeat and a safety net
                next_poll = time.monotonic() + (0.05 if ended else every if self._ws else min(every, self.poll_interval))
            # wake for the next poll, or when the silence or the deadline runs out
            wake = min(next_poll, last_alive + self.gone_after + 0.01,
                       deadline if deadline is not None else float("inf"))
            if self._ws is None:
                time.sleep(max(0.01, min(wake, next_connect) - time.monotonic()))
                continue
            raw = self._recv(max(0.01, wake - time.monotonic()))
            if self._ws is None:  # dropped: poll at the usual pace until it is back
                next_poll = min(next_poll, time.monotonic() + self.poll_interval)
            elif raw is not None:
                last_alive = time.monotonic()
                if isinstance(raw, str) and self._handle(raw, prompt_id, graph, emit, seen):
                    next_poll = 0.0  # it ended: read the outputs from /history

    def _beat_timeout(self) -> float:
        """Seconds one heartbeat request may take: short, so silence is judged on time."""
        return min(self.timeout, max(0.5, self.gone_after / 4))

    def _poll(self, prompt_id: str, timeout: float | None = None) -> tuple[str, dict | None]:
        """("done", history entry) | ("waiting", None) | ("lost", None). /queue is read before
        /history: a prompt leaves the queue only after its history is written."""
        q = self.queue_status(timeout)
        queued = any(item[1] == prompt_id for key in ("queue_running", "queue_pending") for item in q[key])
        entry = (self._json("GET", f"/history/{prompt_id}", timeout=timeout or self.timeout) or {}).get(prompt_id)
        if entry:
            return "done", entry
        return ("waiting" if queued else "lost"), None

    def _handle(self, raw: str, prompt_id: str, graph: dict, emit: EventSink, seen: set) -> bool:
        """One text frame: passed on unless it belongs to another prompt; True when it says the
        prompt ended well. Errors and interrupts raise."""
        try:
            msg = json.loads(raw)
            typ, data = msg["type"], msg.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return False
        if not isinstance(data, dict) or data.get("prompt_id", prompt_id) != prompt_id:
            return False
        null_node = typ == "executing" and data.get("node") is None and "prompt_id" in data
        seen.add("executing_null" if null_node else typ)
        emit(typ, data)
        if typ == "execution_error":
            raise ExecutionError(data, graph)
        if typ == "execution_interrupted":
            raise Interrupted(data, graph)
        return typ == "execution_success" or null_node

    def _finish(self, prompt_id: str, entry: dict, graph: dict, emit: EventSink, seen: set) -> dict:
        """The prompt ended: replay the ending messages the websocket missed, then outputs."""
        status = entry.get("status") or {}
        for typ, data in status.get("messages") or []:
            if typ not in seen and typ not in ("execution_start", "execution_cached"):
                seen.add(typ)
                emit(typ, data)
                if typ == "execution_error":
                    raise ExecutionError(data, graph)
                if typ == "execution_interrupted":
                    raise Interrupted(data, graph)
        if status.get("status_str") == "error":
            raise ComfyError(f"prompt {prompt_id} failed on {self.base_url}: {status}")
        if "executing_null" not in seen:
            emit("executing", {"node": None, "prompt_id": prompt_id})
        return entry.get("outputs") or {}

    # ---- websocket ----

    def _connect(self, timeout: float | None = None) -> bool:
        url = ("wss" if self.base_url.startswith("https") else "ws") + self.base_url[self.base_url.index(":"):]
        try:
            self._ws = websocket.create_connection(f"{url}/ws?clientId={self.client_id}",
                                                   timeout=timeout or self.timeout)
            return True
        except (OSError, websocket.WebSocketException) as err:
            log.debug("websocket to %s: %s", self.base_url, err)
            self._ws = None
            return False

    def _recv(self, wait: float) -> str | bytes | None:
        """A frame (bytes for binary preview frames), or None on timeout or a dropped socket."""
        try:
            self._ws.settimeout(wait)
            frame = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException):
            frame = ""
        if frame == "":  # closed
            self._drop_ws()
            return None
        return frame

    def _drop_ws(self) -> None:
        ws, self._ws = self._ws, None
        try:
            ws and ws.close(timeout=0.2)
        except (OSError, websocket.WebSocketException):
            pass
