"""`podium serve` meeting faults and hostile requests (issue 18): a store that refuses writes, a
full disk, cross-site and DNS-rebinding requests, start-up options that cannot work. A real
server on a loopback port, real HTTP, real renders."""
from __future__ import annotations

import contextlib
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import CLI, REPO, cli_env, podium_server, wait_for_job

SMALL = {"size": "160x96", "fps": 12}
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def _job(text: str, **options) -> dict:
    return {"mode": "direct", "text": text, "preset": "draft", "options": {**SMALL, **options}}


def _finished(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")


def _wait_for_log(server: dict, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in server["log"].read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server['log'].read_text()[-2000:]}"
        time.sleep(0.05)


def test_a_store_that_refuses_writes_stops_no_job_and_says_503(tmp_path):
    """Another program holds the database's write lock (as a full or read-only disk, every write
    fails): progress is not recorded, a POST is a one-line 503, the running job still ends done
    once the store takes writes again, and the queue goes on with the next job."""
    text = "\n\n".join(f"Part {n}, spoken while the store is locked." for n in range(3))
    with podium_server(tmp_path / "data", "--store-timeout", "0.2", tmpdir=tmp_path / "tmp") as server:
        url = server["url"] + "/api/jobs"
        first = requests.post(url, json=_job(text), timeout=30).json()["id"]
        wait_for_job(server, first, lambda j: j["state"] == "running" or _finished(j), every=0.05)
        holder = sqlite3.connect(tmp_path / "data" / "jobs.sqlite3", isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")  # the write lock: readers go on, writers fail
        try:
            _wait_for_log(server, "progress not recorded")
            refused = requests.post(url, json=_job("Not now."), timeout=30)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] and "\n" not in refused.json()["detail"], refused.text
            assert "database is locked" in refused.json()["detail"]
            assert str(tmp_path) not in refused.text
            assert requests.get(url, timeout=30).status_code == 200  # reading still works
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert wait_for_job(server, first, _finished)[-1]["state"] == "done"
        second = requests.post(url, json=_job("The next job. It runs too."), timeout=30)
        assert second.status_code == 201, second.text
        assert wait_for_job(server, second.json()["id"], _finished)[-1]["state"] == "done"
        assert requests.get(url, timeout=30).json()["counts"] == {
            "queued": 0, "running": 0, "done": 2, "failed": 0, "cancelled": 0}


def test_only_served_names_and_same_origin_forms_get_in(tmp_path):
    with podium_server(tmp_path / "data", "--allowed-host", "podium.test", tmpdir=tmp_path / "tmp") as server:
        url, port = server["url"], server["port"]
        jobs = url + "/api/jobs"

        def count() -> int:
            return sum(requests.get(jobs, timeout=10).json()["counts"].values())

        # DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1
        for path in ("/api/jobs", "/", "/metrics"):
            rebound = requests.get(url + path, headers={"Host": f"attacker.example:{port}"}, timeout=10)
            assert rebound.status_code == 421 and rebound.json()["field"] == "Host", rebound.text
            assert "--allowed-host" in rebound.json()["detail"]
        for host in (f"localhost:{port}", f"podium.test:{port}", f"[::1]:{port}", "127.0.0.1"):
            assert requests.get(jobs, headers={"Host": host}, timeout=10).status_code == 200, host

        # another site's form (no preflight), its fetch, its page behind no Origin
        form = {"text": "Queued by another site.", "preset": "draft"}
        evil = "http://attacker.example"
        for headers, kwargs in (({}, {"data": form}),
                                ({"Origin": evil}, {"data": form}),
                                ({"Origin": "null"}, {"data": form}),
                                ({"Origin": evil}, {"json": _job("From elsewhere.")}),
                                ({"Sec-Fetch-Site": "cross-site"}, {"json": _job("From elsewhere.")}),
                                ({"Origin": evil}, {"files": {"image": ("a.png", PNG_HEAD, "image/png")}, "data": form})):
            answer = requests.post(jobs, headers=headers, timeout=10, **kwargs)
            assert answer.status_code == 403, (headers, answer.text)
            assert answer.json()["field"] in ("Origin", "Sec-Fetch-Site") and "\n" not in answer.json()["detail"]
        assert requests.delete(f"{jobs}/{'0' * 32}", headers={"Origin": evil}, timeout=10).status_code == 403
        assert count() == 0, "a refused request queued a job"

        # the server's own page (same origin) and programs sending JSON are taken
        for headers, kwargs in (({"Origin": url}, {"data": form}),
                                ({"Sec-Fetch-Site": "same-origin"}, {"data": form}),
                                ({}, {"json": _job("From a program.")})):
            answer = requests.post(jobs, headers=headers, timeout=10, **kwargs)
            assert answer.status_code == 201, (headers, answer.text)
            assert requests.delete(f"{jobs}/{answer.json()['id']}", timeout=10).status_code in (202, 409)

        # an offset past SQLite's integers is a bad request naming it, not a 500
        for offset in ("99999999999999999999999", str(2**63)):
            answer = requests.get(jobs, params={"offset": offset}, timeout=10)
            assert answer.status_code == 422 and answer.json()["field"] == "offset", answer.text


def test_start_up_options_that_cannot_work_are_one_line(tmp_path):
    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "serve", "--data-dir", str(tmp_path / "d"), *args], cwd=REPO,
                              env=cli_env(tmp_path / "tmp"), capture_output=True, text=True, timeout=60)

    for value in ("nan", "inf", "-inf", "0"):
        refused = serve(f"--max-upload-mb={value}")
        assert refused.returncode == 2, refused.stderr
        assert "--max-upload-mb must be a number of megabytes above 0" in refused.stderr.splitlines()[-1]
        assert "Traceback" not in refused.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = serve("--port", str(port))
    assert taken.returncode == 2, (taken.returncode, taken.stderr)
    assert taken.stderr.count("\n") == 1, taken.stderr
    assert f"port {port}: another program listens there" in taken.stderr, taken.stderr


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "4m"):
    """A tmpfs of `size` at `folder` (root only; skipped elsewhere)."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small disk here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_an_upload_meeting_a_full_disk_is_507_and_leaves_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk, \
            podium_server(disk / "data", "--max-upload-mb", "20", tmpdir=tmp_path / "tmp") as server:
        filler = disk / "filler"
        with open(filler, "wb") as out:  # the disk full but for a few hundred KB
            with contextlib.suppress(OSError):
                while True:
                    out.write(bytes(256 << 10))
                    out.flush()
        filler.write_bytes(filler.read_bytes()[: -(768 << 10)])
        folders = sorted((disk / "data" / "jobs").iterdir())
        answer = requests.post(server["url"] + "/api/jobs", headers={"Origin": server["url"]}, timeout=60,
                               data={"text": "Hello.", "preset": "draft"},
                               files={"image": ("big.png", PNG_HEAD + bytes(3 << 20), "image/png")})
        assert answer.status_code == 507, answer.text
        assert answer.json()["field"] == "body" and "disk is full" in answer.json()["detail"]
        assert sorted((disk / "data" / "jobs").iterdir()) == folders, "the refused upload left files"
        filler.unlink()
        assert requests.get(server["url"] + "/api/jobs", timeout=10).json()["counts"]["queued"] == 0


def test_a_failed_job_does_not_show_where_the_server_keeps_its_data(tmp_path):
    """The CLI's error names the job's files by their full path; the client sees them relative
    to the job folder."""
    with podium_server(tmp_path / "data", tmpdir=tmp_path / "tmp") as server:
        answer = requests.post(server["url"] + "/api/jobs", headers={"Origin": server["url"]}, timeout=30,
                               data={"text": "A portrait that is not one.", "preset": "draft",
                                     "options": '{"size": "160x96", "fps": 12}'},
                               files={"image": ("me.png", PNG_HEAD + b"junk" * 16, "image/png")})
        assert answer.status_code == 201, answer.text
        job = wait_for_job(server, answer.json()["id"], _finished)[-1]
    assert job["state"] == "failed", job
    assert str(tmp_path) not in job["error"] and "/data/jobs/" not in job["error"], job["error"]
    assert "cannot read image <job folder>/inputs/image.png" in job["error"], job["error"]
