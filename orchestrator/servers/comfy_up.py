"""`podium comfy up|down` and `podium servers`: one ComfyUI per GPU, and how each is doing.

Each instance gets its own port and temp folder (ComfyUI wipes its temp folder at start, so
shared ones would wipe each other) and this repository as its base directory, so it loads the
pack from custom_nodes/. What was started is written to `<repo>/user/podium-servers.json`;
`podium generate --config` reads the same file.

Each record keeps its process's identity (start time and command line, from psutil): `down`
signals a recorded PID only while it is still that ComfyUI (after a reboot the PID may be any
program's), and `up` refuses to start over instances that still run (they would be orphaned,
their record overwritten); two `up` at once are kept apart by a lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import psutil

from podium.errors import UsageError
from podium.files import atomic_write_text

from orchestrator.servers.comfy_client import ComfyClient, ComfyError
from orchestrator.graphs.workflow import link_templates

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "user" / "podium-servers.json"


def detect_gpus() -> list[int]:
    """NVIDIA GPU indices from nvidia-smi (no torch needed); [] when there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


def parse_gpus(spec: str) -> list[int]:
    if spec == "all":
        return detect_gpus()
    try:
        return [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes 'all' or indices like 0,1; got {spec!r}") from None


class StartFailed(Exception):
    """An instance exited, or did not answer in time; the message ends with its log's tail."""


def _log_tail(path: Path, offset: int, lines: int = 15) -> str:
    """The last lines this start wrote to `path` (the file also holds earlier starts)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in tail)


def _stop(processes: list[subprocess.Popen]) -> None:
    """Stop what this start began (each in its own process group), waiting a little for it."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()


def up(comfyui_dir: Path, gpus: list[int], base_port: int, host: str = "127.0.0.1",
       wait_s: float = 300.0, extra: list[str] = ()) -> list[dict]:
    """Start the instances (CPU-only: one instance with --cpu) and wait until each answers.
    An instance that exits meanwhile (no such GPU, a bad argument) fails the start at once,
    with the end of its log; then the others are stopped too: all answer, or none is left."""
    main = Path(comfyui_dir) / "main.py"
    if not main.is_file():
        raise FileNotFoundError(f"no ComfyUI at {comfyui_dir} (main.py missing): set COMFYUI_DIR "
                                "or pass --comfyui-dir")
    with _only_one_up():
        running = [s["url"] for s in known_servers() if _still_ours(s)]
        if running:
            raise UsageError(f"ComfyUI from an earlier `podium comfy up` still runs ({', '.join(running)}): "
                             "stop it with `podium comfy down` first, or use it as it is")
        started = _start(main, comfyui_dir, gpus, base_port, host, wait_s, extra)
        atomic_write_text(STATE, json.dumps({"servers": started}, indent=2))
    return started


@contextlib.contextmanager
def _only_one_up() -> Iterator[None]:
    """Hold the lock beside the record while starting; a second `up` meanwhile is refused."""
    STATE.parent.mkdir(parents=True, exist_ok=True)
    with open(STATE.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError("another `podium comfy up` is starting ComfyUI right now: wait for it, "
                             "then `podium servers` shows what runs") from None
        yield


def _identity(pid: int) -> dict | None:
    """What tells this process from a later one with the same PID: start time, command line."""
    try:
        process = psutil.Process(pid)
        return {"started_at": process.create_time(), "cmdline": process.cmdline()}
    except psutil.Error:
        return None


def _still_ours(server: dict) -> bool:
    """Whether the recorded PID is still the process `up` started (a record without the
    identity, or a reused PID, is not)."""
    pid, now = server.get("pid"), None
    if isinstance(pid, int) and pid > 0:
        now = _identity(pid)
    return (now is not None and isinstance(server.get("started_at"), (int, float))
            and abs(now["started_at"] - server["started_at"]) < 0.01
            and now["cmdline"] == server.get("cmdline"))


def _start(main: Path, comfyui_dir: Path, gpus: list[int], base_port: int, host: str,
           wait_s: float, extra: list[str]) -> list[dict]:
    started, processes, offsets = [], [], []
    link_templates()  # the editor's template browser lists workflows/ (see orchestrator.graphs.workflow)
    try:
        for slot, gpu in enumerate(gpus or [None]):
            port, name = base_port + slot, f"gpu{gpu}" if gpu is not None else "cpu"
            temp, logs = REPO / "temp" / name, REPO / "user" / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            device = ["--cuda-device", str(gpu)] if gpu is not None else ["--cpu"]
            # ComfyUI keeps its database under COMFYUI_DIR whatever the base directory: give each
            # instance its own, or they would share one sqlite file.
            database = f"sqlite:///{REPO / 'user' / f'comfyui-{name}.db'}"
            command = [sys.executable, str(main), "--listen", host, "--port", str(port),
                       "--base-directory", str(REPO), "--temp-directory", str(temp),
                       "--database-url", database, *device, *extra]
            log_path = logs / f"comfyui-{name}.log"
            with open(log_path, "ab") as log:
                offsets.append(log.tell())
                processes.append(subprocess.Popen(command, cwd=comfyui_dir, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            started.append({"url": f"http://{host}:{port}", "pid": processes[-1].pid, "device": name,
                            "log": str(log_path)})
        _wait_until_up(started, processes, offsets, wait_s)
        for server, process in zip(started, processes):  # now that it runs ComfyUI: right after the
            server.update(_identity(process.pid) or {})  # fork the command line is not yet its own
    except BaseException:  # one failed, a timeout, Ctrl-C: leave nothing half started
        _stop(processes)
        raise
    return started


def _wait_until_up(started: list[dict], processes: list[subprocess.Popen], offsets: list[int],
                   wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    clients = [ComfyClient(server["url"], timeout=2.0) for server in started]
    waiting = set(range(len(started)))
    while waiting:
        for i in sorted(waiting):
            code = processes[i].poll()
            if code is not None:
                tail = _log_tail(Path(started[i]["log"]), offsets[i])
                raise StartFailed(f"ComfyUI for {started[i]['device']} exited at start (exit code "
                                  f"{code}); the end of {started[i]['log']}:\n{tail or '    (empty)'}")
            if clients[i].health():
                waiting.discard(i)
        if waiting and time.monotonic() > deadline:
            i = min(waiting)
            tail = _log_tail(Path(started[i]["log"]), offsets[i])
            raise StartFailed(f"{started[i]['url']} did not answer within {wait_s:.0f} s; the end "
                              f"of {started[i]['log']}:\n{tail or '    (empty)'}")
        if waiting:
            time.sleep(0.5)


def down() -> tuple[int, list[str]]:
    """Stop what `up` started, and only that: (how many were stopped, a line for each record
    whose PID is no longer that ComfyUI, left alone)."""
    stopped, left = 0, []
    for server in known_servers():
        if not _still_ours(server):
            left.append(f"{server.get('url', '?')}: not stopped, process {server.get('pid')} is no "
                        "longer the ComfyUI `podium comfy up` started (it ended; the PID may be "
                        "another program's now)")
            continue
        try:
            os.killpg(server["pid"], signal.SIGTERM)  # its own session: ComfyUI and its children
            stopped += 1
        except (ProcessLookupError, PermissionError):
            pass
    STATE.unlink(missing_ok=True)
    return stopped, left


def known_servers() -> list[dict]:
    try:
        servers = json.loads(STATE.read_text())["servers"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [s for s in servers if isinstance(s, dict)] if isinstance(servers, list) else []


def status_lines(urls: list[str]) -> list[str]:
    """One line per server: health, queue, device memory."""
    lines = [f"{'server':<28} {'health':<8} {'running':>7} {'pending':>7}  device memory"]
    for url in urls:
        client = ComfyClient(url, timeout=5.0)
        try:
            queue, stats = client.queue_status(), client.system_stats()
        except ComfyError as err:
            lines.append(f"{url:<28} {'down':<8} {'-':>7} {'-':>7}  {str(err)[:60]}")
            continue
        devices = ", ".join(
            f"{d['name']}: {d['vram_free'] / 2**30:.1f}/{d['vram_total'] / 2**30:.1f} GiB free"
            for d in stats.get("devices", []))
        lines.append(f"{url:<28} {'ok':<8} {len(queue['queue_running']):>7} "
                     f"{len(queue['queue_pending']):>7}  {devices}")
    return lines
