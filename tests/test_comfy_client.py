"""ComfyClient against a fake ComfyUI on a real loopback socket (tests/fake_comfy.py).

Nothing is patched: the client talks HTTP and websocket to a server that speaks the protocol
recorded from ComfyUI 0.3.64 (tests/data/comfyui-0.3.64, copied from shared/reference).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import comparable_body  # noqa: E402
from fake_comfy import DATA, FakeComfy  # noqa: E402
from orchestrator.servers.comfy_client import (
    ComfyClient,
    ComfyError,
    ExecutionError,
    Interrupted,
    PromptError,
    PromptTimeout,
    ServerGone,
)  # noqa: E402

GONE_AFTER, TIMEOUT = 1.5, 1.0  # ServerGone comes after GONE_AFTER plus at most one request timeout
GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
          "_meta": {"title": "Blank"}},
    "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "width": 16,
                                                 "height": 16, "crop": "disabled"}, "_meta": {"title": "Scale"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "podium/test"},
          "_meta": {"title": "Save"}},
}


@pytest.fixture
def fake(tmp_path):
    server = FakeComfy(tmp_path / "server").start()
    yield server
    server.stop()


@pytest.fixture
def client(fake):
    with ComfyClient(fake.url, timeout=TIMEOUT, gone_after=GONE_AFTER, poll_interval=0.05) as c:
        yield c


def wait_for(condition, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


class Recorder:
    """on_event that records, and runs `action(type, data)` once on the first event of `on`."""

    def __init__(self, on: str | None = None, action=None):
        self.events, self.on, self.action = [], on, action

    def __call__(self, typ: str, data: dict) -> None:
        self.events.append((typ, data))
        if typ == self.on and self.action is not None:
            action, self.action = self.action, None
            action(typ, data)

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


def ctrl_c(_typ, _data):
    raise KeyboardInterrupt


# ---- success ----

def test_run_gives_events_in_order_and_outputs_that_download(client, fake, tmp_path):
    events = Recorder()
    outputs = client.run(GRAPH, events)
    assert outputs == {"3": {"images": [{"filename": "test_00001_.png", "subfolder": "podium", "type": "output"}]}}
    types = events.types()
    order = ["execution_start", "execution_cached", "executing", "progress", "executed", "execution_success"]
    assert [types.index(t) for t in order] == sorted(types.index(t) for t in order)
    assert events.events[-1] == ("executing", {"node": None, "prompt_id": events.events[-2][1]["prompt_id"]})
    assert [d["node"] for t, d in events.events if t == "executing"] == ["1", "2", "3", None]
    assert fake.binary_frames_sent > 0  # previews and text frames came, and were skipped
    # the fake speaks the recorded shapes
    recorded = json.loads((DATA / "ws_examples.json").read_text())
    for typ in ("execution_start", "execution_cached", "executing", "progress", "executed",
                "execution_success", "progress_state"):
        data = next(d for t, d in events.events if t == typ and d.get("node", "") is not None)
        assert set(data) == set(recorded[typ]["data"]), typ
    path = client.download(outputs["3"]["images"][0], tmp_path / "out.png")
    assert "SaveImage of prompt" in path.read_text()
    assert fake.history[events.events[-2][1]["prompt_id"]]["outputs"] == outputs


def test_save_video_output_is_an_mp4(client, fake, tmp_path):
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.skip("ffmpeg not installed")
    fake.video = tmp_path / "tiny.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=32x32:d=0.2", "-pix_fmt",
                    "yuv420p", str(fake.video)], check=True)
    graph = {"1": GRAPH["1"],
             "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24.0}},
             "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "podium/video",
                                                         "format": "mp4", "codec": "h264"}}}
    outputs = client.run(graph)
    assert outputs["3"]["animated"] == [True]  # recorded: SaveVideo reports its file under "images"
    path = client.download(outputs["3"]["images"][0], tmp_path / "video.mp4")
    assert path.read_bytes() == fake.video.read_bytes() and path.read_bytes()[4:8] == b"ftyp"


# ---- errors ----

def test_prompt_400_names_node_and_input(client):
    graph = json.loads(json.dumps(GRAPH))
    del graph["2"]["inputs"]["image"]
    with pytest.raises(PromptError) as err:
        client.queue(graph)
    assert 'node "Scale" (#2, ImageScale): input "image": Required input is missing' in str(err.value)
    assert err.value.body["error"]["type"] == "prompt_outputs_failed_validation"


@pytest.mark.parametrize("case", ["unknown_class", "missing_required_input", "bad_value_and_combo",
                                  "link_to_missing_node", "no_output_node", "no_class_type"])
def test_400_bodies_are_the_recorded_ones(client, case):
    recorded = json.loads((DATA / "prompt_400_errors.json").read_text())[case]
    with pytest.raises(PromptError) as err:
        client.queue(recorded["request_prompt"])
    assert comparable_body(err.value.body) == comparable_body(recorded["body"])


def test_ui_format_posted_by_mistake_gets_a_clear_message(client):
    ui = json.loads((DATA / "ui_workflow_serialized_by_editor.json").read_text())
    with pytest.raises(ComfyError, match="UI-format workflow.*convert it first"):
        client.queue(ui)


def test_partly_valid_graph_runs_its_valid_outputs_and_warns(client, caplog):
    graph = {**GRAPH, "4": {"class_type": "ImageScale", "inputs": {"upscale_method": "bilinear", "width": 8,
                                                                   "height": 8, "crop": "disabled"}},
             "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}}
    outputs = client.run(graph)
    assert list(outputs) == ["3"]
    assert 'node "ImageScale" (#4, ImageScale): input "image"' in caplog.text


def test_execution_error_names_the_node(client, fake):
    fake.fail_class = "ImageScale"
    events = Recorder()
    with pytest.raises(ExecutionError) as err:
        client.run(GRAPH, events)
    assert str(err.value) == 'node "Scale" (#2, ImageScale) failed: RuntimeError: deliberate fake failure'
    recorded = json.loads((DATA / "ws_examples.json").read_text())["execution_error"]["data"]
    assert set(err.value.data) == set(recorded) and err.value.data["executed"] == ["1"]
    assert events.types()[-1] == "execution_error"
    # the fake's /history entry has the recorded shape of a failed prompt
    assert wait_for(lambda: err.value.prompt_id in fake.history)
    mine = requests.get(f"{fake.url}/history/{err.value.prompt_id}", timeout=2).json()[err.value.prompt_id]
    (theirs,) = json.loads((DATA / "history_error.json").read_text()).values()
    assert set(mine) == set(theirs) and set(mine["status"]) == set(theirs["status"])
    assert [m[0] for m in mine["status"]["messages"]] == [m[0] for m in theirs["status"]["messages"]]
    assert (mine["status"]["status_str"], mine["outputs"], len(mine["prompt"])) == ("error", {}, 5)


def test_execution_error_is_found_in_history_without_websocket(client, fake):
    fake.fail_class, fake.refuse_ws = "ImageScale", True
    events = Recorder()
    with pytest.raises(ExecutionError, match='node "Scale" \\(#2, ImageScale\\) failed'):
        client.run(GRAPH, events)
    assert fake.ws_connects == 0 and events.types() == ["execution_error"]


def test_interrupt_from_elsewhere_raises_interrupted(client, fake):
    fake.steps, fake.step_delay = 200, 0.01
    events = Recorder("progress", lambda t, d: requests.post(fake.url + "/interrupt", json={}, timeout=2))
    with pytest.raises(Interrupted, match='node "Blank" \\(#1, EmptyImage\\) was interrupted'):
        client.run(GRAPH, events)


# ---- an unreliable websocket, a vanished server ----

def test_websocket_drop_mid_run_reconnects_and_completes(client, fake):
    fake.steps, fake.step_delay, fake.drop_ws_after = 10, 0.01, 8
    events = Recorder()
    outputs = client.run(GRAPH, events)
    assert fake.ws_connects >= 2
    assert outputs["3"]["images"][0]["filename"] == "test_00001_.png"
    assert events.events[-1][0] == "executing" and events.events[-1][1]["node"] is None


def test_websocket_gone_for_good_completes_by_polling_history(client, fake):
    fake.steps, fake.step_delay = 10, 0.01

    def cut(_t, _d):
        fake.refuse_ws, fake.drop_ws_after = True, 1
    events = Recorder("progress", cut)
    outputs = client.run(GRAPH, events)
    assert fake.ws_connects == 1 and len(fake.saw("GET", f"/history/{events.events[-1][1]['prompt_id']}")) > 1
    assert outputs["3"]["images"][0]["filename"] == "test_00001_.png"
    assert events.types()[-2:] == ["execution_success", "executing"]  # replayed from /history


def test_server_that_stops_answering_raises_server_gone_within_deadline(client, fake):
    fake.steps, fake.step_delay = 1000, 0.01
    started = []
    events = Recorder("progress", lambda t, d: (fake.hang(), started.append(time.monotonic())))
    with pytest.raises(ServerGone, match="has not answered"):
        client.run(GRAPH, events)
    elapsed = time.monotonic() - started[0]
    assert elapsed >= GONE_AFTER - 0.1  # it waited the grace time (how fast it gives up: bench)
    assert client.health() is False


def test_killed_server_raises_server_gone(client, fake):
    fake.steps, fake.step_delay = 1000, 0.01
    events = Recorder("progress", lambda t, d: fake.kill())
    t0 = time.monotonic()
    with pytest.raises(ServerGone):
        client.run(GRAPH, events)
    assert time.monotonic() - t0 < 60  # it gave up by itself (a dead server never answers)
    with pytest.raises(ServerGone):  # a dispatcher learns at once that nothing can be queued here
        client.queue(GRAPH)


@pytest.fixture
def server_process(tmp_path):
    """A fake ComfyUI in a process of its own (so it can really be stopped with SIGSTOP): its
    nodes take 1000 steps of 10 ms, with a progress event after each."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_comfy.py")),
                             "--execute", "write", "--root", str(tmp_path / "proc"),
                             "--steps", "1000", "--step-delay", "0.01"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, match = [], None
    for line in proc.stdout:  # warnings may come first
        seen.append(line)
        match = re.search(r"fake ComfyUI \(write\) at (http://\S+),", line)
        if match:
            break
    assert match, "".join(seen)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # a full pipe would block it
    proc.url = match[1]
    yield proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_a_stopped_server_process_is_given_up_after_the_silence_limit(server_process):
    """SIGSTOP: the port still accepts connections, nothing answers. The heartbeat's short
    requests notice within the silence limit plus one of them, not after the long HTTP
    timeout (the default limits give a hung server's segment to another within 15 s)."""
    gone_after = 3.0
    client = ComfyClient(server_process.url, timeout=30.0, gone_after=gone_after, heartbeat=0.5)
    stopped = []

    def stop(_t, _d):
        os.kill(server_process.pid, signal.SIGSTOP)
        stopped.append(time.monotonic())

    with pytest.raises(ServerGone, match="has not answered for 3 s"):
        client.run(GRAPH, Recorder("progress", stop))
    waited = time.monotonic() - stopped[0]
    # not before the limit; after it, at most one heartbeat request (gone_after / 4) + slack
    assert gone_after - 0.1 <= waited <= gone_after + gone_after / 4 + 5, waited
    assert client._beat_timeout() == gone_after / 4 < client.timeout
    client.close()


def test_the_default_limits_fail_a_hung_server_over_within_15_s():
    client = ComfyClient("http://127.0.0.1:1")
    assert client.gone_after + client._beat_timeout() <= 15  # the worst case of the loop above
    assert client.heartbeat < client.gone_after / 2  # several heartbeats before giving up


def test_a_busy_server_without_progress_events_is_not_given_up(fake, tmp_path):
    """Each node works longer than the silence limit without a single websocket frame; /queue
    answers all along, so the server counts as alive and the prompt completes."""
    gone_after = 2.0
    fake.steps, fake.step_delay = 1, 1.5 * gone_after  # 3 nodes, each silent for 3 s
    with ComfyClient(fake.url, gone_after=gone_after, heartbeat=0.5) as client:
        events = Recorder()
        outputs = client.run(GRAPH, events)
    assert outputs["3"]["images"][0]["filename"] == "test_00001_.png"
    assert events.types()[-2:] == ["execution_success", "executing"]
    assert len(fake.saw("GET", "/queue")) >= 3  # the heartbeat kept asking


def test_a_prompt_that_never_ends_raises_prompt_timeout_and_keeps_running(client, fake):
    fake.steps, fake.step_delay = 100000, 0.01  # "running" for 1000 s a node, progress all along
    prompt_id = client.queue(GRAPH)
    t0 = time.monotonic()
    with pytest.raises(PromptTimeout, match="did not finish within 2 s"):
        client.follow(prompt_id, Recorder(), timeout_s=2.0)
    assert time.monotonic() - t0 >= 2.0
    assert fake.running is not None and fake.running[1] == prompt_id  # the caller decides
    client.cancel(prompt_id)
    assert wait_for(lambda: prompt_id in fake.history, 10)


# ---- Ctrl-C ----

def test_ctrl_c_while_running_interrupts_that_prompt(client, fake):
    fake.steps, fake.step_delay = 200, 0.01
    events = Recorder("progress", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        client.run(GRAPH, events)
    prompt_id = events.events[-1][1]["prompt_id"]
    assert [r[3] for r in fake.saw("POST", "/interrupt")] == [{"prompt_id": prompt_id}]
    assert not fake.saw("POST", "/queue")
    assert wait_for(lambda: prompt_id in fake.history)
    assert fake.history[prompt_id]["status"]["messages"][-1][0] == "execution_interrupted"


def test_ctrl_c_while_queued_deletes_it(client, fake):
    fake.steps, fake.step_delay = 500, 0.01
    blocker = ComfyClient(fake.url).queue(GRAPH)  # another user's long prompt runs first
    assert wait_for(lambda: fake.running is not None)
    with pytest.raises(KeyboardInterrupt):
        client.run(GRAPH, Recorder("status", ctrl_c))
    deleted = [r[3]["delete"] for r in fake.saw("POST", "/queue")]
    assert len(deleted) == 1 and deleted[0][0] != blocker
    assert not fake.pending and fake.running[1] == blocker
    assert not fake.saw("POST", "/interrupt")


# ---- files and small calls ----

def test_upload_and_download_round_trip(client, fake, tmp_path):
    source = tmp_path / "face.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    name = client.upload(source)
    assert name == "podium/face.png"
    assert client.upload(source) == name  # same content: ComfyUI keeps the name
    other = tmp_path / "other" / "face.png"
    other.parent.mkdir()
    other.write_bytes(b"different")
    assert client.upload(other) == "podium/face (1).png"
    wav = tmp_path / "tone.wav"
    wav.write_bytes(b"RIFF....WAVEfmt ")
    assert client.upload(wav, subfolder="") == "tone.wav"  # audio goes through /upload/image too
    back = client.download({"filename": "face.png", "subfolder": "podium", "type": "input"}, tmp_path / "back.png")
    assert back.read_bytes() == source.read_bytes()


def test_download_is_atomic(client, fake, tmp_path):
    big = fake.root / "output" / "podium" / "big.mp4"
    big.parent.mkdir(parents=True)
    big.write_bytes(bytes(1 << 20))
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    dest = dest_dir / "big.mp4"
    dest.write_bytes(b"the previous take")
    fake.view_break_after = 64 << 10
    with pytest.raises(ServerGone, match="broke off"):
        client.download({"filename": "big.mp4", "subfolder": "podium", "type": "output"}, dest)
    assert sorted(p.name for p in dest_dir.iterdir()) == ["big.mp4"]
    assert dest.read_bytes() == b"the previous take"
    fake.view_break_after = None
    with pytest.raises(ComfyError, match="404"):
        client.download({"filename": "missing.mp4", "subfolder": "podium"}, dest_dir / "missing.mp4")
    assert sorted(p.name for p in dest_dir.iterdir()) == ["big.mp4"]
    client.download({"filename": "big.mp4", "subfolder": "podium"}, dest)
    assert dest.stat().st_size == 1 << 20


def test_queue_stats_object_info_and_health(client, fake):
    assert client.health() is True
    assert client.system_stats()["system"]["comfyui_version"] == "0.3.64"
    assert client.queue_status() == {"queue_running": [], "queue_pending": []}
    info = client.object_info()
    assert client.object_info() is info and len(fake.saw("GET", "/object_info")) == 1
    assert info["SaveVideo"]["input"]["required"]["format"][0] == "COMBO"
    client.interrupt()
    client.delete_queued(["nothing-here"])
    assert fake.saw("POST", "/interrupt")[-1][3] == {} and fake.saw("POST", "/queue")[-1][3] == {"delete": ["nothing-here"]}
    fake.kill()
    assert client.health() is False


def test_orchestrator_does_not_import_torch():
    code = ("import sys; import orchestrator.servers.comfy_client, orchestrator.graphs.ui_format; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0
