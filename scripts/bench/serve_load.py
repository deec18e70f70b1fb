#!/usr/bin/env python3
"""`podium serve` under load: N draft jobs submitted at once; all must finish, none lost, and
the server's memory must stay flat while it works through them.

Starts `podium serve` on a free loopback port with a fresh data folder, posts the jobs from
N threads at the same moment, polls until every job has ended, checks each video (both
streams, durations within one frame), and prints the wall time, per-job times and the
server's RSS (the server process alone; the renders are its children, one per running job)
over time. Each job has its own text, so no job is served from another's cache.

    .venv/bin/python scripts/bench/serve_load.py                     # 20 jobs, 1 worker, in-process
    .venv/bin/python scripts/bench/serve_load.py --jobs 20 --workers 2
    .venv/bin/python scripts/bench/serve_load.py --server http://gpu-box:8188 --preset fast --size 1280x720

With --faults (needs redis-server): `podium serve --broker` and `podium worker` processes, the
jobs submitted over --submit-over seconds while, in turn, a worker is SIGKILLed mid-job, Redis
is restarted empty, and the job store cannot be written for --store-outage seconds (another
process holds its write lock; the server's busy timeout is 1 s, so every write fails as on a
read-only or full disk). Every job must end done or failed with a reason: none lost, none left
queued or running. Submissions the server refuses (503 while Redis or the store is away) are
sent again, as a client would, honouring Retry-After.

    .venv/bin/python scripts/bench/serve_load.py --faults --jobs 200 --workers 2

With --users N: a server shared by N members (the first admin from --admin-token, the members and
their tokens made through the admin API), each submitting --jobs-per-user jobs with their own
token; every poll lists each member's jobs and fails the run if any member sees another's, and a
sample of cross reads must answer 404.

    .venv/bin/python scripts/bench/serve_load.py --users 3 --jobs-per-user 30
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from orchestrator.cli.main import main; sys.exit(main())"]
WORDS = ["river", "lantern", "orchard", "compass", "harbor", "meadow", "signal", "garden", "beacon",
         "canyon", "summit", "island", "forest", "valley", "bridge", "castle", "desert", "glacier",
         "prairie", "canal", "market", "temple", "tower", "village"]


def text_for(number: int) -> str:
    """A short two-segment narration of its own for job `number`."""
    word = WORDS[number % len(WORDS)]
    return (f"Job {number} is about the {word}. It is short on purpose.\n\n"
            f"The {word} closes job {number}.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ffprobe_streams(path: Path) -> dict[str, float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return {s["codec_type"]: float(s.get("duration", "nan")) for s in json.loads(out)["streams"]}


ADMIN_TOKEN = "serve-load-admin-token-0123456789"


def make_members(url: str, count: int) -> list[dict]:
    """`count` members made through the admin API; the Authorization header of each."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    headers = []
    for number in range(count):
        name = f"member{number}"
        requests.post(url + "/api/users", json={"name": name, "role": "member"}, headers=admin, timeout=30).raise_for_status()
        token = requests.post(f"{url}/api/users/{name}/tokens", headers=admin, timeout=30).json()["token"]
        headers.append({"Authorization": f"Bearer {token}"})
    return headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", action="store_true", help="the Redis run with faults (see above)")
    parser.add_argument("--submit-over", type=float, default=60.0, metavar="S",
                        help="--faults: seconds the submissions are spread over (default 60)")
    parser.add_argument("--store-outage", type=float, default=10.0, metavar="S",
                        help="--faults: seconds the store cannot be written (default 10)")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="podium serve --workers (default 1)")
    parser.add_argument("--preset", default="draft")
    parser.add_argument("--size", default="160x96")
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--server", action="append", default=[], help="ComfyUI server(s) to render on")
    parser.add_argument("--sample-every", type=float, default=1.0, metavar="S")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--users", type=int, default=0, help="members sharing the server (see above)")
    parser.add_argument("--jobs-per-user", type=int, default=30, metavar="N", help="with --users (default 30)")
    args = parser.parse_args()
    if args.users:
        args.jobs = args.users * args.jobs_per_user
    if args.faults:
        from serve_faults import run_faults  # scripts/bench/serve_faults.py

        return run_faults(args)

    data = Path(tempfile.mkdtemp(prefix="podium-serve-load-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*CLI, "serve", "--port", str(port), "--data-dir", str(data), "--workers", str(args.workers)]
    if args.users:  # every member may queue all of its jobs at once
        command += ["--admin-token", ADMIN_TOKEN, "--limit", "member.jobs_at_once=none"]
    for server in args.server:
        command += ["--server", server]
    log = open(data / "serve.log", "wb")
    proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    server = psutil.Process(proc.pid)
    samples: list[tuple[float, float, int, int]] = []  # (t, rss MB, jobs ended, renders running)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/openapi.json", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                print((data / "serve.log").read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.2)
        rss_idle = server.memory_info().rss / 2**20
        tokens = make_members(url, args.users) if args.users else [{}]
        owner_of: dict[str, int] = {}
        crossed: list[str] = []  # what a member saw of another's jobs

        ids: list[str | None] = [None] * args.jobs
        gate = threading.Barrier(args.jobs)

        def submit(number: int) -> None:
            gate.wait()
            answer = requests.post(url + "/api/jobs", timeout=60, headers=tokens[number % len(tokens)], json={
                "text": text_for(number), "preset": args.preset,
                "options": {"size": args.size, "fps": args.fps}})
            if answer.status_code == 201:
                ids[number] = answer.json()["id"]
                owner_of[ids[number]] = number % len(tokens)
            else:
                print(f"job {number}: HTTP {answer.status_code} {answer.text[:200]}", file=sys.stderr)

        started = time.monotonic()
        threads = [threading.Thread(target=submit, args=(n,)) for n in range(args.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submitted = time.monotonic() - started
        accepted = [i for i in ids if i]
        jobs: dict[str, dict] = {}
        next_sample = 0.0
        while True:
            now = time.monotonic() - started
            listed = []
            for member, headers in enumerate(tokens):
                theirs = requests.get(url + "/api/jobs", params={"limit": 1000}, headers=headers, timeout=30).json()["jobs"]
                crossed += [j["id"] for j in theirs if args.users and owner_of.get(j["id"]) != member]
                listed += theirs
            jobs = {j["id"]: j for j in listed if j["id"] in accepted}
            ended = sum(j["state"] in ("done", "failed", "cancelled") for j in jobs.values())
            if now >= next_sample:
                renders = len([c for c in server.children() if "generate" in " ".join(c.cmdline())])
                samples.append((now, server.memory_info().rss / 2**20, ended, renders))
                next_sample = now + args.sample_every
            if ended == len(accepted) or now > args.timeout:
                break
            time.sleep(0.25)
        wall = time.monotonic() - started
        samples.append((wall, server.memory_info().rss / 2**20, ended, 0))

        if args.users:  # reads across members: each of a sample must be 404
            for job_id in accepted[:: max(1, len(accepted) // 30)]:
                other = tokens[(owner_of[job_id] + 1) % len(tokens)]
                for path in ("", "/video"):
                    if requests.get(f"{url}/api/jobs/{job_id}{path}", headers=other, timeout=30).status_code != 404:
                        crossed.append(job_id + path)
        lost = [i for i in accepted if i not in jobs]
        done = [j for j in jobs.values() if j["state"] == "done"]
        bad_videos = []
        for job in done:
            video = data / "jobs" / job["id"] / "video.mp4"
            durations = ffprobe_streams(video) if video.is_file() else {}
            if not ({"video", "audio"} <= set(durations)
                    and abs(durations["video"] - durations["audio"]) <= 1 / args.fps + 1e-6):
                bad_videos.append((job["id"], durations))
        queued = sorted(j["started"] - j["created"] for j in done)
        render = sorted(j["finished"] - j["started"] for j in done)

        def pct(values, q):
            return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

        print(f"\npodium serve load: {args.jobs} {args.preset} jobs at {args.size}, {args.fps} fps, "
              f"--workers {args.workers}, {'servers: ' + ', '.join(args.server) if args.server else 'in-process'}, "
              f"{psutil.cpu_count()} CPUs" + (f"; {args.users} members x {args.jobs_per_user} jobs, "
                                              f"seen across members: {len(crossed)}" if args.users else ""))
        print(f"| {'submitted':>9} | {'accepted':>8} | {'done':>4} | {'failed':>6} | {'lost':>4} | {'bad video':>9} "
              f"| {'submit s':>8} | {'wall s':>7} | {'jobs/min':>8} | {'wait p50/p95 s':>14} | {'render p50/p95 s':>16} |")
        print(f"| {args.jobs:>9} | {len(accepted):>8} | {len(done):>4} | "
              f"{sum(j['state'] == 'failed' for j in jobs.values()):>6} | {len(lost):>4} | {len(bad_videos):>9} "
              f"| {submitted:>8.2f} | {wall:>7.1f} | {60 * len(done) / wall:>8.2f} "
              f"| {pct(queued, .5):>6.1f}/{pct(queued, .95):<7.1f} | {pct(render, .5):>7.1f}/{pct(render, .95):<8.1f} |")
        print(f"\nserver RSS over time (idle before submitting: {rss_idle:.1f} MB)")
        print(f"| {'t s':>6} | {'jobs ended':>10} | {'renders':>7} | {'RSS MB':>7} |")
        step = max(1, len(samples) // 20)
        for t, rss, ended, renders in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
            print(f"| {t:>6.1f} | {ended:>10} | {renders:>7} | {rss:>7.1f} |")
        rss_values = [s[1] for s in samples]
        half = len(rss_values) // 2
        print(f"\nRSS: min {min(rss_values):.1f} MB, max {max(rss_values):.1f} MB; mean of the first half "
              f"{sum(rss_values[:half]) / max(half, 1):.1f} MB, of the second half "
              f"{sum(rss_values[half:]) / max(len(rss_values) - half, 1):.1f} MB")
        for failed in [j for j in jobs.values() if j["state"] == "failed"][:3]:
            print(f"failed {failed['id']}: {failed['error']}", file=sys.stderr)
        ok = len(done) == args.jobs and not lost and not bad_videos and not crossed
        print("all finished, none lost" if ok else "NOT all jobs finished well")
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"data folder kept: {data}")


if __name__ == "__main__":
    sys.exit(main())
