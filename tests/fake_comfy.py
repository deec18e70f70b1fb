"""A small stand-in for a ComfyUI 0.3.64 server, on a real loopback socket (aiohttp, as ComfyUI).

It speaks the protocol recorded in shared/reference/comfyui-0.3.64 (copies in tests/data):
POST /prompt (validated by orchestrator.render.local, which answers ComfyUI's 400 bodies), /history,
/queue (+ delete/clear), /interrupt (global or by prompt_id), /upload/image, /view,
/object_info, /system_stats, and /ws with the recorded message sequence (execution_start,
execution_cached, per node executing / progress / binary previews / executed,
execution_success, status, executing null; execution_error / execution_interrupted instead).
"Executing" a graph writes a small file per output node, which /view serves. No torch.

Knobs (plain attributes, set from the test's thread): steps, step_delay, fail_class,
drop_ws_after (close every websocket abruptly after that many execution messages, once),
refuse_ws, view_break_after (bytes of a /view body sent before the connection is cut),
video (an MP4 that SaveVideo "writes"), models ({folder: [files]} for GET /models and
/models/{folder}), system_stats (a dict instead of the recorded CPU's); hang() stops
answering anything, kill() closes the port. `requests` records (method, path, query, json body) of every HTTP request.

FakeComfy(root, execute="podium") really executes each prompt with the pack's own nodes
(orchestrator.render.local.run, set up as orchestrator.render.embedded.run_graph does) in a child process
of its own, this file run with --child (the pack keeps its output folder in a global, and
two servers in one test must be able to work at the same time); outputs are written under
`<root>/output`, so /view serves real clips.
/object_info is then the pack's. Its events reach the websocket with the shapes ComfyUI
sends; steps x step_delay of waiting (with progress events) come before each node, so a test
can make segments slow; fail_class and /interrupt work as in the default mode.

`python -m tests.fake_comfy --port N [--execute podium] [--root DIR]` serves one until SIGTERM
or Ctrl-C (benchmarks start it as a process of its own).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: the repository's packages are beside tests/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from orchestrator.render import local

DATA = Path(__file__).resolve().parent / "data" / "comfyui-0.3.64"
UI_500 = "500 Internal Server Error\n\nServer got itself in trouble"
# class_type -> (ui key, extension, folder type); other output nodes write text
OUTPUT_KINDS = {"SaveImage": ("images", "png", "output"), "PreviewImage": ("images", "png", "temp"),
                "SaveVideo": ("images", "mp4", "output"), "SaveAudio": ("audio", "flac", "output"),
                "PreviewAudio": ("audio", "flac", "temp")}


def _ms() -> int:
    return int(time.time() * 1000)


def node_classes(object_info: dict) -> dict[str, type]:
    """V1-style classes from /object_info entries, enough for orchestrator.render.local's validator."""
    classes = {}
    for name, info in object_info.items():
        spec = {cat: {k: tuple(v) if isinstance(v, list) else v for k, v in inputs.items()}
                for cat, inputs in info["input"].items()}
        classes[name] = type(name, (), {"INPUT_TYPES": classmethod(lambda cls, s=spec: s),
                                        "RETURN_TYPES": tuple(info["output"]), "FUNCTION": "run",
                                        "OUTPUT_NODE": bool(info.get("output_node"))})
    return classes


KEPT_MESSAGES = ("execution_start", "execution_cached", "execution_success", "execution_error",
                 "execution_interrupted")  # what ComfyUI keeps in a history entry's status


class FakeComfy:
    def __init__(self, root: Path, object_info: dict | None = None, execute: str = "write",
                 port: int = 0):
        if execute not in ("write", "podium"):
            raise ValueError(f"execute is 'write' or 'podium', not {execute!r}")
        self.root, self.execute, self._port = Path(root), execute, port
        if execute == "podium":
            from orchestrator.render import embedded

            self.classes = embedded.node_classes()
            self.object_info = object_info or embedded.object_info()
        else:
            self.object_info = object_info or json.loads((DATA / "object_info_subset.json").read_text())
            self.classes = node_classes(self.object_info)
        self._child = None
        self.steps, self.step_delay, self.fail_class = 3, 0.005, None
        self.drop_ws_after: int | None = None
        self.refuse_ws, self.view_break_after, self.video = False, None, None
        self.requests: list[tuple[str, str, dict, object]] = []
        self.models: dict[str, list[str]] = {}  # GET /models, /models/{folder}
        self.system_stats: dict | None = None  # None: the recorded one (a CPU)
        self.ws_connects, self.binary_frames_sent = 0, 0
        self.pending: list[list] = []
        self.running: list | None = None
        self.history: dict[str, dict] = {}
        self._sockets: dict[str, tuple[web.WebSocketResponse, web.Request]] = {}
        self._number, self._counters = 0, {}
        self._interrupt, self._last_node, self.hung = False, None, False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # ---- life cycle ----

    def start(self) -> "FakeComfy":
        if self.execute == "podium":
            self._start_child()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def _start_child(self) -> None:
        """The process that runs the pack's nodes (this file run with --child: JSON lines of
        tasks in, of events out; SIGUSR1 interrupts), and a thread that passes its events on."""
        for kind in ("output", "input", "temp"):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        self.child_ready = threading.Event()
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(self.root / "output"),
             str(self.root / "input")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=str(self.root / "input"))
        threading.Thread(target=self._pump_child_events, args=(self._child,), daemon=True).start()

    def _pump_child_events(self, child: subprocess.Popen) -> None:
        for line in child.stdout:
            try:
                item = json.loads(line)
            except ValueError:  # the last line of a killed child
                continue
            if item[0] == "__ready__":
                self.child_ready.set()
                continue
            try:
                self.loop.call_soon_threadsafe(self._child_queue.put_nowait, item)
            except RuntimeError:  # the loop is closed
                return

    def _interrupt_child(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGUSR1)

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait(10)
            try:
                child.stdin.close()
            except OSError:  # a task was half written: the pipe is broken
                pass  # (stdout: the pump thread reads it to its end and stops)

    async def _start(self) -> None:
        self._wake, self._release = asyncio.Event(), asyncio.Event()
        self._child_queue: asyncio.Queue = asyncio.Queue()
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 28)
        app.router.add_post("/prompt", self._post_prompt)
        app.router.add_get("/history/{prompt_id}", self._get_history)
        app.router.add_get("/history", self._json_of(lambda: self.history))
        app.router.add_get("/queue", self._json_of(self._queue))
        app.router.add_post("/queue", self._post_queue)
        app.router.add_post("/interrupt", self._post_interrupt)
        app.router.add_post("/upload/image", self._upload)
        app.router.add_get("/view", self._view)
        app.router.add_get("/object_info", self._json_of(lambda: self.object_info))
        app.router.add_get("/system_stats", self._json_of(
            lambda: self.system_stats or json.loads((DATA / "system_stats.json").read_text())))
        app.router.add_get("/models", self._json_of(lambda: list(self.models)))
        app.router.add_get("/models/{folder}", self._models_in)
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._worker = asyncio.ensure_future(self._work())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hang(self) -> None:
        """Stop answering: requests wait forever, websockets fall silent, work stops."""
        self.hung = True

    def kill(self) -> None:
        """The process is gone: connections cut, the port refuses (and in podium mode the
        executing process is killed too)."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self._stop_child()

    def stop(self) -> None:
        if self.loop.is_running():
            self.kill()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self._stop_child()

    async def _shutdown(self) -> None:
        if self._runner is None:
            return
        self._release.set()
        self._worker.cancel()
        for ws, request in list(self._sockets.values()):
            request.transport and request.transport.close()
        await self._runner.cleanup()
        self._runner = None

    def saw(self, method: str, path: str) -> list:
        return [r for r in self.requests if r[0] == method and r[1] == path]

    # ---- HTTP ----

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = None
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = "<not json>"
        self.requests.append((request.method, request.path, dict(request.query), body))
        if self.hung:
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        return await handler(request)

    @staticmethod
    def _json_of(get):
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response(get())
        return handler

    async def _models_in(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.models:
            return web.Response(status=404)
        return web.json_response(self.models[folder])

    def _queue(self) -> dict:
        return {"queue_running": [self.running] if self.running else [], "queue_pending": list(self.pending)}

    async def _post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "bad json"}, status=400)
        if "prompt" not in body:
            return web.json_response({"error": {"type": "no_prompt", "message": "No prompt provided",
                                                "details": "No prompt provided", "extra_info": {}},
                                      "node_errors": {}}, status=400)
        prompt = body["prompt"]
        if not all(isinstance(node, dict) for node in prompt.values()):  # e.g. a UI-format file
            return web.Response(status=500, text=UI_500)
        try:
            outputs, node_errors = local.check_prompt(prompt, self.classes)
        except local.PromptError as err:
            return web.json_response(err.body, status=400)
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        item = [self._number, prompt_id, prompt, {"client_id": body.get("client_id")}, outputs]
        self._number += 1
        self.pending.append(item)
        self._wake.set()
        await self._status()
        return web.json_response({"prompt_id": prompt_id, "number": item[0], "node_errors": node_errors})

    async def _get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        if body.get("clear"):
            self.pending.clear()
        if "delete" in body:
            self.pending[:] = [item for item in self.pending if item[1] not in body["delete"]]
        await self._status()
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        if self.running and body.get("prompt_id") in (None, self.running[1]):
            self._interrupt = True
            self._interrupt_child()
        return web.Response(status=200)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image, kind = form["image"], form.get("type", "input")
        subfolder = form.get("subfolder", "")
        folder = self.root / kind / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        data, name = image.file.read(), image.filename
        stem, dot, ext = name.rpartition(".")
        n = 1
        while (folder / name).exists() and form.get("overwrite") not in ("true", "1"):
            if (folder / name).read_bytes() == data:  # ComfyUI: same content, same name
                break
            name, n = f"{stem} ({n}){dot}{ext}", n + 1
        (folder / name).write_bytes(data)
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    async def _view(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        name, subfolder, kind = q.get("filename", ""), q.get("subfolder", ""), q.get("type", "output")
        if ".." in Path(subfolder, name).parts or name.startswith("/") or subfolder.startswith("/"):
            return web.Response(status=400)
        path = self.root / kind / subfolder / name
        if not path.is_file():
            return web.Response(status=404)
        if self.view_break_after is None:
            return web.FileResponse(path)
        data = path.read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[:self.view_break_after])
        request.transport.close()  # the connection breaks mid-body
        return response

    # ---- websocket ----

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_ws:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self._sockets[sid] = (ws, request)
        self.ws_connects += 1
        await ws.send_json({"type": "status", "data": {"status": self._exec_info(), "sid": sid}})
        if self.running and self.running[3].get("client_id") == sid and self._last_node:
            await ws.send_json({"type": "executing", "data": {"node": self._last_node}})  # as ComfyUI
        async for _ in ws:
            pass
        if self._sockets.get(sid, (None,))[0] is ws:
            del self._sockets[sid]
        return ws

    def _exec_info(self) -> dict:
        return {"exec_info": {"queue_remaining": len(self.pending) + bool(self.running)}}

    async def _status(self) -> None:
        for sid in list(self._sockets):
            await self._send_to(sid, {"type": "status", "data": {"status": self._exec_info()}})

    async def _send_to(self, sid: str | None, message: dict | bytes) -> None:
        ws = self._sockets.get(sid, (None,))[0]
        if ws is None or ws.closed or self.hung:
            return
        try:
            await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_json(message))
        except (ConnectionError, RuntimeError):
            return
        self.binary_frames_sent += isinstance(message, bytes)

    async def _send(self, sid: str | None, typ: str, data: dict) -> None:
        await self._send_to(sid, {"type": typ, "data": data})
        if self.drop_ws_after is not None:
            self.drop_ws_after -= 1
        if self.drop_ws_after is not None and self.drop_ws_after <= 0:
            self.drop_ws_after = None
            for ws, request in list(self._sockets.values()):
                request.transport and request.transport.close()

    # ---- execution ----

    async def _work(self) -> None:
        while True:
            while not self.pending or self.hung:
                self._wake.clear()
                await (self._release.wait() if self.hung else self._wake.wait())
            self.running = self.pending.pop(0)
            self._interrupt = False
            try:
                await (self._execute_podium if self.execute == "podium" else self._execute)(*self.running)
            finally:
                self.running, self._last_node = None, None
            await self._status()

    def _order(self, graph: dict, outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in graph[node_id]["inputs"].values():
                if isinstance(value, list) and len(value) == 2 and value[0] in graph:
                    visit(value[0])
            order.append(node_id)
        for node_id in outputs:
            visit(node_id)
        return order

    def _write_output(self, node: dict, prompt_id: str) -> dict:
        key, ext, kind = OUTPUT_KINDS.get(node["class_type"], ("text_files", "txt", "output"))
        prefix = str(node["inputs"].get("filename_prefix", "ComfyUI") if kind == "output" else "ComfyUI_temp")
        subfolder, _, stem = prefix.rpartition("/")
        n = self._counters[prefix] = self._counters.get(prefix, 0) + 1
        name = f"{stem}_{n:05d}_.{ext}"
        path = self.root / kind / subfolder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if ext == "mp4" and self.video:
            shutil.copyfile(self.video, path)
        else:
            path.write_text(f"{node['class_type']} of prompt {prompt_id}: {json.dumps(node['inputs'])}\n")
        ui = {key: [{"filename": name, "subfolder": subfolder, "type": kind}]}
        if node["class_type"] == "SaveVideo":
            ui["animated"] = [True]
        return ui

    async def _execute(self, number: int, prompt_id: str, graph: dict, extra: dict, outputs: list) -> None:
        sid, messages, ui_all, executed = extra.get("client_id"), [], {}, []

        async def send(typ: str, data: dict, keep: bool = False) -> None:
            data = {**data, "prompt_id": prompt_id}
            if keep:
                messages.append([typ, data])
            await self._send(sid, typ, data)

        await send("execution_start", {"timestamp": _ms()}, keep=True)
        await send("execution_cached", {"nodes": [], "timestamp": _ms()}, keep=True)
        status = "success"
        for node_id in self._order(graph, outputs):
            node = graph[node_id]
            self._last_node = node_id
            await send("progress_state", {"nodes": {node_id: {
                "value": 0.0, "max": 1.0, "state": "running", "node_id": node_id, "prompt_id": prompt_id,
                "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}}})
            await send("executing", {"node": node_id, "display_node": node_id})
            for step in range(1, self.steps + 1):
                await asyncio.sleep(self.step_delay)
                while self.hung:
                    await self._release.wait()
                    return
                if self._interrupt:
                    status = "interrupted"
                    break
                await send("progress", {"value": step, "max": self.steps, "node": node_id})
                await self._send_to(sid, struct.pack(">II", 1, 1) + b"\xff\xd8\xff\xe0" + bytes(60))
            if status == "interrupted":
                await send("execution_interrupted", {"node_id": node_id, "node_type": node["class_type"],
                                                     "executed": executed, "timestamp": _ms()}, keep=True)
                break
            text = f"ran {node['class_type']}".encode()
            await self._send_to(sid, struct.pack(">II", 3, len(node_id)) + node_id.encode() + text)
            if node["class_type"] == self.fail_class:
                status = "error"
                await send("execution_error", {
                    "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                    "exception_message": "deliberate fake failure\n", "exception_type": "RuntimeError",
                    "traceback": ['  File "fake_comfy.py", line 1, in run\n    raise RuntimeError(message)\n'],
                    "current_inputs": {k: [str(v)] for k, v in node["inputs"].items()},
                    "current_outputs": list(graph), "timestamp": _ms()}, keep=True)
                break
            if getattr(self.classes[node["class_type"]], "OUTPUT_NODE", False):
                ui_all[node_id] = self._write_output(node, prompt_id)
                await send("executed", {"node": node_id, "display_node": node_id, "output": ui_all[node_id]})
            executed.append(node_id)
        if status == "success":
            await send("execution_success", {"timestamp": _ms()}, keep=True)
        self.history[prompt_id] = {  # task_done: history first, then status and executing null
            "prompt": [number, prompt_id, graph, extra, outputs],
            "outputs": ui_all if status == "success" else {},
            "status": {"status_str": "success" if status == "success" else "error",
                       "completed": status == "success", "messages": messages},
            "meta": {k: {"node_id": k, "display_node": k, "parent_node": None, "real_node_id": k} for k in ui_all}}
        self.running = None
        await self._status()
        await send("executing", {"node": None})

    async def _execute_podium(self, number: int, prompt_id: str, graph: dict, extra: dict,
                              outputs: list) -> None:
        """The graph runs in the child process; its events go out as they come, then the
        history entry is written, then status and `executing null` (ComfyUI's task_done)."""
        sid, messages, ui_all = extra.get("client_id"), [], {}
        task = {"prompt_id": prompt_id, "graph": graph, "steps": self.steps,
                "step_delay": self.step_delay, "fail_class": self.fail_class}
        try:
            self._child.stdin.write(json.dumps(task) + "\n")
            self._child.stdin.flush()
        except (AttributeError, OSError):  # killed meanwhile
            return
        status = None
        while status is None:
            owner, typ, data = await self._child_queue.get()
            while self.hung:
                await self._release.wait()
                return
            if owner != prompt_id:
                continue  # left over from a prompt this server gave up on
            if typ == "__done__":
                status = data
                break
            if typ == "executing" and data.get("node") is None:
                continue  # sent below, after the history entry, as ComfyUI does
            if typ == "executing":
                node_id = self._last_node = data["node"]
                await self._send(sid, "progress_state", {"prompt_id": prompt_id, "nodes": {node_id: {
                    "value": 0.0, "max": 1.0, "state": "running", "node_id": node_id,
                    "prompt_id": prompt_id, "display_node_id": node_id, "parent_node_id": None,
                    "real_node_id": node_id}}})
            if typ == "executed":
                ui_all[data["node"]] = data["output"]
            if typ in KEPT_MESSAGES:
                messages.append([typ, data])
            await self._send(sid, typ, data)
        success = status == "success"
        self.history[prompt_id] = {
            "prompt": [number, prompt_id, graph, extra, outputs],
            "outputs": ui_all if success else {},
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": messages},
            "meta": {k: {"node_id": k, "display_node": k, "parent_node": None, "real_node_id": k} for k in ui_all}}
        self.running = None
        await self._status()
        await self._send(sid, "executing", {"node": None, "prompt_id": prompt_id})


# ---- the child process that runs the pack's nodes (execute="podium") ----

def _slowed(name: str, cls: type, steps: int, delay: float, fail_class, interrupt) -> type:
    """`cls` whose function first waits steps x delay (progress events, interruptible), and
    raises for the class named by fail_class."""
    from orchestrator.render import local

    def run(self, **kwargs):
        for step in range(1, steps + 1):
            end = time.monotonic() + delay
            while (left := end - time.monotonic()) > 0:
                if interrupt.is_set():
                    raise KeyboardInterrupt
                time.sleep(min(left, 0.05))
            local.emit_progress(step, steps)
        if interrupt.is_set():
            raise KeyboardInterrupt
        if name == fail_class:
            raise RuntimeError("deliberate fake failure")
        return getattr(cls(), cls.FUNCTION)(**kwargs)

    return type(cls.__name__, (cls,), {"FUNCTION": "_fake_comfy_run", "_fake_comfy_run": run})


class _Interrupt:
    """Set by SIGUSR1 (the server's /interrupt), cleared when the next prompt starts."""
    flag = False

    @classmethod
    def is_set(cls) -> bool:
        return cls.flag


def _podium_child(output_dir: str, input_dir: str) -> None:
    """Run prompts (JSON lines on stdin) one after another with the pack's nodes; every event
    goes out on stdout as [prompt_id, type, data], then [prompt_id, "__done__", status]."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed (or an ffmpeg child's output) goes to stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when this stops
    signal.signal(signal.SIGUSR1, lambda *_: setattr(_Interrupt, "flag", True))
    os.chdir(input_dir)  # relative input paths resolve under the server's input folder
    from orchestrator.render import embedded, local

    classes = embedded.node_classes()
    from podium import paths, progress

    paths.set_output_directory(output_dir)

    def hook(value, total):
        if _Interrupt.flag:
            raise KeyboardInterrupt
        local.emit_progress(value, total)

    def send(*item) -> None:
        events.write(json.dumps(item) + "\n")

    progress.set_hook(hook)
    send("__ready__", None, None)
    for line in sys.stdin:
        task = json.loads(line)
        prompt_id, _Interrupt.flag = task["prompt_id"], False
        emit = lambda typ, data, p=prompt_id: send(p, typ, data)  # noqa: E731
        slow = {name: _slowed(name, cls, task["steps"], task["step_delay"], task["fail_class"], _Interrupt)
                for name, cls in classes.items()}
        try:
            local.run(task["graph"], slow, on_event=emit, prompt_id=prompt_id)
            status = "success"
        except KeyboardInterrupt:
            status = "interrupted"
        except local.ExecutionError:
            status = "error"  # its execution_error went out already
        except Exception as err:  # noqa: BLE001 - e.g. a graph the server let through
            emit("execution_error", {"prompt_id": prompt_id, "node_id": None, "node_type": None,
                                     "executed": [], "exception_message": f"{err}\n",
                                     "exception_type": type(err).__name__, "traceback": [],
                                     "current_inputs": {}, "current_outputs": [], "timestamp": _ms()})
            status = "error"
        send(prompt_id, "__done__", status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _podium_child(*argv[1:3])
        return 0
    parser = argparse.ArgumentParser(description="A fake ComfyUI 0.3.64 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--execute", choices=["write", "podium"], default="podium",
                        help="podium: run the pack's nodes for real (default); write: dummy files")
    parser.add_argument("--root", type=Path, default=None,
                        help="its output/input/temp folders (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--step-delay", type=float, default=None, help="seconds per step")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="fake-comfy-"))
    server = FakeComfy(root, execute=args.execute, port=args.port)
    if args.steps is not None:
        server.steps = args.steps
    if args.step_delay is not None:
        server.step_delay = args.step_delay
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    if server.execute == "podium":
        server.child_ready.wait(120)
    print(f"fake ComfyUI ({args.execute}) at {server.url}, files in {root}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
