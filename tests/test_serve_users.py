"""`podium serve` shared by a team, through the real HTTP server on loopback: two members, a
viewer, a worker and an admin. Each sees only their own jobs on every route (another's answers
404, as a job that does not exist), a revoked token is refused on the next request, quotas answer
429 with Retry-After, and the page (Chromium) signs in and shows only the signed-in user's jobs.
Jobs go to a real redis-server with no worker running, so they stay queued unless the test's
worker token claims one."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import FFMPEG, free_port, podium_server, run_cli, stop_process
from test_queue_redis import start_redis

ADMIN_TOKEN = "first-admin-token-0123456789"
NAMES = {"ana": "ana_k7", "bo": "bo_k7", "vic": "vic_k7", "cy": "cy_k7", "wkr": "wkr_k7", "wkr2": "wkr2_k7"}
ROLES = {"ana": "member", "bo": "member", "vic": "viewer", "cy": "member", "wkr": "worker", "wkr2": "worker"}
JOB = {"mode": "direct", "text": "Hello team. This is a short one.", "preset": "draft",
       "options": {"size": "160x96", "fps": 12}}


def _one_line(answer: requests.Response) -> str:
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail, detail
    return detail


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    redis = start_redis(root / "redis", port := free_port())
    try:
        with podium_server(root / "data", "--broker", f"redis://127.0.0.1:{port}/0", "--admin-token", ADMIN_TOKEN,
                           "--limit", "member.jobs_at_once=3", "--limit", "member.upload_mb_per_day=0.05",
                           "--limit", "worker.requests_per_minute=20", tmpdir=root / "tmp") as server:
            url = server["url"]
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            headers = {"admin": admin}
            for key, name in NAMES.items():
                added = requests.post(url + "/api/users", json={"name": name, "role": ROLES[key]}, headers=admin)
                assert added.status_code == 201, added.text
                token = requests.post(f"{url}/api/users/{name}/tokens", headers=admin).json()["token"]
                headers[key] = {"Authorization": f"Bearer {token}"}
            yield {**server, "root": root, "data": root / "data", "as": headers,
                   "broker": f"redis://127.0.0.1:{port}/0"}
    finally:
        stop_process(redis)


def _submit(team, who: str, **files) -> str:
    if files:
        answer = requests.post(team["url"] + "/api/jobs", headers=team["as"][who], files=files,
                               data={"text": JOB["text"], "preset": "draft", "options": json.dumps(JOB["options"])})
    else:
        answer = requests.post(team["url"] + "/api/jobs", headers=team["as"][who], json=JOB)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _mp4(path: Path) -> Path:
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=160x96:r=10:d=1", "-f", "lavfi",
                    "-i", "sine=d=1", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


def test_each_user_sees_only_their_own_jobs_on_every_route(team, portrait_png, tmp_path):
    url, who = team["url"], team["as"]
    ana_job = _submit(team, "ana")
    bo_job = _submit(team, "bo", image=("me.png", portrait_png.read_bytes(), "image/png"))

    def listed(key):
        answer = requests.get(url + "/api/jobs", headers=who[key])
        assert answer.status_code == 200, answer.text
        return {j["id"] for j in answer.json()["jobs"]}, answer.json()["counts"]

    assert listed("ana") == ({ana_job}, {"queued": 1, "running": 0, "done": 0, "failed": 0, "cancelled": 0})
    assert listed("bo")[0] == {bo_job}
    assert listed("vic")[0] == set()
    assert {ana_job, bo_job} <= listed("admin")[0]

    # another's job is answered as one that does not exist: same status, same words
    nobody = "0" * 32
    for path in ("", "/video", "/subtitles"):
        theirs = requests.get(f"{url}/api/jobs/{bo_job}{path}", headers=who["ana"])
        none = requests.get(f"{url}/api/jobs/{nobody}{path}", headers=who["ana"])
        assert theirs.status_code == none.status_code == 404, (path, theirs.text)
        assert _one_line(theirs).replace(bo_job, "ID") == _one_line(none).replace(nobody, "ID")
    assert requests.delete(f"{url}/api/jobs/{bo_job}", headers=who["ana"]).status_code == 404
    assert requests.put(f"{url}/api/jobs/{bo_job}/shares/{NAMES['ana']}", headers=who["ana"]).status_code == 404
    assert requests.get(f"{url}/api/jobs/{bo_job}", headers=who["bo"]).json()["state"] == "queued"  # untouched

    # members and viewers cannot act as workers (inputs are the uploads), workers cannot list or submit
    for key in ("ana", "bo", "vic"):
        claim = requests.post(f"{url}/api/jobs/{bo_job}/claim", json={"worker": "x"}, headers=who[key])
        assert claim.status_code == 403 and claim.json()["field"] == "role", claim.text
        assert requests.get(f"{url}/api/jobs/{bo_job}/inputs/image.png", headers=who[key]).status_code == 403
    for method, path in (("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", f"/api/jobs/{bo_job}"),
                         ("DELETE", f"/api/jobs/{bo_job}"), ("GET", "/metrics"), ("GET", "/api/users")):
        answer = requests.request(method, url + path, headers=who["wkr"], json=JOB)
        assert answer.status_code == 403, (method, path, answer.text)

    # the viewer: nothing until shared, then read-only
    assert requests.get(f"{url}/api/jobs/{bo_job}", headers=who["vic"]).status_code == 404
    refused = requests.post(url + "/api/jobs", headers=who["vic"], json=JOB)
    assert refused.status_code == 403 and "viewer" in _one_line(refused)
    assert requests.put(f"{url}/api/jobs/{bo_job}/shares/{NAMES['vic']}", headers=who["bo"]).status_code == 204
    assert listed("vic")[0] == {bo_job}
    assert requests.delete(f"{url}/api/jobs/{bo_job}", headers=who["vic"]).status_code == 403
    assert requests.get(f"{url}/api/jobs/{ana_job}", headers=who["vic"]).status_code == 404

    # the worker token renders bo's job: claim, read its upload, upload the video, finish
    worker = who["wkr"]
    claim = requests.post(f"{url}/api/jobs/{bo_job}/claim", json={"worker": "w1"}, headers=worker)
    assert claim.status_code == 200 and claim.json()["inputs"] == ["image.png", "script.txt"], claim.text
    assert requests.get(f"{url}/api/jobs/{bo_job}/inputs/image.png", headers=worker).content == portrait_png.read_bytes()
    with open(_mp4(tmp_path / "v.mp4"), "rb") as video:
        put = requests.put(f"{url}/api/jobs/{bo_job}/outputs/video", params={"attempt": 1, "worker": "w1"},
                           data=video, headers=worker)
    assert put.status_code == 200, put.text
    done = requests.post(f"{url}/api/jobs/{bo_job}/finish", json={"worker": "w1", "attempt": 1, "state": "done"},
                         headers=worker)
    assert done.status_code == 200, done.text
    assert requests.get(f"{url}/api/jobs/{bo_job}/video", headers=who["bo"]).content[4:8] == b"ftyp"
    assert requests.get(f"{url}/api/jobs/{bo_job}/video", headers=who["vic"]).status_code == 200  # shared
    assert requests.get(f"{url}/api/jobs/{bo_job}/video", headers=who["ana"]).status_code == 404

    # /metrics (admins only) carries no user's name in any label
    assert requests.get(url + "/metrics", headers=who["ana"]).status_code == 403
    metrics = requests.get(url + "/metrics", headers=who["admin"])
    assert metrics.status_code == 200 and "podium_jobs" in metrics.text
    for name in NAMES.values():
        assert name not in metrics.text, name

    # the audit trail: who did what; admins only; append-only; exported as JSON lines
    assert requests.get(url + "/api/audit", headers=who["ana"]).status_code == 403
    rows = requests.get(url + "/api/audit", headers=who["admin"]).json()["audit"]
    assert {"actor": NAMES["ana"], "action": "job.create", "target": ana_job} in \
        [{k: r[k] for k in ("actor", "action", "target")} for r in rows]
    assert requests.delete(f"{url}/api/jobs/{ana_job}", headers=who["ana"]).status_code == 202  # cancelled
    code, out, err = run_cli("serve", "audit", "--json", "--data-dir", team["data"], tmpdir=tmp_path / "cli")
    exported = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and (NAMES["ana"], "job.cancel", ana_job) in [(r["actor"], r["action"], r["target"])
                                                                    for r in exported], (out, err)
    with sqlite3.connect(team["data"] / "users.sqlite3") as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")


def test_a_revoked_token_is_refused_on_the_next_request(team, tmp_path):
    url = team["url"]
    code, token, err = run_cli("serve", "tokens", "create", NAMES["ana"], "--data-dir", team["data"],
                               tmpdir=tmp_path / "cli")
    token = token.strip()
    assert code == 0 and token.startswith("pod_") and "shown this once" in err, (token, err)
    assert token not in (team["data"] / "users.sqlite3").read_bytes().decode("latin-1")  # only its hash
    mine = {"Authorization": f"Bearer {token}"}
    assert requests.get(url + "/api/me", headers=mine).json()["name"] == NAMES["ana"]
    page = requests.Session()
    assert page.post(url + "/api/session", json={"token": token}).status_code == 200
    assert page.get(url + "/api/jobs").status_code == 200

    code, out, err = run_cli("serve", "tokens", "revoke", token[:17], "--data-dir", team["data"], tmpdir=tmp_path / "cli")
    assert code == 0 and "revoked 1" in out, (out, err)
    refused = requests.get(url + "/api/jobs", headers=mine)
    assert refused.status_code == 401 and "unknown or revoked" in _one_line(refused)
    assert page.get(url + "/api/jobs").status_code == 401  # its page session went with it
    assert requests.get(url + "/api/jobs", headers=team["as"]["ana"]).status_code == 200  # her other token


def test_quotas_answer_429_with_retry_after(team, portrait_png):
    url, cy = team["url"], team["as"]["cy"]
    for _ in range(3):
        _submit(team, "cy")
    over = requests.post(url + "/api/jobs", headers=cy, json=JOB)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0, over.text
    assert "at once" in _one_line(over)
    assert len(requests.get(url + "/api/jobs", headers=cy).json()["jobs"]) == 3  # nothing half-made

    # uploads: 0.05 MB a day for members; bo's portrait used some, a big one passes the rest
    big = requests.post(url + "/api/jobs", headers=team["as"]["bo"], data={"text": JOB["text"]},
                        files={"image": ("big.png", portrait_png.read_bytes() + b"\0" * 60_000, "image/png")})
    assert big.status_code == 429 and big.json()["field"] == "body" and int(big.headers["Retry-After"]) > 0, big.text

    # requests a minute (workers: 20 in this server)
    answers = [requests.get(url + "/api/me", headers=team["as"]["wkr2"]) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    assert answers[20].status_code == 429 and 0 < int(answers[20].headers["Retry-After"]) <= 60


def test_bad_credentials_and_names_each_get_one_clear_line(team, tmp_path):
    url, data = team["url"], team["data"]
    unknown = requests.get(url + "/api/jobs", headers={"Authorization": "Bearer pod_0123456789ab_" + "x" * 32})
    assert unknown.status_code == 401 and "unknown or revoked" in _one_line(unknown)
    in_url = requests.get(url + "/api/jobs", params={"token": ADMIN_TOKEN})
    assert in_url.status_code == 400 and in_url.json()["field"] == "token" and "logs" in _one_line(in_url)

    code, _, err = run_cli("serve", "users", "add", "eve\x1b[31m", "--data-dir", data, tmpdir=tmp_path / "cli")
    assert code == 2 and "control characters" in err and err.count("\n") == 1, err
    code, _, err = run_cli("serve", "users", "remove", "admin", "--data-dir", data, tmpdir=tmp_path / "cli")
    assert code == 2 and "last admin" in err and err.count("\n") == 1, err
    last = requests.delete(url + "/api/users/admin", headers=team["as"]["admin"])
    assert last.status_code == 409 and "last admin" in _one_line(last)
    bad_role = requests.post(url + "/api/users", json={"name": "x", "role": "owner"}, headers=team["as"]["admin"])
    assert bad_role.status_code == 422 and "unknown role" in _one_line(bad_role)

    # an expired sign-in: a clear 401, and the cookie cleared
    page = requests.Session()
    signed = page.post(url + "/api/session", json={"token": ADMIN_TOKEN})
    assert signed.status_code == 200
    cookie = next(c for c in page.cookies if c.name == "podium_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and "samesite=strict" in signed.headers["set-cookie"].lower()
    with sqlite3.connect(data / "users.sqlite3") as db:
        db.execute("UPDATE sessions SET expires = ?", (time.time() - 1,))
    expired = page.get(url + "/api/jobs")
    assert expired.status_code == 401 and "expired" in _one_line(expired)
    assert "podium_session=" in expired.headers["set-cookie"] and "max-age=0" in expired.headers["set-cookie"].lower()
    wrong = requests.post(url + "/api/session", json={"token": "not-a-token-of-anyone"})
    assert wrong.status_code == 401 and "unknown or revoked" in _one_line(wrong)

    # a member's token does not make a worker
    code, _, err = run_cli("worker", "--broker", team["broker"], "--api", url, "--token",
                           team["as"]["ana"]["Authorization"][7:], tmpdir=tmp_path / "worker", timeout=60)
    assert code == 2 and "needs a worker token" in err and err.count("\n") == 1, err


def test_on_loopback_with_nothing_configured_it_is_the_local_admin(tmp_path):
    with podium_server(tmp_path / "data", tmpdir=tmp_path / "tmp") as server:
        me = requests.get(server["url"] + "/api/me").json()
        assert (me["name"], me["role"], me["implicit"]) == ("local", "admin", True)
        code, out, err = run_cli("serve", "users", "add", "solo", "--role", "admin", "--data-dir",
                                 tmp_path / "data", tmpdir=tmp_path / "cli")
        assert code == 0, err
        code, out, err = run_cli("serve", "users", "list", "--data-dir", tmp_path / "data", tmpdir=tmp_path / "cli")
        assert code == 0 and out.split()[:2] == ["solo", "admin"], (out, err)
        # a user exists now: the server asks who you are from the next request on
        assert requests.get(server["url"] + "/api/jobs").status_code == 401


def test_failed_sign_ins_from_one_address_are_limited(tmp_path):
    """Ten wrong tokens a minute from an address; the eleventh try, right or wrong, is 429 with
    Retry-After (the token not even checked); a Bearer token on the API is not held up."""
    token = "the-servers-own-token-0123456789"
    with podium_server(tmp_path / "data", token=token, tmpdir=tmp_path / "tmp") as server:
        url = server["url"] + "/api/session"
        for i in range(10):
            wrong = requests.post(url, json={"token": f"guess-{i}"}, timeout=30)
            assert wrong.status_code == 401 and "unknown or revoked" in _one_line(wrong), (i, wrong.text)
        for guess in ("guess-10", token):
            held = requests.post(url, json={"token": guess}, timeout=30)
            assert held.status_code == 429 and held.json()["field"] == "token", held.text
            assert "failed sign-ins from this address" in _one_line(held)
            assert 1 <= int(held.headers["Retry-After"]) <= 60
        assert requests.get(server["url"] + "/api/me", headers=server["headers"], timeout=30).status_code == 200


def test_the_sign_in_limiter_forgets_old_failures_and_stays_small(monkeypatch):
    from orchestrator.service import quotas

    now = [1000.0]
    monkeypatch.setattr(quotas.time, "monotonic", lambda: now[0])
    limiter = quotas.FailureLimiter(most=3, window_s=60.0, addresses=50)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
    with pytest.raises(quotas.OverLimit) as held:
        limiter.check("10.0.0.1")
    assert held.value.status == 429 and held.value.retry_after == 60
    now[0] += 30
    with pytest.raises(quotas.OverLimit) as held:
        limiter.check("10.0.0.1")
    assert held.value.retry_after == 30
    limiter.check("10.0.0.2")  # another address is not held
    now[0] += 31
    limiter.check("10.0.0.1")  # a minute on: free again, and forgotten
    assert len(limiter) == 0
    for n in range(10_000):  # many addresses (a spray): memory stays bounded, the latest kept
        limiter.failed(f"10.1.{n // 256}.{n % 256}")
        assert len(limiter) <= 50
    for _ in range(2):
        limiter.failed("10.1.39.15")  # n = 9999: its third failure
    with pytest.raises(quotas.OverLimit):
        limiter.check("10.1.39.15")


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_signs_in_and_shows_only_that_users_jobs(team):
    playwright = pytest.importorskip("playwright.sync_api")
    from test_serve_page import LAUNCH_ARGS

    url, who = team["url"], team["as"]
    mine, theirs = _submit(team, "ana"), _submit(team, "bo")
    ana_token = who["ana"]["Authorization"][7:]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            problems = []
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.goto(url + "/")
            page.locator("#sign-in").wait_for(state="visible")
            page.fill("#token", "pod_0123456789ab_" + "x" * 32)
            page.click("#sign-in-button")
            playwright.expect(page.locator("#sign-in-note")).to_contain_text("unknown or revoked")

            page.fill("#token", ana_token)
            page.click("#sign-in-button")
            playwright.expect(page.locator("#who-name")).to_have_text(NAMES["ana"])
            page.locator(f"#jobs tr[data-id='{mine}']").wait_for()
            shown = set(page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.id)"))
            hers = {j["id"] for j in requests.get(url + "/api/jobs", headers=who["ana"]).json()["jobs"]}
            assert mine in shown and theirs not in shown and shown <= hers, (shown, hers)
            assert page.locator("#admin").is_hidden()
            # the session is an HttpOnly, SameSite=Strict cookie: the page's scripts never see it
            (cookie,) = [c for c in context.cookies() if c["name"] == "podium_session"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert "podium_session" not in page.evaluate("document.cookie")
            assert ana_token not in page.evaluate("JSON.stringify(localStorage)")

            page.click("#sign-out")
            page.locator("#sign-in").wait_for(state="visible")
            assert page.eval_on_selector_all("#jobs tbody tr", "rows => rows.length") == 0
            page.reload()
            page.locator("#sign-in").wait_for(state="visible")

            page.fill("#token", ADMIN_TOKEN)
            page.click("#sign-in-button")
            page.locator("#admin").wait_for(state="visible")
            page.locator(f"#users tr[data-name='{NAMES['bo']}']").wait_for()
            assert "member" in page.inner_text(f"#users tr[data-name='{NAMES['bo']}']")
            playwright.expect(page.locator("#audit tbody")).to_contain_text("job.create")
            page.locator(f"#jobs tr[data-id='{theirs}']").wait_for()  # admins see everyone's
            assert not problems, problems
        finally:
            browser.close()


def test_a_job_database_of_before_users_keeps_its_jobs_as_the_admins(tmp_path):
    from orchestrator.service.store import JobStore

    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:  # schema 1, as the server before users wrote it
        db.executescript("""CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, progress REAL NOT NULL
            DEFAULT 0, detail TEXT NOT NULL DEFAULT '{}', eta_s REAL, error TEXT, created REAL NOT NULL,
            updated REAL NOT NULL, started REAL, finished REAL, attempts INTEGER NOT NULL DEFAULT 0,
            request TEXT NOT NULL, outputs TEXT NOT NULL DEFAULT '{}');
            INSERT INTO jobs (id, state, created, updated, request) VALUES ('a' || hex(zeroblob(15)), 'done', 1, 1, '{}');
            PRAGMA user_version = 1;""")
    store = JobStore(path)
    try:
        (old,) = store.list()
        assert old.owner == 0 and store.get(old.id, seen_by=None) is not None
        assert store.get(old.id, seen_by=7) is None and store.list(seen_by=7) == []  # not a member's
        mine = store.create({}, owner=7)
        assert [j.id for j in store.list(seen_by=7)] == [mine.id] and store.counts(seen_by=7)["queued"] == 1
        assert not store.delete(old.id, seen_by=7) and store.get(old.id) is not None
    finally:
        store.close()


@pytest.mark.parametrize("which", ["jobs", "users"])
def test_both_databases_refuse_a_newer_or_foreign_file_in_one_line(tmp_path, which):
    from orchestrator.service.store import JobStore, StoreError
    from orchestrator.service.users import UserError, UserStore

    opener, error = (JobStore, StoreError) if which == "jobs" else (UserStore, UserError)
    newer = tmp_path / f"{which}.sqlite3"
    sqlite3.connect(newer).execute("PRAGMA user_version = 99").connection.close()
    with pytest.raises(error, match=r"newer Podium .*schema 99, this one knows \d+\): upgrade") as got:
        opener(newer)
    assert "\n" not in str(got.value)
    foreign = tmp_path / "notes.sqlite3"
    foreign.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(error, match="is not a usable .* database .*: move it away") as got:
        opener(foreign)
    assert "\n" not in str(got.value) and foreign.read_bytes().startswith(b"these are my notes")
    store = opener(tmp_path / "fresh.sqlite3")  # a new file gets the schema and this version
    store.close()
    with sqlite3.connect(tmp_path / "fresh.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
