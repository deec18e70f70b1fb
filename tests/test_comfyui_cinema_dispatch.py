"""A multi-segment cinema job over two real ComfyUI servers (0.3.64, --cpu), one killed midway:
`podium generate --preset cinema` picks each server's graph, takes each paragraph as one segment,
renders the segments in parallel with the core Wan2.2-S2V nodes on tiny random-weight models
(tests/tiny_wan.py), moves the killed server's segment to the other, and stitches a complete
MP4 whose video and audio agree within one frame, in every segment and in the whole.

The graph is workflows/cinema_s2v.json as shipped, given with --workflow after the swaps a CPU
needs (tests/test_comfyui_cinema.py's `small`: tiny model names, the umt5-xxl stand-in, two
sampler steps, the tiny Real-ESRGAN), so the orchestrator's own per-server check, sizing,
segmenting, dispatch and failover are what run.

    COMFYUI_DIR=/tmp/comfyui-cinema-orch python -m pytest tests/test_comfyui_cinema_dispatch.py
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import requests

from conftest import COMFYUI_DIR, cache_dir_for, comfyui_server, draw_portrait, ffprobe, live_comfyui, start_cli, streams
from orchestrator.graphs.workflow import bind

pytestmark = live_comfyui

REPO = Path(__file__).resolve().parent.parent
FPS, SIZE = 25, 64
FRAME = 1 / FPS
SENTENCES = ["Hello.", "Welcome.", "Goodbye."]  # one segment each: a CPU makes a few frames a minute


def base_folder(root: Path, shared: Path) -> Path:
    """A ComfyUI base directory: the pack and the test stand-ins, the tiny S2V models (built
    once in `shared`, seen by both servers), the tiny upscaler in input/."""
    from test_upscale import build as build_upscaler
    from tiny_wan import install_tiny_cinema_models

    if not (shared / "tiny_x2.pth").exists():
        install_tiny_cinema_models(shared / "models", "s2v", COMFYUI_DIR)
        build_upscaler(shared / "tiny_x2.pth", scale=2, num_block=1)
    root.mkdir(parents=True)
    (root / "custom_nodes").mkdir()
    (root / "custom_nodes" / "podium").symlink_to(REPO / "custom_nodes" / "podium")
    (root / "custom_nodes" / "podium_test_stand_ins").symlink_to(REPO / "tests" / "comfy_stand_ins")
    (root / "models").symlink_to(shared / "models")
    for name in ("input", "output", "temp", "user"):
        (root / name).mkdir()
    shutil.copyfile(shared / "tiny_x2.pth", root / "input" / "tiny_x2.pth")  # (inputs may not link out)
    return root


def busy(url: str) -> bool | None:
    """Whether the server is running a prompt; None when it did not answer in time (a CPU
    server deep in a node can be slow to)."""
    try:
        return bool(requests.get(url + "/queue", timeout=15).json()["queue_running"])
    except requests.RequestException:
        return None


def cpu_graph(path: Path) -> Path:
    """cinema_s2v.json made runnable on a CPU, written where --workflow can read it: each
    generation makes up to 9 frames at 16 fps, so a word or two is already a chain of chunks."""
    from test_comfyui_cinema import small

    graph = small("s2v")
    graph = bind(graph, {("Voice", "voice_path"): ""})
    path.write_text(json.dumps(graph))
    return path


def test_a_cinema_job_survives_a_killed_server_with_exact_timing(tmp_path):
    from contextlib import ExitStack

    with ExitStack() as stack:
        servers = []
        for i in range(2):
            folder = base_folder(tmp_path / f"comfyui{i}", tmp_path / "shared")
            args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(folder),
                    "--database-url", "sqlite:///:memory:"]
            servers.append(stack.enter_context(comfyui_server(args, cwd=folder, log_path=folder / "comfyui.log")))
        workflow = cpu_graph(tmp_path / "cinema_s2v_cpu.json")
        portrait = draw_portrait(tmp_path / "me.png", 96, 96)
        script = tmp_path / "talk.txt"
        script.write_text("\n\n".join(SENTENCES) + "\n")
        out, tmpdir = tmp_path / "talk.mp4", tmp_path / "tmp"
        cli = start_cli("generate", "--preset", "cinema", "--workflow", workflow, "--script", script,
                        "--image", portrait, "--size", f"{SIZE}x{SIZE}", "--fps", FPS, "--quiet",
                        "--out", out, *[a for s in servers for a in ("--server", s["url"])], tmpdir=tmpdir)
        cache = cache_dir_for(tmpdir)

        # once a segment is finished, kill whichever server is rendering one (the other then
        # renders that segment too)
        killed = None
        deadline = time.monotonic() + 1500
        while time.monotonic() < deadline and cli.poll() is None and killed is None:
            if any(not p.parent.name.startswith(".") for p in cache.glob("*/info.json")):
                killed = next((i for i, s in enumerate(servers) if busy(s["url"])), None)
                if killed is not None:
                    servers[killed]["proc"].send_signal(signal.SIGKILL)
                    servers[killed]["proc"].wait(30)
            time.sleep(0.3)
        stdout, stderr = cli.communicate(timeout=max(60, deadline - time.monotonic()))
        assert cli.returncode == 0, f"exit {cli.returncode}\n{stderr[-4000:]}"
        assert killed is not None, "no server was seen rendering after a segment finished"

    names = [re.sub(r"^https?://", "", s["url"]) for s in servers]
    for name in names:
        assert f"cinema: {name} runs cinema_s2v_cpu at {SIZE}x{SIZE}" in stderr, stderr
    assert f"({len(SENTENCES)} segments, 0 from cache)" in stdout, stdout

    # every segment: video and audio within a frame
    clips = sorted(p for p in cache.glob("*/clip.mov") if not p.parent.name.startswith("."))
    assert len(clips) == len(SENTENCES)
    total = 0.0
    for clip in clips:
        (v,), (a,) = streams(ffprobe(clip), "video"), streams(ffprobe(clip), "audio")
        assert abs(v["duration"] - a["duration"]) <= FRAME, (clip, v["duration"], a["duration"])
        total += a["duration"]
    # the whole: complete, H.264/AAC, in step
    info = ffprobe(out)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert abs(v["duration"] - a["duration"]) <= FRAME, (v["duration"], a["duration"])
    assert abs(a["duration"] - total) <= len(clips) * FRAME, (a["duration"], total)
    assert abs(v["nb_frames"] - round(total * FPS)) <= len(clips)
