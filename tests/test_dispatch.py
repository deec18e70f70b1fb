"""`podium generate --server A --server B`: two instances share a multi-segment job, one can be
killed in the middle, Ctrl-C leaves finished segments for the rerun, and the stitched video is
complete and in order however the segments finish.

Every scenario runs against two backends:
- fake: two tests/fake_comfy.FakeComfy(execute="podium") servers on real loopback sockets,
  which execute each graph with the pack's own nodes (nothing patched);
- comfyui: two real ComfyUI processes (--cpu) from COMFYUI_DIR, when it is set.
The CLI runs in a subprocess, exactly as a user runs it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import srt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import COMFYUI_DIR, HAVE_COMFYUI, stop_process  # noqa: E402
from fake_comfy import FakeComfy  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FFMPEG, FFPROBE = "ffmpeg", "ffprobe"
FPS = 25
FRAME = 1 / FPS
RATE = 16000  # Hz, for comparing audio
HOP = RATE // 50  # 20 ms windows
NODES = 6  # nodes in workflows/direct.json: a fake's step delay applies before each
SUMMARY = re.compile(r"wrote (?P<out>\S+): (?P<seconds>[\d.]+) s of video "
                     r"\((?P<segments>\d+) segments, (?P<cached>\d+) from cache\)")


# ---- the narration: one paragraph per segment, short sentences (one subtitle cue each) ----

def paragraphs(tag: str, count: int, long_first: bool = False) -> list[list[str]]:
    """`count` paragraphs of two short sentences each, every sentence naming `tag` (so no two
    tests send the same graph: ComfyUI would answer a repeated one from its cache). With
    long_first, the first paragraph has ten sentences, so its segment takes longest."""
    numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    result = []
    for i in range(count):
        if i == 0 and long_first:
            result.append([f"{tag} opens with line {n}." for n in numbers])
        else:
            result.append([f"{tag} part {numbers[i]} starts here.", f"It is short, {numbers[i]}."])
    return result


def write_script(folder: Path, paras: list[list[str]]) -> Path:
    path = folder / "talk.txt"
    path.write_text("\n\n".join(" ".join(p) for p in paras) + "\n", encoding="utf-8")
    return path


# ---- the two backends ----

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def history(url: str) -> dict:
    return requests.get(url + "/history", timeout=10).json()




class FakeCluster:
    """Two FakeComfy servers that run the pack's nodes, each in its own executor process."""

    kind = "fake"

    def __init__(self, root: Path):
        self.root, self.servers, self.urls, self.starts = root, [None, None], [None, None], 0

    def start(self) -> None:
        self.ensure_up()

    def ensure_up(self) -> None:
        for i, server in enumerate(self.servers):
            if server is None:
                self.starts += 1
                self.servers[i] = FakeComfy(self.root / f"server{i}-{self.starts}", execute="podium").start()
                self.urls[i] = self.servers[i].url
        for server in self.servers:
            assert server.child_ready.wait(120), "the fake's executor did not start"
        self.fast()

    def slow(self, i: int, seconds_per_segment: float) -> None:
        """Make every segment on instance i take at least this long (before the real work)."""
        self.servers[i].steps = 10
        self.servers[i].step_delay = seconds_per_segment / NODES / 10

    def fast(self) -> None:
        for server in self.servers:
            server.steps, server.step_delay = 3, 0.005

    def kill(self, i: int) -> None:
        self.servers[i].kill()
        self.servers[i].stop()
        self.servers[i] = None  # its URL stays in self.urls, refusing connections

    def prompts_posted(self, i: int) -> int:
        return len(self.servers[i].saw("POST", "/prompt"))

    def stop(self) -> None:
        for server in self.servers:
            if server is not None:
                server.stop()


class ComfyUICluster:
    """Two real ComfyUI processes (--cpu, the repo as base directory, own folders each)."""

    kind = "comfyui"

    def __init__(self, root: Path):
        self.root, self.procs, self.urls, self.starts = root, [None, None], [None, None], 0

    def start(self) -> None:
        self.ensure_up()

    def _launch(self, i: int) -> None:
        self.starts += 1
        folder = self.root / f"comfyui{i}-{self.starts}"
        port = free_port()
        cmd = [sys.executable, str(Path(COMFYUI_DIR, "main.py")), "--cpu", "--listen", "127.0.0.1",
               "--port", str(port), "--base-directory", str(REPO), "--database-url", "sqlite:///:memory:"]
        for name in ("output", "temp", "user", "input"):
            (folder / name).mkdir(parents=True)
            cmd += [f"--{name}-directory", str(folder / name)]
        self.log = folder / "comfyui.log"
        with open(self.log, "wb") as log:
            self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        self.procs[i].log = folder / "comfyui.log"
        self.urls[i] = f"http://127.0.0.1:{port}"

    def ensure_up(self) -> None:
        """Start whichever is not running, both at once (about 20 s each on two cores)."""
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self._launch(i)
        for proc, url in zip(self.procs, self.urls):
            def up(proc=proc, url=url) -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"ComfyUI exited ({proc.returncode}):\n{proc.log.read_text()[-3000:]}")
                try:
                    return requests.get(url + "/system_stats", timeout=2).ok
                except requests.RequestException:
                    return False
            wait_for(up, 240, f"ComfyUI at {url}", interval=0.3)

    def slow(self, i: int, seconds_per_segment: float) -> None:
        """A real ComfyUI has no delay knob: slowness comes from longer segments instead."""

    def fast(self) -> None:
        pass

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(30)

    def prompts_posted(self, i: int) -> int:
        return len(history(self.urls[i]))

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                stop_process(proc)


@pytest.fixture(scope="module", params=[
    "fake",
    pytest.param("comfyui", marks=[pytest.mark.comfyui, pytest.mark.skipif(
        not HAVE_COMFYUI, reason="set COMFYUI_DIR to a ComfyUI source tree to run this backend")]),
])
def cluster(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    backend = FakeCluster(root) if request.param == "fake" else ComfyUICluster(root)
    try:
        backend.start()
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def servers(cluster):
    """Both instances up (restarted if a test killed one), knobs back to fast."""
    cluster.ensure_up()
    return cluster


# ---- running the CLI ----

def cli_command(script: Path, out: Path, cache: Path, urls: list[str]) -> list[str]:
    command = [sys.executable, "-m", "orchestrator.cli.main", "generate", "--script", str(script),
               "--out", str(out), "--size", "320x180", "--fps", str(FPS), "--cache-dir", str(cache),
               "--subtitles", "srt", "--quiet"]
    for url in urls:
        command += ["--server", url]
    return command


def cli_env() -> dict:
    env = dict(os.environ)
    env.pop("PODIUM_FFMPEG", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(command: list[str], timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def start_cli(command: list[str]) -> subprocess.Popen:
    """The CLI in its own session, so SIGINT reaches it alone (as Ctrl-C in its terminal)."""
    return subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop_cli(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def summary(done: subprocess.CompletedProcess) -> re.Match:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    match = SUMMARY.search(done.stdout)
    assert match, f"no summary line in:\n{done.stdout}"
    return match


def finished_entries(cache: Path) -> list[Path]:
    """Cache entries a rerun can use: folders with their info.json (partial ones are hidden)."""
    return [d for d in cache.iterdir() if (d / "info.json").is_file()] if cache.is_dir() else []


# ---- checking the result ----

def ffprobe(path: Path) -> list[dict]:
    done = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-of", "json", str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["streams"]


def decode_audio(path: Path) -> np.ndarray:
    done = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                           "-ar", str(RATE), "-"], capture_output=True, check=True)
    return np.frombuffer(done.stdout, "<i2").astype(np.float32) / 32768.0


def envelope(samples: np.ndarray) -> np.ndarray:
    usable = len(samples) // HOP * HOP
    return np.sqrt(np.mean(samples[:usable].reshape(-1, HOP) ** 2, axis=1))


def correlation_at(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Pearson correlation of a[t + lag] with b[t] over their overlap."""
    x = a[max(0, lag):len(a) + min(0, lag)]
    y = b[max(0, -lag):len(b) + min(0, -lag)]
    n = min(len(x), len(y))
    return float(np.corrcoef(x[:n], y[:n])[0, 1])


def cues(path: Path) -> list[srt.Subtitle]:
    return list(srt.parse(path.read_text(encoding="utf-8")))


def segment_clips(cache: Path, paras: list[list[str]]) -> list[dict]:
    """The job's clips from the cache, in segment order: {"dir", "frames", "fps", "duration"};
    a clip's segment is the one whose first sentence its subtitles open with."""
    by_first = {}
    for entry in finished_entries(cache):
        info = json.loads((entry / "info.json").read_text())
        first = cues(entry / "clip.srt")[0].content.replace("\n", " ")
        by_first[first] = {"dir": entry, **info, "duration": info["frames"] / info["fps"]}
    missing = [p[0] for p in paras if p[0] not in by_first]
    assert not missing, f"no cached clip opens with {missing}; cached: {sorted(by_first)}"
    return [by_first[p[0]] for p in paras]


def cached_segments(cache: Path, paras: list[list[str]]) -> set[int]:
    """Which of the job's segments the cache holds (by the first sentence of their subtitles)."""
    firsts = {cues(entry / "clip.srt")[0].content.replace("\n", " ") for entry in finished_entries(cache)}
    return {i for i, p in enumerate(paras) if p[0] in firsts}


def check_video(out: Path, cache: Path, paras: list[list[str]], match: re.Match) -> None:
    """The MP4 is whole and in order: one h264 and one aac stream as long as the segments
    together (within a frame), its audio the segments' audio one after another with no gap or
    drift, its subtitles every sentence in order, each at its segment's offset."""
    assert out.is_file() and Path(match["out"]) == out
    assert int(match["segments"]) == len(paras)
    clips = segment_clips(cache, paras)
    total = sum(c["duration"] for c in clips)
    assert abs(float(match["seconds"]) - total) < 0.051

    streams = ffprobe(out)
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert len(streams) == 2 and len(video) == 1 and len(audio) == 1, streams
    assert video[0]["codec_name"] == "h264" and audio[0]["codec_name"] == "aac"
    v_dur, a_dur = float(video[0]["duration"]), float(audio[0]["duration"])
    assert abs(v_dur - a_dur) <= FRAME, (v_dur, a_dur)
    assert abs(v_dur - total) <= FRAME, (v_dur, total, [c["duration"] for c in clips])

    # audio: the concatenation of the clips' own audio, each exactly as long as its video
    parts = []
    for clip in clips:
        samples, want = decode_audio(clip["dir"] / clip["file"]), round(clip["duration"] * RATE)
        parts.append(np.pad(samples[:want], (0, max(0, want - len(samples)))))
    mine, theirs = envelope(decode_audio(out)), envelope(np.concatenate(parts))
    assert abs(len(mine) - len(theirs)) <= FRAME * 50, (len(mine), len(theirs))
    assert correlation_at(mine, theirs, 0) > 0.9, "the audio is not the segments' audio in order"
    start = 0
    for index, part in enumerate(parts):  # each segment where it belongs: no gap, no drift
        n = len(part) // HOP
        here, there = mine[start:start + n], theirs[start:start + n]
        best = max(range(-5, 6), key=lambda lag: correlation_at(here, there, lag))
        assert abs(best) <= 1, f"segment {index + 1} is {best * 20} ms off"
        start += n

    # subtitles: the sentences in order, times increasing, each clip's cues at its offset
    merged = cues(out.with_suffix(".srt"))
    sentences = [s for p in paras for s in p]
    assert [c.content.replace("\n", " ") for c in merged] == sentences
    starts = [c.start.total_seconds() for c in merged]
    ends = [c.end.total_seconds() for c in merged]
    assert all(a < b for a, b in zip(starts, starts[1:])), starts
    assert all(s < e for s, e in zip(starts, ends)) and all(e <= s + 0.001 for e, s in zip(ends, starts[1:]))
    assert ends[-1] <= v_dur + 0.001
    expected, offset = [], 0.0
    for clip in clips:
        expected += [(c.start.total_seconds() + offset, c.end.total_seconds() + offset)
                     for c in cues(clip["dir"] / "clip.srt")]
        offset += clip["duration"]
    assert all(abs(s - es) <= 0.0015 and abs(e - ee) <= 0.0015
               for (s, e), (es, ee) in zip(zip(starts, ends), expected)), (list(zip(starts, ends)), expected)


def segment_of(entry: dict, paras: list[list[str]]) -> int | None:
    """Which segment a /history entry rendered (its Script node holds the segment's text)."""
    text = json.dumps(entry["prompt"][2])
    found = [i for i, p in enumerate(paras) if json.dumps(p[0])[1:-1] in text]
    return found[0] if len(found) == 1 else None


def finished_at(entry: dict) -> float | None:
    for typ, data in entry.get("status", {}).get("messages", []):
        if typ == "execution_success":
            return data["timestamp"] / 1000
    return None


def running_segment(url: str, paras: list[list[str]]) -> int | None:
    """The segment of this job the server is executing now, if any (from /queue)."""
    try:
        queue = requests.get(url + "/queue", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None
    for item in queue["queue_running"]:
        index = segment_of({"prompt": item}, paras)
        if index is not None:
            return index
    return None


def job_prompts(url: str, paras: list[list[str]]) -> dict[int, float]:
    """{segment: when it finished} for this job's prompts that succeeded on the server."""
    done = {}
    for entry in history(url).values():
        index, when = segment_of(entry, paras), finished_at(entry)
        if index is not None and when is not None:
            done[index] = when
    return done


# ---- the scenarios ----

def test_two_instances_render_a_multi_segment_video(servers, tmp_path):
    paras = paragraphs(f"Duo {servers.kind}", 4)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    before = [servers.prompts_posted(i) for i in range(2)]
    done = run_cli(cli_command(write_script(tmp_path, paras), out, cache, servers.urls))
    match = summary(done)
    assert int(match["cached"]) == 0
    check_video(out, cache, paras, match)
    posted = [servers.prompts_posted(i) - before[i] for i in range(2)]
    assert all(n >= 1 for n in posted) and sum(posted) == len(paras), posted
    shares = [job_prompts(url, paras) for url in servers.urls]
    assert sorted(i for share in shares for i in share) == list(range(len(paras))), shares


def test_order_is_right_when_segments_finish_out_of_order(servers, tmp_path):
    # On the fake one instance is much slower; a real ComfyUI has no such knob, so there the
    # first segment is by far the longest. Either way later segments finish before an earlier one.
    servers.slow(0, 4.0)
    paras = paragraphs(f"Shuffle {servers.kind}", 5, long_first=servers.kind == "comfyui")
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    done = run_cli(cli_command(write_script(tmp_path, paras), out, cache, servers.urls))
    match = summary(done)
    finished = {}
    for url in servers.urls:
        finished.update(job_prompts(url, paras))
    assert sorted(finished) == list(range(len(paras)))
    order = sorted(finished, key=finished.get)
    assert order != sorted(order), f"segments finished in order {order}: the scenario did not happen"
    check_video(out, cache, paras, match)


def test_rerun_after_ctrl_c_reuses_the_finished_segments(servers, tmp_path):
    for i in range(2):
        servers.slow(i, 1.0)
    paras = paragraphs(f"Resume {servers.kind}", 5)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    command = cli_command(write_script(tmp_path, paras), out, cache, servers.urls)
    proc = start_cli(command)
    try:
        wait_for(lambda: finished_entries(cache) or proc.poll() is not None, 240, "a finished segment")
        assert proc.poll() is None, f"the CLI ended before Ctrl-C:\n{proc.communicate()}"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_cli(proc)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not out.exists() and not out.with_suffix(".srt").exists()
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
    kept = len(finished_entries(cache))
    assert 1 <= kept < len(paras)
    # every segment that finished on a server, even just before Ctrl-C, is in the cache
    finished = set()
    for url in servers.urls:
        finished |= set(job_prompts(url, paras))
    assert finished <= cached_segments(cache, paras), (finished, cached_segments(cache, paras))

    servers.fast()
    match = summary(run_cli(command))
    assert int(match["cached"]) >= kept
    check_video(out, cache, paras, match)


def test_killing_an_instance_midway_still_gives_the_whole_video(servers, tmp_path):
    # Slow segments, so the victim is surely in the middle of one when it is killed. The client
    # gives a silent server 60 s (ComfyClient's gone_after) before its segment goes elsewhere.
    for i in range(2):
        servers.slow(i, 1.5)
    paras = paragraphs(f"Failover {servers.kind}", 4, long_first=servers.kind == "comfyui")
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    victim = 1
    proc = start_cli(cli_command(write_script(tmp_path, paras), out, cache, servers.urls))
    try:
        wait_for(lambda: running_segment(servers.urls[victim], paras) is not None or proc.poll() is not None,
                 240, "the victim to start a segment")
        assert proc.poll() is None, f"the CLI ended early:\n{proc.communicate()}"
        finished_by_victim = job_prompts(servers.urls[victim], paras)
        cut_short = running_segment(servers.urls[victim], paras)
        servers.kill(victim)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        stop_cli(proc)
    match = summary(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    # the segment the victim was in the middle of was rendered again by the survivor, and
    # between them every segment was rendered
    survivor = job_prompts(servers.urls[1 - victim], paras)
    assert cut_short is not None and cut_short not in finished_by_victim and cut_short in survivor
    assert set(survivor) | set(finished_by_victim) == set(range(len(paras))), (finished_by_victim, survivor)
    check_video(out, cache, paras, match)


def test_in_process_rerun_after_ctrl_c_reuses_the_finished_segments(tmp_path):
    # Ctrl-C lands wherever the run is (a segment's stages, the peak-memory sampler, the move
    # into the cache): the exit is 130 and every finished segment is kept, wherever it lands.
    paras = paragraphs("Local", 3)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    command = cli_command(write_script(tmp_path, paras), out, cache, [])
    proc = start_cli(command)
    try:
        wait_for(lambda: finished_entries(cache) or proc.poll() is not None, 240, "a finished segment")
        assert proc.poll() is None, f"the CLI ended before Ctrl-C:\n{proc.communicate()}"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_cli(proc)
    assert proc.returncode == 130, stderr
    assert not out.exists()
    kept = len(finished_entries(cache))
    assert 1 <= kept < len(paras)

    match = summary(run_cli(command))
    assert int(match["cached"]) >= kept
    check_video(out, cache, paras, match)


# ---- hung, busy and never-ending servers (fakes in processes of their own) ----

class FakeProcess:
    """tests/fake_comfy.py run as a process (podium mode: the pack's nodes do the work), so it
    can be stopped for real with SIGSTOP. Each node waits steps x step_delay first, with a
    progress event after each step."""

    def __init__(self, root: Path, steps: int, step_delay: float):
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fake_comfy.py"), "--execute", "podium",
             "--root", str(root), "--steps", str(steps), "--step-delay", str(step_delay)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
            env={**cli_env(), "PYTHONPATH": os.pathsep.join([str(REPO / "custom_nodes"), str(REPO)])})
        seen, found = [], None
        for line in self.proc.stdout:  # anything printed before the address is passed over
            seen.append(line)
            found = re.search(r"fake ComfyUI \(podium\) at (http://\S+),", line)
            if found:
                break
        assert found, f"the fake did not start: {seen!r}"
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # never a full pipe
        self.url = found[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def fake_processes(tmp_path):
    started = []

    def start(steps: int, step_delay: float) -> FakeProcess:
        started.append(FakeProcess(tmp_path / f"fake{len(started)}", steps, step_delay))
        return started[-1]

    yield start
    for fake in started:
        fake.stop()


def heartbeat_env(silence: float, heartbeat: float) -> dict:
    return {**cli_env(), "PODIUM_SERVER_SILENCE_S": str(silence), "PODIUM_SERVER_HEARTBEAT_S": str(heartbeat)}


def test_a_stopped_instance_fails_over_after_the_silence_limit(fake_processes, tmp_path):
    """SIGSTOP on one server mid-segment (its port still takes connections, nothing answers):
    after the silence limit its segment goes to the other, and the video is whole."""
    servers = [fake_processes(10, 0.05), fake_processes(10, 0.05)]  # >= 2.5 s a segment
    paras = paragraphs("Stopped", 4)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    command = cli_command(write_script(tmp_path, paras), out, cache, [s.url for s in servers])
    victim, survivor = servers
    proc = subprocess.Popen(command, cwd=REPO, env=heartbeat_env(3.0, 0.5), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: running_segment(victim.url, paras) is not None or proc.poll() is not None,
                 240, "the victim to start a segment")
        assert proc.poll() is None, f"the CLI ended early:\n{proc.communicate()}"
        cut_short = running_segment(victim.url, paras)
        finished_by_victim = job_prompts(victim.url, paras)
        os.kill(victim.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        # the survivor takes the stopped one's segment once the silence limit has passed
        wait_for(lambda: cut_short in job_prompts(survivor.url, paras) or
                 running_segment(survivor.url, paras) == cut_short or proc.poll() is not None,
                 240, "the survivor to take over the stopped server's segment")
        moved_after = time.monotonic() - stopped_at
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        stop_cli(proc)
    match = summary(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert moved_after >= 3.0 - 0.2, f"given up before the silence limit: {moved_after:.1f} s"
    assert "has not answered for 3 s" in stderr and "goes to another instance" in stderr, stderr
    survived = job_prompts(survivor.url, paras)
    assert cut_short is not None and cut_short not in finished_by_victim and cut_short in survived
    assert set(survived) | set(finished_by_victim) == set(range(len(paras)))
    check_video(out, cache, paras, match)


def test_a_busy_instance_that_answers_is_not_failed_over(fake_processes, tmp_path):
    """Every node of the segment works silently (no websocket frame) for longer than the
    silence limit; the server answers /queue, so the segment is not given up or run twice."""
    busy = fake_processes(1, 3.0)  # each node: 3 s without a frame, then one progress event
    paras = paragraphs("Busy", 1)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    command = cli_command(write_script(tmp_path, paras), out, cache, [busy.url])
    done = subprocess.run(command, cwd=REPO, env=heartbeat_env(2.0, 0.25), capture_output=True,
                          text=True, timeout=400)
    match = summary(done)
    assert "does not answer" not in done.stderr and "failed" not in done.stderr, done.stderr
    assert len(history(busy.url)) == 1  # one prompt: never resubmitted
    check_video(out, cache, paras, match)


def test_a_segment_that_never_ends_moves_on_or_fails_with_a_message(servers, tmp_path):
    """A prompt that stays "running" forever: after --segment-timeout it is interrupted there
    and run on the other instance; with no other instance left the run fails in one line."""
    if servers.kind != "fake":
        pytest.skip("a real ComfyUI has no knob to run forever")
    servers.servers[0].steps, servers.servers[0].step_delay = 1, 100000.0  # never ends
    paras = paragraphs("Forever", 2)
    out, cache = tmp_path / "talk.mp4", tmp_path / "cache"
    script = write_script(tmp_path, paras)
    command = cli_command(script, out, cache, servers.urls) + ["--segment-timeout", "20"]  # a healthy segment takes a few s: room on a busy machine
    match = summary(run_cli(command))
    stuck = servers.servers[0]
    assert len(stuck.saw("POST", "/interrupt")) >= 1  # it was stopped there
    assert stuck.running is None or not stuck.pending
    assert sorted(job_prompts(servers.urls[1], paras)) == [0, 1]  # both rendered by the other
    check_video(out, cache, paras, match)

    # only the never-ending server: one clear line, exit 1, nothing written
    out2, cache2 = tmp_path / "alone.mp4", tmp_path / "cache2"
    paras2 = paragraphs("Forever alone", 1)
    command = cli_command(write_script(tmp_path, paras2), out2, cache2, servers.urls[:1]) + [
        "--segment-timeout", "3"]
    done = run_cli(command)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not finish within 3 s" in lines[0] and "--segment-timeout" in lines[0], lines
    assert not out2.exists()
