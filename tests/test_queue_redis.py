"""Scale-out: `podium serve --broker` with a real redis-server and two `podium worker` processes;
the one rendering is killed (SIGKILL) mid-job, the other finishes the job from the segment cache.
Then, on the same broker: a cancel stops the worker's render, and a worker stopped with SIGTERM
mid-job gives its job back to the queue for the next worker."""
from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import CLI, REPO, cli_env, ffprobe, free_port, parse_srt, podium_server, run_cli, \
    stop_process, streams, wait_for_job

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (Debian package redis-server; scripts/setup.sh installs it)")

SEGMENTS = 4
TEXT = "\n\n".join(f"Part {n} of the talk." for n in range(1, SEGMENTS + 1))
OPTIONS = {"size": "160x90", "fps": 10}
TOKEN = "s3cret-token"  # the workers authenticate as any client does
HEARTBEAT_S = 3  # how soon a dead worker's job goes to the other (Dramatiq's default is 60 s)


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    """redis-server on loopback `port`, nothing persisted (a restart starts it empty), answering."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")])
    client, deadline = redis.Redis(port=port), time.monotonic() + 20
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                pytest.fail(f"redis-server did not start:\n{(folder / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.1)


@contextlib.contextmanager
def redis_server(folder: Path):
    """redis-server on a free loopback port, nothing persisted, in `folder`; yields its URL."""
    proc = start_redis(folder, port := free_port())
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def start_worker(name: str, broker: str, cache: Path, tmp: Path) -> tuple[subprocess.Popen, Path]:
    """`podium worker` with short heartbeat and maintenance on every broker call; waits until
    it takes jobs. Returns (process, log)."""
    folder = tmp / name
    folder.mkdir(parents=True)
    log_path = folder / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*CLI, "worker", "--broker", broker, "--name", name, "--cache-dir", str(cache),
             "--data-dir", str(folder / "data"), "--heartbeat-timeout", str(HEARTBEAT_S),
             "--maintenance-chance", "1000000", "--token", TOKEN],
            cwd=REPO, env=cli_env(folder / "tmp"), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while "taking jobs" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker {name} did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, log_path


def test_a_worker_killed_mid_job_has_its_job_finished_by_the_other(tmp_path):
    cache = tmp_path / "cache"  # the workers' shared segment cache (one machine)
    with redis_server(tmp_path / "redis") as broker, \
            podium_server(tmp_path / "data", "--broker", broker, token=TOKEN, tmpdir=tmp_path / "serve-tmp") as server:
        api = requests.Session()
        api.headers.update(server["headers"])
        # a worker with the wrong token does not start
        code, _, err = run_cli("worker", "--broker", broker, "--api", server["url"], "--token", "wrong",
                               tmpdir=tmp_path / "wrong-tmp", timeout=60)
        assert code == 2 and "refused the token" in err, (code, err)
        procs, logs = {}, {}
        try:
            for name in ("w1", "w2"):
                procs[name], logs[name] = start_worker(name, broker, cache, tmp_path)
            answer = api.post(f"{server['url']}/api/jobs", json={"text": TEXT, "preset": "draft",
                                                                        "options": OPTIONS}, timeout=30)
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["id"]

            def mid_job(job):  # some segments finished, some not: the render is under way
                states = [s["state"] for s in job["segments"]]
                assert job["state"] in ("queued", "running"), job
                return job["state"] == "running" and "done" in states and \
                    any(s in ("pending", "running") for s in states)

            seen = wait_for_job(server, job_id, mid_job, timeout=120, every=0.1)
            victim = seen[-1]["worker"]
            assert victim in procs, seen[-1]
            survivor = "w2" if victim == "w1" else "w1"
            renders = psutil.Process(procs[victim].pid).children(recursive=True)
            assert renders, "the worker renders in a `podium generate` child"
            procs[victim].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            procs[victim].wait(10)
            done_before = sum(s["state"] == "done" for s in seen[-1]["segments"])

            wait_for_job(server, job_id, lambda j: j["attempts"] == 2 or j["state"] != "running", timeout=120)
            print(f"SIGKILL to the job claimed by {survivor}: {time.monotonic() - killed:.1f} s "
                  f"(heartbeat timeout {HEARTBEAT_S} s)")
            final = wait_for_job(server, job_id, lambda j: j["state"] in ("done", "failed", "cancelled"),
                                 timeout=180)[-1]
            assert final["state"] == "done", (final, logs[survivor].read_text()[-3000:])
            assert final["worker"] == survivor and final["attempts"] == 2, final
            assert final["reused"] >= done_before, final  # resumed from the cache, not redone
            entries = [p for p in cache.iterdir() if not p.name.startswith(".")]  # one per segment
            # the killed worker's render died with it (no orphan writing on)
            gone, alive = psutil.wait_procs(renders, timeout=30)
            assert not alive, [p.cmdline() for p in alive]

            video = tmp_path / "served.mp4"
            video.write_bytes(api.get(f"{server['url']}{final['links']['video']}", timeout=30).content)
            subtitles = tmp_path / "served.srt"
            subtitles.write_bytes(api.get(f"{server['url']}{final['links']['subtitles']}", timeout=30).content)
            # the old attempt can no longer report: only the retry's progress and files count
            stale = api.post(f"{server['url']}/api/jobs/{job_id}/progress", timeout=10,
                                  json={"worker": victim, "attempt": 1, "progress": 0.5})
            assert stale.status_code == 409, stale.text
            anyone = requests.post(f"{server['url']}/api/jobs/{job_id}/claim", json={"worker": "x"}, timeout=10)
            assert anyone.status_code == 401, anyone.text  # the worker calls need the token too
            # the workers' events reach the server's /metrics
            metrics = {(s.name, frozenset(s.labels.items())): s.value for family in
                       text_string_to_metric_families(api.get(f"{server['url']}/metrics", timeout=10).text)
                       for s in family.samples}
            assert metrics[("podium_segments_total", frozenset({("how", "cached")}))] == final["reused"]
            assert metrics[("podium_segments_total", frozenset({("how", "rendered")}))] >= SEGMENTS - final["reused"]
            assert metrics[("podium_stage_duration_seconds_count", frozenset({("stage", "Voice")}))] >= \
                SEGMENTS - final["reused"]
            assert metrics[("podium_jobs_finished_total", frozenset({("state", "done")}))] == 1

            # a job cancelled on the server stops the worker's render
            answer = api.post(f"{server['url']}/api/jobs", timeout=30, json={
                "text": "A second talk.\n\nIts end.", "preset": "draft", "options": OPTIONS})
            second = answer.json()["id"]
            wait_for_job(server, second, lambda j: j["state"] == "running" and j["segments"], timeout=120)
            renders = psutil.Process(procs[survivor].pid).children(recursive=True)
            assert renders
            cancel = api.delete(f"{server['url']}/api/jobs/{second}", timeout=10)
            assert cancel.status_code == 202 and cancel.json()["state"] == "cancelled", cancel.text
            gone, alive = psutil.wait_procs(renders, timeout=60)
            assert not alive, [p.cmdline() for p in alive]
            assert api.get(f"{server['url']}/api/jobs/{second}", timeout=10).json()["state"] == "cancelled"

            # a worker stopped (SIGTERM) mid-job gives the job back; a worker started later does it
            answer = api.post(f"{server['url']}/api/jobs", timeout=30, json={
                "text": "A third talk.\n\nIts end.", "preset": "draft", "options": OPTIONS})
            third = answer.json()["id"]
            wait_for_job(server, third, lambda j: j["state"] == "running" and j["segments"], timeout=120)
            procs[survivor].terminate()
            assert procs[survivor].wait(60) == 143, logs[survivor].read_text()[-2000:]  # a clean stop
            assert api.get(f"{server['url']}/api/jobs/{third}", timeout=10).json()["state"] == "queued"
            procs["w3"], logs["w3"] = start_worker("w3", broker, cache, tmp_path)
            last = wait_for_job(server, third, lambda j: j["state"] in ("done", "failed"), timeout=180)[-1]
            assert last["state"] == "done" and last["worker"] == "w3", (last, logs["w3"].read_text()[-2000:])
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    stop_process(proc)

    # One render's length: the segments' own frames, each once (the cache holds one of each).
    assert len(entries) == SEGMENTS, entries
    frames = sum(json.loads((entry / "info.json").read_text())["frames"] for entry in entries)
    served = ffprobe(video)
    frame = 1 / OPTIONS["fps"]
    (v,), (a,) = streams(served, "video"), streams(served, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert int(v["nb_read_frames"]) == frames
    assert abs(float(served["format"]["duration"]) - frames * frame) <= frame
    assert abs(float(v["duration"]) - float(a["duration"])) <= frame
    assert len(parse_srt(subtitles)) == sum(len(parse_srt(e / "clip.srt")) for e in entries)


def _held_job_ids(broker: str) -> set[str]:
    """The job ids of the messages Redis holds for workers (waiting, delayed, or being worked on)."""
    import redis
    from dramatiq import Message

    client = redis.Redis.from_url(broker)
    return {Message.decode(data).args[0] for queue in ("podium", "podium.DQ")
            for data in client.hvals(f"podium:{queue}.msgs")}


def test_jobs_redis_lost_are_enqueued_again_and_a_post_it_refused_leaves_nothing(tmp_path):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(tmp_path / "redis", port)
    worker = None
    try:
        with podium_server(tmp_path / "data", "--broker", broker, "--reconcile-every", "0.5", token=TOKEN,
                           tmpdir=tmp_path / "serve-tmp") as server:
            api = requests.Session()
            api.headers.update(server["headers"])
            jobs = server["url"] + "/api/jobs"
            first = api.post(jobs, json={"text": "Kept by the store.", "preset": "draft", "options": OPTIONS},
                             timeout=30).json()["id"]
            assert first in _held_job_ids(broker)

            stop_process(redis_proc)  # Redis goes away, and comes back empty
            folders = sorted((tmp_path / "data" / "jobs").iterdir())
            refused = api.post(jobs, json={"text": "Sent while Redis is down.", "preset": "draft",
                                           "options": OPTIONS}, timeout=30)
            assert refused.status_code == 503, refused.text
            assert "broker" in refused.json()["detail"] and "\n" not in refused.json()["detail"]
            assert api.get(jobs, timeout=10).json()["counts"]["queued"] == 1, "the refused job stayed queued"
            assert sorted((tmp_path / "data" / "jobs").iterdir()) == folders, "the refused job left files"

            redis_proc = start_redis(tmp_path / "redis", port)
            deadline = time.monotonic() + 60
            while first not in _held_job_ids(broker):
                assert time.monotonic() < deadline, "the job Redis lost was not enqueued again"
                time.sleep(0.1)
            worker, log = start_worker("w1", broker, tmp_path / "cache", tmp_path)
            final = wait_for_job(server, first, lambda j: j["state"] in ("done", "failed"), timeout=180)[-1]
            assert final["state"] == "done", (final, log.read_text()[-2000:])
            assert final["attempts"] == 1, final  # one message: enqueued again once, not twice
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(redis_proc)


def test_the_worker_api_checks_what_a_worker_sends(tmp_path):
    from conftest import FFMPEG

    def mp4(name: str, *inputs: str) -> bytes:
        path = tmp_path / name
        subprocess.run([FFMPEG, "-v", "error", *inputs, "-t", "0.5", "-pix_fmt", "yuv420p", "-shortest",
                        str(path)], check=True)
        return path.read_bytes()

    good = mp4("good.mp4", "-f", "lavfi", "-i", "testsrc=s=160x90:r=10", "-f", "lavfi", "-i", "sine=d=1")
    silent = mp4("silent.mp4", "-f", "lavfi", "-i", "testsrc=s=160x90:r=10")
    with redis_server(tmp_path / "redis") as broker, \
            podium_server(tmp_path / "data", "--broker", broker, "--max-output-mb", "0.2", token=TOKEN,
                          tmpdir=tmp_path / "serve-tmp") as server:
        api = requests.Session()
        api.headers.update(server["headers"])
        jobs = server["url"] + "/api/jobs"
        job_id = api.post(jobs, json={"text": "Checked.", "preset": "draft", "options": OPTIONS}, timeout=30).json()["id"]
        claim = api.post(f"{jobs}/{job_id}/claim", json={"worker": "fake"}, timeout=10)
        assert claim.status_code == 200, claim.text
        who = {"worker": "fake", "attempt": claim.json()["job"]["attempts"]}

        # a detail the job view cannot show is refused; the API keeps answering
        odd = api.post(f"{jobs}/{job_id}/progress", timeout=10, json={**who, "progress": 0.5, "detail": {
            "segments": [{"index": 0, "state": "exploded", "stage": None, "progress": 0.5}]}})
        assert odd.status_code == 422 and odd.json()["field"].startswith("detail.segments"), odd.text
        assert api.get(jobs, timeout=10).status_code == 200
        assert api.get(f"{jobs}/{job_id}", timeout=10).status_code == 200
        fine = api.post(f"{jobs}/{job_id}/progress", timeout=10, json={**who, "progress": 0.5, "detail": {
            "segments": [{"index": 0, "state": "running", "stage": "Voice", "progress": 0.5}],
            "stages": [{"name": "Voice", "seconds": 0.1, "runs": 1}], "failovers": 0}})
        assert fine.status_code == 200, fine.text
        assert api.get(f"{jobs}/{job_id}", timeout=10).json()["segments"][0]["stage"] == "Voice"

        # stage names a worker makes up share one series past a bound
        events = [{"event": "stage_end", "stage": f"made-up {n}", "seconds": 0.1} for n in range(300)]
        assert api.post(f"{jobs}/{job_id}/progress", timeout=10, json={**who, "events": events}).status_code == 200
        stages = {s.labels["stage"] for family in text_string_to_metric_families(
            api.get(server["url"] + "/metrics", timeout=10).text)
            if family.name == "podium_stage_duration_seconds" for s in family.samples}
        assert "other" in stages and len(stages - {"other"}) <= 32, sorted(stages)

        # outputs: too big, not an MP4, an MP4 without sound: refused, nothing kept
        put = f"{jobs}/{job_id}/outputs/video"
        for body, status in ((bytes(300_000), 413), (b"\x00" * 5000, 422), (silent, 422)):
            answer = api.put(put, params=who, data=body, timeout=30)
            assert answer.status_code == status, answer.text
            assert "\n" not in answer.json()["detail"] and str(tmp_path) not in answer.text
        assert not (tmp_path / "data" / "jobs" / job_id / "video.mp4").exists()
        assert api.put(put, params=who, data=good, timeout=30).status_code == 200
        finish = api.post(f"{jobs}/{job_id}/finish", json={**who, "state": "done", "result": {"reused": 0}}, timeout=10)
        assert finish.status_code == 200 and finish.json()["state"] == "done", finish.text
        assert api.get(f"{jobs}/{job_id}/video", timeout=10).content == good
