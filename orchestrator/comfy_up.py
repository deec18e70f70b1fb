"""`podium comfy up|down` and `podium servers`: one ComfyUI per GPU, and how each is doing.

Each instance gets its own port and temp folder (ComfyUI wipes its temp folder at start, so
shared ones would wipe each other) and this repository as its base directory, so it loads the
pack from custom_nodes/. What was started is written to `<repo>/user/podium-servers.json`;
`podium generate --config` reads the same file.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .comfy_client import ComfyClient, ComfyError

REPO = Path(__file__).resolve().parent.parent
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


def up(comfyui_dir: Path, gpus: list[int], base_port: int, host: str = "127.0.0.1",
       wait_s: float = 300.0, extra: list[str] = ()) -> list[dict]:
    """Start the instances (CPU-only: one instance with --cpu) and wait until each answers."""
    main = Path(comfyui_dir) / "main.py"
    if not main.is_file():
        raise FileNotFoundError(f"no ComfyUI at {comfyui_dir} (main.py missing): set COMFYUI_DIR "
                                "or pass --comfyui-dir")
    started = []
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
        log = open(logs / f"comfyui-{name}.log", "ab")
        process = subprocess.Popen(command, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        started.append({"url": f"http://{host}:{port}", "pid": process.pid, "device": name,
                        "log": str(logs / f"comfyui-{name}.log")})
    deadline = time.monotonic() + wait_s
    for server in started:
        client = ComfyClient(server["url"])
        while not client.health():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server['url']} did not answer within {wait_s:.0f} s; see {server['log']}")
            time.sleep(1.0)
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"servers": started}, indent=2))
    return started


def down() -> int:
    """Stop what `up` started; returns how many were stopped."""
    stopped = 0
    for server in known_servers():
        try:
            os.killpg(server["pid"], signal.SIGTERM)
            stopped += 1
        except (KeyError, ProcessLookupError, PermissionError):
            pass
    STATE.unlink(missing_ok=True)
    return stopped


def known_servers() -> list[dict]:
    try:
        return json.loads(STATE.read_text())["servers"]
    except (OSError, ValueError, KeyError):
        return []


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
