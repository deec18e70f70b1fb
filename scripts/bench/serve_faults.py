"""The --faults run of serve_load.py: `podium serve --broker` with workers, jobs submitted while a
worker is SIGKILLed, Redis restarted empty and the store made unwritable; every job must end
done or failed with a reason, none lost. Prints what happened, the outcome table and the
server's memory."""
from __future__ import annotations

import collections
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from serve_load import CLI, REPO, free_port

sys.path.insert(0, str(REPO / "tests"))
from test_queue_redis import start_redis  # noqa: E402 - the tests' redis-server, answering

TOKEN = "bench-token-long-enough-0123"
FINISHED = ("done", "failed", "cancelled")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_worker(name: str, broker: str, root: Path) -> subprocess.Popen:
    folder = root / name
    folder.mkdir()
    log = open(folder / "worker.log", "wb")
    return subprocess.Popen([*CLI, "worker", "--broker", broker, "--name", name, "--token", TOKEN,
                             "--cache-dir", str(root / "cache"), "--data-dir", str(folder / "data"),
                             "--heartbeat-timeout", "5", "--maintenance-chance", "1000000"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_faults(args) -> int:
    if shutil.which("redis-server") is None:
        print("--faults needs redis-server (Debian package redis-server)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="podium-serve-faults-"))
    (root / "redis").mkdir()
    redis_port, port = free_port(), free_port()
    broker, url = f"redis://127.0.0.1:{redis_port}/0", f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    procs: dict[str, subprocess.Popen] = {"redis": start_redis(root / "redis", redis_port)}
    log = open(root / "serve.log", "wb")
    procs["serve"] = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(root / "data"), "--broker", broker,
         "--token", TOKEN, "--reconcile-every", "2", "--stale-after", "20", "--store-timeout", "1"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    events: list[str] = []
    started = time.monotonic()

    def note(text: str) -> None:
        events.append(f"{time.monotonic() - started:7.1f} s  {text}")
        print(events[-1], flush=True)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/api/jobs?limit=1", headers=headers, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if procs["serve"].poll() is not None or time.monotonic() > deadline:
                print((root / "serve.log").read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.2)
        server = psutil.Process(procs["serve"].pid)
        for n in range(args.workers):
            procs[f"w{n + 1}"] = start_worker(f"w{n + 1}", broker, root)
        rss = [(0.0, server.memory_info().rss / 2**20)]
        started = time.monotonic()
        note(f"serve up, {args.workers} workers started; RSS {rss[0][1]:.1f} MB")

        ids: list[str | None] = [None] * args.jobs
        refusals = collections.Counter()

        def submit(number: int) -> None:
            time.sleep(max(0.0, started + number * args.submit_over / args.jobs - time.monotonic()))
            give_up = time.monotonic() + 300
            while time.monotonic() < give_up:
                try:
                    answer = requests.post(url + "/api/jobs", headers=headers, timeout=60, json={
                        "text": f"{WORDS[number % len(WORDS)]} {number}.", "preset": args.preset,
                        "options": {"size": args.size, "fps": args.fps}})
                except requests.RequestException as err:
                    refusals[type(err).__name__] += 1
                    time.sleep(1)
                    continue
                if answer.status_code == 201:
                    ids[number] = answer.json()["id"]
                    return
                refusals[f"{answer.status_code} {answer.json().get('detail', '')[:60]}"] += 1
                if answer.status_code != 503:
                    return
                time.sleep(float(answer.headers.get("Retry-After", 1)))

        pool = ThreadPoolExecutor(max_workers=16)
        futures = [pool.submit(submit, n) for n in range(args.jobs)]
        faults = threading.Thread(target=_faults, args=(args, procs, root, broker, redis_port, url, headers, note))
        faults.start()
        last_sample, ended, jobs = 0.0, 0, {}
        while True:
            now = time.monotonic() - started
            if now - last_sample >= 5:
                rss.append((now, server.memory_info().rss / 2**20))
                last_sample = now
            try:
                listed = requests.get(url + "/api/jobs", params={"limit": 1000}, headers=headers, timeout=30).json()
                jobs = {j["id"]: j for j in listed["jobs"]}
            except (requests.RequestException, ValueError):
                pass
            accepted = [i for i in ids if i]
            ended = sum(jobs.get(i, {}).get("state") in FINISHED for i in accepted)
            if all(f.done() for f in futures) and not faults.is_alive() and ended == len(accepted):
                break
            if now > args.timeout:
                note("timeout: stopped waiting")
                break
            time.sleep(1)
        pool.shutdown()
        faults.join()
        rss.append((time.monotonic() - started, server.memory_info().rss / 2**20))
        log.flush()
        requeued = sum(int(line.split("enqueued again ")[1].split()[0])
                       for line in (root / "serve.log").read_text(errors="replace").splitlines()
                       if "enqueued again " in line)
        note(f"the server enqueued again {requeued} job(s) Redis had lost")
        return _report(args, ids, jobs, refusals, rss, events, time.monotonic() - started)
    finally:
        for name, proc in reversed(list(procs.items())):
            stop(proc)
        log.close()
        if args.keep:
            print(f"folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _faults(args, procs, root: Path, broker: str, redis_port: int, url: str, headers: dict, note) -> None:
    """At a quarter, half and three quarters of the submission time: SIGKILL a worker that is
    rendering (a fresh one is started), restart Redis empty, lock the store's writes."""
    start, span = time.monotonic(), args.submit_over

    def at(fraction: float) -> None:
        time.sleep(max(0.0, start + fraction * span - time.monotonic()))

    at(0.25)
    victim = _rendering_worker(url, headers) or "w1"
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait()
    fresh = f"w{sum(name.startswith('w') for name in procs) + 1}"
    procs[fresh] = start_worker(fresh, broker, root)
    note(f"SIGKILL to worker {victim} (rendering); worker {fresh} started in its place")
    at(0.5)
    stop(procs["redis"])
    procs["redis"] = start_redis(root / "redis", redis_port)
    note("Redis restarted empty")
    at(0.75)
    holder = sqlite3.connect(root / "data" / "jobs.sqlite3", isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    note(f"store write-locked for {args.store_outage:g} s")
    time.sleep(args.store_outage)
    holder.execute("ROLLBACK")
    holder.close()
    note("store writable again")


def _rendering_worker(url: str, headers: dict) -> str | None:
    try:
        running = requests.get(url + "/api/jobs", params={"state": "running"}, headers=headers, timeout=10).json()
    except (requests.RequestException, ValueError):
        return None
    names = [j["worker"] for j in running["jobs"] if j.get("worker")]
    return names[0] if names else None


def _report(args, ids, jobs, refusals, rss, events, wall) -> int:
    accepted = [i for i in ids if i]
    states = collections.Counter(jobs[i]["state"] if i in jobs else "lost" for i in accepted)
    reasons = collections.Counter(jobs[i]["error"] for i in accepted if i in jobs and jobs[i]["state"] == "failed")
    unclear = sum(n for reason, n in reasons.items() if not reason or "\n" in reason)
    stuck = states["queued"] + states["running"]
    print(f"\npodium serve --broker with faults: {args.jobs} one-word {args.preset} jobs at {args.size}, "
          f"{args.fps} fps, submitted over {args.submit_over:g} s, {args.workers} workers, "
          f"{psutil.cpu_count()} CPUs, wall {wall:.0f} s")
    for event in events:
        print("  " + event)
    print(f"\n| {'submitted':>9} | {'accepted':>8} | {'done':>4} | {'failed, with a reason':>21} | "
          f"{'queued/running':>14} | {'lost':>4} | {'RSS start MB':>12} | {'RSS end MB':>10} | {'RSS max MB':>10} |")
    print(f"| {args.jobs:>9} | {len(accepted):>8} | {states['done']:>4} | {states['failed'] - unclear:>21} | "
          f"{stuck:>14} | {states['lost'] + args.jobs - len(accepted):>4} | {rss[0][1]:>12.1f} | "
          f"{rss[-1][1]:>10.1f} | {max(r for _, r in rss):>10.1f} |")
    if refusals:
        print("\nsubmissions refused and sent again: " + "; ".join(f"{n} x {why}" for why, n in refusals.most_common()))
    again = sum(jobs[i]["attempts"] > 1 for i in accepted if i in jobs)
    print(f"jobs claimed more than once (a killed worker's, or a duplicate message): {again}")
    for reason, n in reasons.most_common(5):
        print(f"failed ({n}): {reason}")
    print("server RSS MB over time: " + ", ".join(f"{t:.0f} s {r:.1f}" for t, r in rss[:: max(1, len(rss) // 12)]))
    ok = len(accepted) == args.jobs and not stuck and not states["lost"] and not unclear
    print("every job ended done or failed with a reason; none lost" if ok else "NOT every job ended well")
    return 0 if ok else 1


WORDS = ["River", "Lantern", "Orchard", "Compass", "Harbor", "Meadow", "Signal", "Garden", "Beacon", "Canyon",
         "Summit", "Island", "Forest", "Valley", "Bridge", "Castle", "Desert", "Glacier", "Prairie", "Canal"]
