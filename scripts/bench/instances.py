#!/usr/bin/env python3
"""Speed-up of two rendering instances over one on a multi-segment job.

Starts two servers, each a process of its own: by default fake ComfyUIs that run the pack's
nodes for real (`python -m tests.fake_comfy --execute podium`, see tests/fake_comfy.py), or
real ComfyUIs (`--cpu`, the repository as base directory, as `podium comfy up` starts them)
when --comfyui-dir or $COMFYUI_DIR is given. Both are warmed up with a one-segment job, then
`podium generate` renders the same N-segment script with one server and with two (a fresh
segment cache each time, a different word in the text so ComfyUI's own cache cannot answer),
and a table shows the wall time of each run and the speed-up.

    .venv/bin/python scripts/bench/instances.py                      # fake servers, 8 segments
    .venv/bin/python scripts/bench/instances.py --segments 12 --repeat 2
    COMFYUI_DIR=/path/to/ComfyUI .venv/bin/python scripts/bench/instances.py

Two instances can only be faster when the machine has the cores (or GPUs) for both: on a
two-core machine each instance's voice and encoder compete with the other's.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"wrote \S+: (?P<seconds>[\d.]+) s of video \((?P<segments>\d+) segments, "
                     r"(?P<cached>\d+) from cache\)")
SENTENCES = ["{tag} starts this part of the talk.", "Each part is one segment of the video.",
             "A server renders it while another renders the next one."]


def script_text(segments: int, tag: str) -> str:
    """`segments` paragraphs (blank lines start segments), the same length whatever the tag."""
    return "\n\n".join(" ".join(s.format(tag=f"{tag} part {i + 1}") for s in SENTENCES)
                       for i in range(segments)) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_servers(count: int, comfyui_dir: Path | None, work: Path) -> list[tuple[str, subprocess.Popen, Path]]:
    """(url, process, log) per server, each started in a session of its own."""
    servers = []
    for i in range(count):
        port, folder = free_port(), work / f"server{i}"
        folder.mkdir(parents=True)
        if comfyui_dir is None:
            command = [sys.executable, "-m", "tests.fake_comfy", "--port", str(port),
                       "--execute", "podium", "--root", str(folder)]
        else:
            command = [sys.executable, str(comfyui_dir / "main.py"), "--cpu", "--listen", "127.0.0.1",
                       "--port", str(port), "--base-directory", str(REPO),
                       "--database-url", "sqlite:///:memory:"]
            for name in ("output", "temp", "user", "input"):
                (folder / name).mkdir()
                command += [f"--{name}-directory", str(folder / name)]
        log = folder / "server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        servers.append((f"http://127.0.0.1:{port}", process, log))
    deadline = time.monotonic() + 300
    for url, process, log in servers:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{url} exited ({process.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if requests.get(url + "/system_stats", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer in 300 s; see {log}")
            time.sleep(0.3)
    return servers


def stop_servers(servers) -> None:
    for _, process, _ in servers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for _, process, _ in servers:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def generate(urls: list[str], text: str, work: Path, name: str, args) -> tuple[float, float, int]:
    """Run `podium generate` on these servers with a fresh cache: (wall s, video s, segments)."""
    script = work / f"{name}.txt"
    script.write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "orchestrator.cli.main", "generate", "--script", str(script),
               "--out", str(work / f"{name}.mp4"), "--cache-dir", str(work / f"{name}-cache"),
               "--size", args.size, "--fps", str(args.fps), "--subtitles", "srt", "--quiet"]
    for url in urls:
        command += ["--server", url]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or not match:
        raise SystemExit(f"podium generate failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return wall, float(match["seconds"]), int(match["segments"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=8, help="segments in the job (default 8)")
    parser.add_argument("--size", default="320x180", help="video size (default 320x180)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best counts")
    parser.add_argument("--comfyui-dir", type=Path,
                        default=Path(os.environ["COMFYUI_DIR"]) if os.environ.get("COMFYUI_DIR") else None,
                        help="real ComfyUI instances from this tree (default $COMFYUI_DIR; none: fake ones)")
    args = parser.parse_args()
    kind = f"ComfyUI ({args.comfyui_dir})" if args.comfyui_dir else "fake ComfyUI (pack nodes, real work)"

    with tempfile.TemporaryDirectory(prefix="podium-bench-instances-") as tmp:
        work = Path(tmp)
        print(f"starting 2 x {kind} ...", file=sys.stderr)
        servers = start_servers(2, args.comfyui_dir, work)
        urls = [url for url, _, _ in servers]
        try:
            for i, url in enumerate(urls):  # voices loaded, first-run costs paid
                generate([url], script_text(1, f"Warm {i}"), work, f"warm{i}", args)
            results: dict[int, list[tuple[float, float, int]]] = {1: [], 2: []}
            tags = iter(["Alpha", "Bravo", "Delta", "Gamma", "Kappa", "Omega", "Sigma", "Theta"] * 99)
            for run in range(args.repeat):
                for count in (1, 2):
                    print(f"run {run + 1}: {args.segments} segments on {count} instance(s) ...", file=sys.stderr)
                    results[count].append(generate(urls[:count], script_text(args.segments, next(tags)),
                                                   work, f"run{run}-{count}", args))
        finally:
            stop_servers(servers)

    best = {count: min(runs) for count, runs in results.items()}
    print(f"\n{args.segments} segments, {args.size} at {args.fps} fps, {kind}, {os.cpu_count()} CPU cores")
    print(f"{'instances':>9}  {'video s':>7}  {'wall s':>7}  {'speed-up':>8}")
    for count, (wall, seconds, _) in best.items():
        print(f"{count:>9}  {seconds:>7.1f}  {wall:>7.1f}  {best[1][0] / wall:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
