"""`podium serve` as a user runs it: a real process on a loopback port, real HTTP, draft jobs
rendered by `podium generate` children; the MP4 checked with ffprobe, /metrics with
prometheus_client's own parser."""
from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import CLI, FFMPEG, REPO, cli_env, ffprobe, parse_srt, podium_server, streams, wait_for_job

TEXT = "Hello from the service. This is the first part.\n\nAnd here is a second part, short as well."
SMALL = {"size": "160x96", "fps": 12}
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def _job(text: str = TEXT, **fields) -> dict:
    return {"mode": "direct", "text": text, "preset": "draft", "options": dict(SMALL), **fields}


def _finished(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")


def _metrics(server: dict) -> dict:
    """{(sample name, frozenset(labels)): value} from /metrics, parsed by prometheus_client."""
    answer = requests.get(server["url"] + "/metrics", headers=server["headers"], timeout=10)
    assert answer.status_code == 200, answer.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fake_ollama import FakeOllama

    root = tmp_path_factory.mktemp("serve")
    with FakeOllama() as ollama, podium_server(root / "data", "--max-upload-mb", "0.2", "--ollama-host",
                                               ollama.url, tmpdir=root / "tmp") as server:
        server["root"], server["ollama"] = root, ollama
        yield server


def test_a_job_goes_from_submitted_to_an_mp4_with_progress(served, tmp_path):
    answer = requests.post(served["url"] + "/api/jobs", json=_job())
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    assert answer.headers["Location"] == f"/api/jobs/{job_id}"
    seen = wait_for_job(served, job_id, _finished, every=0.1)
    job = seen[-1]
    assert job["state"] == "done", job
    assert job["progress"] == 1.0 and job["error"] is None
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress), "progress went backwards"
    assert any(0 < p < 1 for p in progress), f"no progress between 0 and 1 was seen: {progress}"
    assert any(j["eta_s"] is not None and j["eta_s"] > 0 for j in seen if j["state"] == "running"), \
        "no ETA while running"
    assert [s["state"] for s in job["segments"]] == ["done", "done"]
    stages = {s["name"]: s for s in job["stages"]}
    assert stages["Voice"]["runs"] == 2 and stages["Voice"]["seconds"] > 0
    assert any(s["state"] == "running" and s["stage"] for j in seen for s in j["segments"]), \
        "no segment was seen running a stage"

    video = requests.get(served["url"] + f"/api/jobs/{job_id}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "job.mp4").write_bytes(video.content)
    info = ffprobe(tmp_path / "job.mp4")
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert (v["width"], v["height"]) == (160, 96)
    assert abs(v["duration"] - a["duration"]) <= 1 / SMALL["fps"] + 1e-6, (v["duration"], a["duration"])
    subtitles = requests.get(served["url"] + f"/api/jobs/{job_id}/subtitles")
    assert subtitles.status_code == 200
    (tmp_path / "job.srt").write_bytes(subtitles.content)
    cues = parse_srt(tmp_path / "job.srt")
    assert "Hello from the service." in " ".join(text for _, _, text in cues)
    assert cues[-1][1] <= v["duration"] + 1e-3

    listed = requests.get(served["url"] + "/api/jobs").json()
    assert job_id in [j["id"] for j in listed["jobs"]] and listed["counts"]["done"] >= 1

    metrics = _metrics(served)
    assert metrics[("podium_jobs", frozenset({("state", "done")}))] >= 1
    assert metrics[("podium_jobs_submitted_total", frozenset())] >= 1
    assert metrics[("podium_jobs_finished_total", frozenset({("state", "done")}))] >= 1
    assert metrics[("podium_stage_duration_seconds_count", frozenset({("stage", "Voice")}))] >= 2
    assert metrics[("podium_segments_total", frozenset({("how", "rendered")}))] >= 2
    assert metrics[("podium_queue_depth", frozenset())] == 0
    assert metrics[("podium_job_duration_seconds_count", frozenset())] >= 1

    # a finished job is deleted with its files
    folder = served["root"] / "data" / "jobs" / job_id
    assert (folder / "video.mp4").is_file()
    assert requests.delete(served["url"] + f"/api/jobs/{job_id}").status_code == 204
    assert not folder.exists()
    gone = requests.get(served["url"] + f"/api/jobs/{job_id}")
    assert gone.status_code == 404 and gone.json()["field"] == "id"


def test_the_captions_as_drawn_come_as_ass_beside_the_srt_and_a_job_without_is_a_clear_404(served, tmp_path):
    import pysubs2

    text = "Every word lights up. Then the next one."
    karaoke = _job(text, options={**SMALL, "captions": "karaoke"})
    answer = requests.post(served["url"] + "/api/jobs", json=karaoke)
    assert answer.status_code == 201, answer.text
    job = wait_for_job(served, answer.json()["id"], _finished)[-1]
    assert job["state"] == "done", job
    assert job["links"]["captions"] == f"/api/jobs/{job['id']}/subtitles?format=ass"
    ass = requests.get(served["url"] + job["links"]["captions"])
    assert ass.status_code == 200 and ass.headers["content-type"].startswith("text/x-ssa")
    assert f'filename="podium-{job["id"]}.ass"' in ass.headers["content-disposition"]
    captions = pysubs2.SSAFile.from_string(ass.text)
    assert captions.info["PlayResX"] == "160"  # laid out at the video's size
    # karaoke: one event a word, each showing its sentence's line whole; the words as narrated
    highlighted = [e.text.split("{\\c")[1].split("}", 1)[1].split("{")[0] for e in captions.events]
    assert highlighted == ["Every", "word", "lights", "up", "Then", "the", "next", "one"]
    srt = requests.get(served["url"] + f"/api/jobs/{job['id']}/subtitles?format=srt")
    assert srt.status_code == 200 and srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.content == requests.get(served["url"] + job["links"]["subtitles"]).content  # srt: the default
    wrong = requests.get(served["url"] + f"/api/jobs/{job['id']}/subtitles?format=vtt")
    assert wrong.status_code == 422 and wrong.json()["field"] == "format"
    assert wrong.json()["detail"] == "format: must be one of srt, ass, not 'vtt'"

    bare = _job("No words shown.", options={**SMALL, "subtitles": "none"})
    answer = requests.post(served["url"] + "/api/jobs", json=bare)
    bare = wait_for_job(served, answer.json()["id"], _finished)[-1]
    assert bare["state"] == "done" and {"captions", "subtitles"}.isdisjoint(bare["links"]), bare
    for query, said in (("?format=ass", "captions (.ass): it was rendered with subtitles: none"),
                        ("", "subtitles (subtitles: none)")):
        none = requests.get(served["url"] + f"/api/jobs/{bare['id']}/subtitles{query}")
        assert none.status_code == 404 and none.json()["detail"] == f"id: the job has no {said}", none.text


def test_a_guided_job_has_its_script_written_by_the_llm(served):
    answer = requests.post(served["url"] + "/api/jobs", json={
        "mode": "guided", "topic": "How plants make food", "preset": "draft",
        "options": {**SMALL, "duration": 8, "tone": "friendly"}})
    assert answer.status_code == 201, answer.text
    job = wait_for_job(served, answer.json()["id"], _finished)[-1]
    assert job["state"] == "done", job
    assert job["title"] == "How plants make food"
    chat = served["ollama"].chats[-1]
    assert "friendly" in json.dumps(chat) and chat["format"]["type"] == "object"
    folder = served["root"] / "data" / "jobs" / job["id"]
    script = json.loads((folder / "video.json").read_text())
    assert len(job["segments"]) == len(script["segments"]) >= 1
    info = ffprobe(folder / "video.mp4")
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}


def test_a_job_that_fails_says_why(served):
    answer = requests.post(served["url"] + "/api/jobs", json=_job("Too short.", options={**SMALL, "crossfade": 4}))
    assert answer.status_code == 201, answer.text
    job = wait_for_job(served, answer.json()["id"], _finished)[-1]
    assert job["state"] == "failed" and "crossfade" in job["error"] and "\n" not in job["error"], job
    assert "video" not in job["links"]
    video = requests.get(served["url"] + f"/api/jobs/{job['id']}/video")
    assert video.status_code == 409 and video.json()["field"] == "id"


def test_cancel_a_running_job(served):
    text = "\n\n".join(f"Part {n} of a longer talk, which takes a while to speak aloud." for n in range(8))
    job_id = requests.post(served["url"] + "/api/jobs", json=_job(text)).json()["id"]
    wait_for_job(served, job_id, lambda j: j["state"] == "running" and any(
        s["state"] in ("running", "done") for s in j["segments"]) or _finished(j))
    answer = requests.delete(served["url"] + f"/api/jobs/{job_id}")
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "cancelled"
    # the child stops (SIGTERM): then the job can be deleted; it stays cancelled, no video
    deadline, folder = time.monotonic() + 60, served["root"] / "data" / "jobs" / job_id
    while (code := requests.delete(served["url"] + f"/api/jobs/{job_id}").status_code) == 409:
        assert time.monotonic() < deadline, "the cancelled render did not stop"
        time.sleep(0.2)
    assert code == 204
    assert not folder.exists()
    leftovers = [p for p in (served["root"] / "tmp").iterdir() if p.name.startswith("podium-")]
    assert leftovers == [], f"the cancelled render left {leftovers}"


def test_bad_requests_name_the_field(served):
    url = served["url"] + "/api/jobs"
    jobs_folder = served["root"] / "data" / "jobs"
    folders_before = sorted(jobs_folder.iterdir())

    def refused(status: int, field: str, **kwargs):
        # as the server's own page posts (a form post without a token must come from it)
        answer = requests.post(url, headers={"Origin": served["url"], **kwargs.pop("headers", {})}, **kwargs)
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body["field"] == field and body["detail"].startswith(field), body
        return body

    refused(422, "text", json={"preset": "draft"})
    refused(422, "text", json={"text": "   ", "preset": "draft"})
    refused(422, "topic", json={"mode": "guided", "preset": "draft"})
    assert "draft" in refused(422, "preset", json=_job(preset="ultra"))["detail"]
    refused(422, "mode", json=_job(mode="sideways"))
    refused(422, "options.fps", json=_job(options={"fps": 500}))
    refused(422, "options.size", json=_job(options={"size": "99x99"}))
    # nothing in a request names a file: paths are refused, not followed
    refused(422, "options.out", json=_job(options={"out": "/tmp/elsewhere.mp4"}))
    refused(422, "options.cache_dir", json=_job(options={"cache_dir": "../../cache"}))
    refused(422, "voice", json=_job(voice="../../voices/evil.onnx"))
    refused(422, "voice", json=_job(voice="/etc/passwd"))
    refused(422, "workflow", json=_job(workflow="/etc/passwd"))
    refused(400, "body", data=b"{not json", headers={"Content-Type": "application/json"})
    refused(415, "body", data=b"text=hi", headers={"Content-Type": "text/plain"})
    fields = {"text": TEXT, "preset": "draft"}
    refused(415, "image", data=fields, files={"image": ("me.png", b"GIF89a not a png", "image/png")})
    refused(415, "voice_ref", data=fields, files={"voice_ref": ("me.wav", PNG_HEAD + b"x" * 100, "audio/wav")})
    refused(413, "image", data=fields, files={"image": ("big.png", PNG_HEAD + bytes(300_000), "image/png")})
    refused(422, "options", data={**fields, "options": "{nope"})
    refused(422, "script", data={**fields, "script": "talk.md"})

    assert sorted(jobs_folder.iterdir()) == folders_before, "a refused request left files"
    for bad, status in (("xyz", 422), ("../../etc/passwd", 404), ("0" * 32, 404)):
        answer = requests.get(f"{url}/{bad}")
        assert answer.status_code == status, (bad, answer.text)
        if status != 404 or "/" not in bad:
            assert answer.json()["field"] == "id"
    assert requests.delete(f"{url}/xyz").json()["field"] == "id"
    assert requests.get(url, params={"state": "sleeping"}).json()["field"] == "state"
    assert requests.get(url, params={"limit": "many"}).json()["field"] == "limit"


def test_a_text_too_long_to_render_or_a_control_character_is_refused_at_submission(served):
    # issue 18.9: such a text was taken (201), then failed with "pass --yes", which no client can
    # send; 18.10: a NUL in an option reached the child's command line
    url = served["url"] + "/api/jobs"
    jobs_folder = served["root"] / "data" / "jobs"
    folders_before = sorted(jobs_folder.iterdir())
    sentence = "This sentence is part of a very long narration indeed."  # 10 words
    for text, says in ((" ".join([sentence] * 480), "about 32 min"),  # one segment, 4,800 words
                       ("\n\n".join(["Hi."] * 600), "600 segments")):  # one-line paragraphs
        answer = requests.post(url, json=_job(text))
        assert answer.status_code == 422, answer.text[:300]
        body = answer.json()
        assert body["field"] == "text" and says in body["detail"], body
        assert "30 min or 500 segments" in body["detail"] and "--yes" not in body["detail"], body
    for field in ("voice_ref_text", "presenter_prompt", "audience", "tone"):
        answer = requests.post(url, json=_job(options={**SMALL, field: "a\x00b"}))
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == f"options.{field}", answer.text
        assert "control characters (U+0000" in answer.json()["detail"]
    answer = requests.post(url, json={"mode": "guided", "topic": "vaccines\x1b[2J", "preset": "draft"})
    assert answer.status_code == 422 and answer.json()["field"] == "topic", answer.text
    assert sorted(jobs_folder.iterdir()) == folders_before, "a refused request left files"


def test_uploads_stay_in_the_job_folder_under_server_names(served, tmp_path):
    data = served["root"] / "data"
    before = {p for p in served["root"].rglob("*")}
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (64, 64), (90, 120, 200)).save(png, "PNG")
    wav = subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=d=0.3", "-f", "wav", "-"],
                         capture_output=True, check=True).stdout
    answer = requests.post(served["url"] + "/api/jobs", data={
        "text": TEXT, "preset": "draft", "options": '{"size": "160x96", "fps": 12}'}, files={
        "image": ("../../../outside.png", png.getvalue(), "image/png"),
        "voice_ref": (str(tmp_path / "abs.wav"), wav, "audio/wav")}, headers={"Origin": served["url"]})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    requests.delete(served["url"] + f"/api/jobs/{job['id']}")  # not needed rendered
    assert job["uploads"] == ["image", "voice_ref"]
    inputs = data / "jobs" / job["id"] / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["image.png", "script.txt", "voice_ref.wav"]
    assert (inputs / "image.png").read_bytes() == png.getvalue()
    created = {p for p in served["root"].rglob("*")} - before
    outside = [p for p in created if data / "jobs" / job["id"] not in (p, *p.parents)
               and p.parent != served["root"] / "tmp" and data / "cache" not in p.parents]
    assert [p for p in outside if p.name not in ("jobs.sqlite3-wal", "jobs.sqlite3-shm")] == []
    assert not (tmp_path / "abs.wav").exists() and not (served["root"].parent / "outside.png").exists()


def test_a_job_survives_a_server_killed_mid_job_and_resumes_from_the_cache(tmp_path):
    data = tmp_path / "data"
    text = "\n\n".join(f"Segment {n}, spoken and cached on its own." for n in range(3))
    with podium_server(data, tmpdir=tmp_path / "tmp") as server:
        job_id = requests.post(server["url"] + "/api/jobs", json=_job(text)).json()["id"]
        wait_for_job(server, job_id, lambda j: sum(s["state"] == "done" for s in j["segments"]) >= 1
                     or _finished(j), every=0.05)
        renders = [p for p in psutil.Process(server["proc"].pid).children() if job_id in " ".join(p.cmdline())]
        assert len(renders) == 1, renders
        server["proc"].kill()  # no clean-up: as a crash or a power cut
        server["proc"].wait()
    # the render child is told (SIGTERM) when its parent dies, and stops on its own
    gone, alive = psutil.wait_procs(renders, timeout=30)
    assert not alive, alive
    first_attempt = (data / "jobs" / job_id / "log.txt").read_text()
    assert "stopped by SIGTERM: nothing was written" in first_attempt, first_attempt
    with podium_server(data, tmpdir=tmp_path / "tmp") as server:
        job = wait_for_job(server, job_id, _finished)[-1]
    assert job["state"] == "done", job
    assert job["attempts"] == 2
    assert 1 <= job["reused"] < 3, job  # what was finished came from the cache
    info = ffprobe(data / "jobs" / job_id / "video.mp4")
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / SMALL["fps"] + 1e-6
    log = (data / "jobs" / job_id / "log.txt").read_text()
    assert log.count("--- attempt") == 2


def test_off_loopback_a_token_is_required(tmp_path):
    refused = subprocess.run([*CLI, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")],
                             cwd=REPO, env={**cli_env(tmp_path / "tmp"), "PODIUM_TOKEN": ""},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "--token" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert not (tmp_path / "d").exists()
    (tmp_path / "newer").mkdir()
    sqlite3.connect(tmp_path / "newer" / "jobs.sqlite3").execute("PRAGMA user_version = 99").connection.close()
    newer = subprocess.run([*CLI, "serve", "--data-dir", str(tmp_path / "newer")], cwd=REPO,
                           env=cli_env(tmp_path / "tmp"), capture_output=True, text=True, timeout=60)
    assert newer.returncode == 2 and "newer Podium" in newer.stderr and newer.stderr.count("\n") == 1, newer.stderr

    short = subprocess.run([*CLI, "serve", "--host", "0.0.0.0", "--token", " " * 3 + "x", "--data-dir",
                            str(tmp_path / "d")], cwd=REPO, env=cli_env(tmp_path / "tmp"),
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and short.stderr.count("\n") == 1, short.stderr
    assert "shorter than 16" in short.stderr and re.search(r"e\.g\. [\w-]{32}", short.stderr), short.stderr
    assert not (tmp_path / "d").exists()

    token = "s3cret-and-long-enough"  # 16 characters at least off loopback
    with podium_server(tmp_path / "data", host="0.0.0.0", token=token, tmpdir=tmp_path / "tmp") as server:
        url = server["url"]
        for path in ("/api/jobs", "/metrics", "/api/jobs/" + "0" * 32, "/api/jobs/" + "0" * 32 + "/video"):
            answer = requests.get(url + path)
            assert answer.status_code == 401 and answer.json()["field"] == "Authorization", path
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert requests.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert requests.post(url + "/api/jobs", json=_job()).status_code == 401
        assert requests.delete(url + "/api/jobs/" + "0" * 32, cookies={"podium_token": token}).status_code == 401
        assert requests.get(url + "/api/jobs", headers=server["headers"]).status_code == 200
        assert requests.get(url + "/api/jobs", cookies={"podium_token": token}).status_code == 200
        assert requests.get(url + "/").status_code == 200  # the page itself holds no data
        assert _metrics(server)[("podium_queue_depth", frozenset())] == 0


def test_on_comfyui_servers_a_vanished_one_is_a_failover_and_gpu_memory_is_reported(tmp_path):
    from fake_comfy import FakeComfy

    slow, steady = (FakeComfy(tmp_path / name, execute="podium").start() for name in ("slow", "steady"))
    slow.steps, slow.step_delay = 20, 0.2  # the segment it takes is still running when it dies
    try:
        with podium_server(tmp_path / "data", "--server", slow.url, "--server", steady.url,
                           tmpdir=tmp_path / "tmp") as server:
            text = "\n\n".join(f"Segment {n}, rendered on a ComfyUI server." for n in range(3))
            job_id = requests.post(server["url"] + "/api/jobs", json=_job(text)).json()["id"]
            wait_for_job(server, job_id, lambda j: any(s["state"] == "running" for s in j["segments"]))
            time.sleep(0.5)
            slow.kill()
            job = wait_for_job(server, job_id, _finished)[-1]
            metrics = _metrics(server)
    finally:
        slow.stop()
        steady.stop()
    assert job["state"] == "done" and job["failovers"] == 1, job
    assert metrics[("podium_failovers_total", frozenset({("server", slow.url)}))] == 1
    assert metrics[("podium_comfyui_up", frozenset({("server", slow.url)}))] == 0
    assert metrics[("podium_comfyui_up", frozenset({("server", steady.url)}))] == 1
    device = json.loads((REPO / "tests" / "data" / "comfyui-0.3.64" / "system_stats.json").read_text())["devices"][0]
    labels = frozenset({("server", steady.url), ("device", device["name"])})
    assert metrics[("podium_comfyui_vram_total_bytes", labels)] == device["vram_total"]
    assert metrics[("podium_comfyui_vram_free_bytes", labels)] == device["vram_free"]
    info = ffprobe(tmp_path / "data" / "jobs" / job_id / "video.mp4")
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / SMALL["fps"] + 1e-6


def test_no_request_value_becomes_an_option_or_a_path_of_its_own(tmp_path):
    from orchestrator.cli.main import build_parser, render_request
    from orchestrator.service.runner import Runner
    from orchestrator.service.store import Job

    sly = "--out=/etc/passwd --force"
    request = {"mode": "guided", "topic": sly, "preset": "draft", "voice": "piper-en_US-joe-medium",
               "options": {"tone": "-x", "audience": sly, "presenter_prompt": "--image /etc/shadow"},
               "inputs": {"image": "../../image.png"}}
    job = Job(id="a" * 32, state="queued", request=request, created=0, updated=0)
    folder = tmp_path / "jobs" / job.id
    folder.mkdir(parents=True)
    command = Runner(tmp_path, servers=["http://gpu:8188"]).command(job)
    # no request value is on the command line at all: the request goes as a JSON file
    assert not any(value in " ".join(command) for value in (sly, "-x", "/etc/shadow", "image.png"))
    parsed = build_parser().parse_args(command)
    args = render_request(parsed)
    assert Path(parsed.request) == folder / "request.json"
    assert (args.topic, args.audience, args.tone, args.presenter_prompt) == (sly, sly, "-x", "--image /etc/shadow")
    assert Path(args.out) == folder / "video.mp4" and Path(args.image) == folder / "inputs" / "image.png"
    assert args.cache_dir == tmp_path / "cache" and parsed.server == ["http://gpu:8188"]


def test_openapi_names_the_paths(served):
    schema = requests.get(served["url"] + "/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/video", "/api/jobs/{id}/subtitles",
            "/metrics"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/jobs/{id}"]) == {"get", "delete"}
    request = schema["components"]["schemas"]["JobRequest"]
    assert "draft" in request["properties"]["preset"]["enum"]
    job = schema["components"]["schemas"]["JobView"]
    assert {"id", "state", "progress", "error", "eta_s", "segments", "stages"} <= set(job["properties"])
    assert set(job["properties"]["state"]["enum"]) == {"queued", "running", "done", "failed", "cancelled"}


def test_the_grafana_dashboard_plots_metrics_the_server_exposes(served):
    import re

    dashboard = json.loads((REPO / "scripts" / "grafana" / "podium.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", name) for e in exprs for name in re.findall(r"podium_[a-z_]+", e)}
    text = requests.get(served["url"] + "/metrics").text
    families = list(text_string_to_metric_families(text))  # labelled ones with no samples yet too
    exposed = {f.name for f in families} | {f.name + "_total" for f in families if f.type == "counter"}
    assert used and used <= exposed, used - exposed
    assert {"podium_jobs", "podium_queue_depth", "podium_stage_duration_seconds", "podium_failovers_total",
            "podium_comfyui_vram_free_bytes"} <= used
