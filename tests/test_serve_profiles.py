"""Profiles over the service (issue 23): `podium serve` as a real process on loopback, profiles
made over HTTP by the code `podium profile create` runs (a real face detector on a real photo,
real ffmpeg, speech recognition by a tiny random-weight Whisper built here, in a child process),
a CPU draft job with a profile whose MP4 shows the profile's portrait and names it in its
metadata, every bad input one 4xx naming its field with nothing half-written, and per-user
profiles on a server with users (two tokens)."""
from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
import requests

from conftest import FFMPEG, draw_portrait, ffprobe, podium_server, streams, wait_for_job
from test_profiles import CONSENT, RATE, leftovers, photo, speechlike, wav

SMALL = {"size": "160x96", "fps": 12}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-files")
    return {"face": photo(root / "me.jpg"), "two": photo(root / "two.jpg", faces=2),
            "drawn": draw_portrait(root / "drawn.png"), "voice": wav(root / "me.wav", speechlike(6)),
            "short": wav(root / "short.wav", speechlike(1)),
            "silence": wav(root / "silence.wav", np.zeros(8 * RATE, np.float32))}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server without users (loopback: the local admin) whose speech recognition is a tiny Whisper."""
    from tiny_whisper import build

    root = tmp_path_factory.mktemp("serve-profiles")
    build(root / "models" / "captions" / "whisper-tiny")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PODIUM_MODELS_DIR", str(root / "models"))
        with podium_server(root / "data", tmpdir=root / "tmp") as server:
            server["store"] = root / "data" / "profiles" / "user-0"
            yield server


def create(server, name, *images, voice=None, consent=CONSENT, headers=None, **fields):
    upload = [("image", (p.name, p.read_bytes(), "application/octet-stream")) for p in images]
    if voice is not None:
        upload.append(("voice", (voice.name, voice.read_bytes(), "audio/wav")))
    data = {"name": name, **({"consent": consent} if consent is not None else {}), **fields}
    headers = {**(headers or server["headers"]), "Origin": server["url"]}  # a form post: from its page
    return requests.post(server["url"] + "/api/profiles", data=data, files=upload, headers=headers, timeout=120)


def refused(answer: requests.Response, status: int, field: str, said: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field and said in body["detail"] and "\n" not in body["detail"], body
    return body["detail"]


def test_create_show_correct_and_list_over_http(served, files):
    """Two portraits and a sample without its text: the transcript is written by speech
    recognition, shown for correction, corrected; each file's sha256 is the stored file's."""
    answer = create(served, "ana", files["face"], files["face"], voice=files["voice"])
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == "/api/profiles/ana"
    made = answer.json()
    assert made["images"] == 2 and made["voice"]["transcript"]
    assert made["voice"]["transcript_source"] == "written by whisper-tiny-words: check it"
    assert 5 <= made["voice"]["seconds"] <= 6.5
    consent = made["consent"]
    assert (consent["text"], consent["who"], consent["account"]) == (CONSENT, "Ana Lima", "local")
    folder = served["store"] / "ana"
    for rel, digest in made["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    portrait = requests.get(served["url"] + made["links"]["portrait"])
    assert portrait.status_code == 200 and portrait.content == (folder / "images/01.png").read_bytes()

    fixed = requests.put(served["url"] + "/api/profiles/ana/voice-text", json={"text": "Hello, this is my voice."})
    assert fixed.status_code == 200, fixed.text
    shown = requests.get(served["url"] + "/api/profiles/ana").json()
    assert shown["voice"]["transcript"] == "Hello, this is my voice."
    assert shown["voice"]["transcript_source"] == "corrected by the user"
    assert (folder / "voice/transcript.txt").read_text().strip() == "Hello, this is my voice."
    listed = requests.get(served["url"] + "/api/profiles").json()["profiles"]
    assert [(p["name"], p["images"], p["consent_date"]) for p in listed] == [("ana", 2, consent["date"])]
    refused(requests.put(served["url"] + "/api/profiles/ana/voice-text", json={"text": " "}), 422, "text",
            "give the transcript")
    refused(requests.get(served["url"] + "/api/profiles/nobody"), 404, "name", "no profile named nobody")
    assert leftovers(served["store"]) == []
    schema = requests.get(served["url"] + "/openapi.json").json()
    assert {"/api/profiles", "/api/profiles/{name}", "/api/profiles/{name}/voice-text"} <= set(schema["paths"])
    assert "profile" in schema["components"]["schemas"]["JobRequest"]["properties"]
    import psutil  # the server made it (faces, speech recognition in a child) and stays torch-free
    assert not [m.path for m in psutil.Process(served["proc"].pid).memory_maps() if "libtorch" in m.path]


def _frame(video, size=(160, 96)) -> np.ndarray:
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(video), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0]).astype(np.float64)


def test_a_job_with_a_profile_shows_its_portrait_and_names_it(served, files, tmp_path):
    """A draft job with `profile`: done, the MP4 (both streams, durations within a frame) shows
    the profile's portrait (its first frame is far closer to a job given the same picture as an
    upload than to one without a picture), its metadata names the profile and the consent's
    date, and so does the job record; the profile cannot go while a job holds it."""
    if create(served, "bo", files["face"], consent="I, Bo Tan, agree").status_code != 201:
        pytest.fail("profile bo was not made")
    date = requests.get(served["url"] + "/api/profiles/bo").json()["consent_date"]
    text = "Hello from my profile. A short one."
    job = requests.post(served["url"] + "/api/jobs", json={"text": text, "preset": "draft", "profile": "bo",
                                                           "options": SMALL})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert (job.json()["profile"], job.json()["consent_date"]) == ("bo", date)
    gone = requests.delete(served["url"] + "/api/profiles/bo")
    final = wait_for_job(served, job_id, lambda j: j["state"] in ("done", "failed"))[-1]
    assert final["state"] == "done", final
    if gone.status_code != 204:  # taken while the job was queued or running: refused, kept whole
        refused(gone, 409, "name", "is used by 1 queued or running job")
    assert (final["profile"], final["consent_date"]) == ("bo", date)
    video = tmp_path / "bo.mp4"
    video.write_bytes(requests.get(served["url"] + final["links"]["video"]).content)
    info = ffprobe(video)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / SMALL["fps"] + 1e-6
    tags = info["format"]["tags"]
    assert (tags["podium_profile"], tags["podium_consent_date"]) == ("bo", date)

    def rendered(image: bool) -> np.ndarray:
        if image:  # the same picture, uploaded with the job
            answer = requests.post(served["url"] + "/api/jobs", data={"text": text, "preset": "draft",
                                                                     "options": json.dumps(SMALL)},
                                   files={"image": ("me.jpg", files["face"].read_bytes(), "image/jpeg")},
                                   headers={"Origin": served["url"]})
        else:  # no picture: slides
            answer = requests.post(served["url"] + "/api/jobs", json={"text": text, "preset": "draft", "options": SMALL})
        assert answer.status_code == 201, answer.text
        done = wait_for_job(served, answer.json()["id"], lambda j: j["state"] in ("done", "failed"))[-1]
        assert done["state"] == "done" and done["profile"] is None, done
        path = tmp_path / f"{done['id']}.mp4"
        path.write_bytes(requests.get(served["url"] + done["links"]["video"]).content)
        return _frame(path)

    with_profile = _frame(video)
    same_picture, slides = rendered(image=True), rendered(image=False)
    assert np.abs(with_profile - same_picture).mean() < 0.25 * np.abs(with_profile - slides).mean()

    if gone.status_code == 409:
        assert requests.delete(served["url"] + "/api/profiles/bo").status_code == 204
    assert not (served["store"] / "bo").exists()
    refused(requests.post(served["url"] + "/api/jobs", json={"text": text, "preset": "draft", "profile": "bo"}),
            422, "profile", "no profile named bo")


@pytest.mark.parametrize("name", ["a/b", "..", "my name", "a" * 300])
def test_bad_names_are_refused(served, files, name):
    refused(create(served, name, files["face"]), 422, "name", "is not allowed: use 1-64 letters")
    assert leftovers(served["store"]) == []


@pytest.mark.parametrize("case, status, field, said", [
    ("no consent", 422, "consent", "a profile needs consent"),
    ("no image", 422, "image", "a profile needs a portrait"),
    ("no face", 422, "image", "image 2 (drawn.png) shows no face"),
    ("two faces", 422, "image", "image 1 (two.jpg) shows 2 faces"),
    ("not a picture", 415, "image", "must be a PNG, JPEG or WebP picture"),
    ("1 s of voice", 422, "voice", "(short.wav) lasts 1.0 s, too short"),
    ("silence", 422, "voice", "(silence.wav) is silent"),
    ("text without voice", 422, "voice_text", "goes with a voice sample"),
    ("existing name", 409, "name", "profile cy already exists"),
])
def test_bad_input_is_one_4xx_naming_its_field_and_nothing_is_written(served, files, case, status, field, said):
    if case == "existing name":
        assert create(served, "cy", files["face"]).status_code == 201
    before = sorted(p.name for p in served["store"].iterdir()) if served["store"].is_dir() else []
    face, args = files["face"], {}
    images = {"no image": [], "no face": [face, files["drawn"]], "two faces": [files["two"]],
              "not a picture": [files["voice"]]}.get(case, [face])
    if case == "no consent":
        args["consent"] = "  "
    if case in ("1 s of voice", "silence"):
        args.update(voice=files["short" if case == "1 s of voice" else "silence"], voice_text="hello")
    if case == "text without voice":
        args["voice_text"] = "hello"
    name = "cy" if case == "existing name" else "dee"
    refused(create(served, name, *images, **args), status, field, said)
    assert not (served["store"] / "dee").exists() and leftovers(served["store"]) == []
    assert (sorted(p.name for p in served["store"].iterdir()) if served["store"].is_dir() else []) == before


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A server with users: two members, each with a token and 0.3 MB of uploads a day."""
    root = tmp_path_factory.mktemp("team-profiles")
    with podium_server(root / "data", "--admin-token", "admin-token-0123456789", "--limit",
                       "member.upload_mb_per_day=0.3", tmpdir=root / "tmp") as server:
        admin = {"Authorization": "Bearer admin-token-0123456789"}
        server["as"] = {}
        for name in ("una", "vik"):
            added = requests.post(server["url"] + "/api/users", json={"name": name, "role": "member"}, headers=admin)
            assert added.status_code == 201, added.text
            token = requests.post(f"{server['url']}/api/users/{name}/tokens", headers=admin).json()["token"]
            server["as"][name] = {"Authorization": f"Bearer {token}"}
        server["data"] = root / "data"
        yield server


def test_profiles_are_per_user(team, files):
    """Una's profile is never listed, shown, used, corrected or deleted by Vik (404, as none), and
    Vik's own profile of the same name is another."""
    una, vik, url = team["as"]["una"], team["as"]["vik"], team["url"]
    assert create(team, "me", files["face"], headers=una).status_code == 201
    assert requests.get(url + "/api/profiles", headers=vik).json() == {"profiles": []}
    assert [p["name"] for p in requests.get(url + "/api/profiles", headers=una).json()["profiles"]] == ["me"]
    refused(requests.get(url + "/api/profiles/me", headers=vik), 404, "name", "no profile named me")
    refused(requests.get(url + "/api/profiles/me/images/1", headers=vik), 404, "name", "no profile named me")
    refused(requests.put(url + "/api/profiles/me/voice-text", json={"text": "x"}, headers=vik), 404, "name",
            "no profile named me")
    refused(requests.delete(url + "/api/profiles/me", headers=vik), 404, "name", "no profile named me")
    refused(requests.post(url + "/api/jobs", json={"text": "Hi.", "preset": "draft", "profile": "me"}, headers=vik),
            422, "profile", "no profile named me")
    made = create(team, "me", files["face"], consent="I, Vik, agree", headers=vik)
    assert made.status_code == 201, made.text
    assert made.json()["consent"]["account"] == "vik"
    assert requests.get(url + "/api/profiles/me", headers=una).json()["consent"]["who"] == "Ana Lima"
    assert requests.get(url + "/api/profiles", headers=team["headers"] or
                        {"Authorization": "Bearer admin-token-0123456789"}).json() == {"profiles": []}
    folders = sorted(p.name for p in (team["data"] / "profiles").iterdir())
    assert len(folders) == 2 and all((team["data"] / "profiles" / f / "me/manifest.json").is_file() for f in folders)
    # a profile's uploads count against the day's megabytes, as a job's do
    over = create(team, "big", files["face"], voice=files["voice"], voice_text="Hi.", headers=vik)
    assert over.status_code == 429 and over.headers.get("Retry-After"), over.text
    assert "MB of uploads a day" in over.json()["detail"]
    assert requests.get(url + "/api/profiles/big", headers=vik).status_code == 404


def test_a_worker_on_another_machine_gets_the_profile_through_the_api(files, tmp_path):
    """With a broker: a job with a profile waits queued (no worker yet) and the profile cannot be
    deleted meanwhile; a `podium worker` (its own data folder: no disk shared) fetches the
    profile's archive over the API, checks its sha256, renders with it, and keeps nothing of it.
    An archive that does not match the claim's sha256 is not used."""
    from test_queue_redis import REDIS, TOKEN, redis_server, start_worker

    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    from orchestrator.service.worker import Api, ApiError, RenderWorker

    with redis_server(tmp_path / "redis") as broker, \
            podium_server(tmp_path / "data", "--broker", broker, token=TOKEN, tmpdir=tmp_path / "serve-tmp") as server:
        url, auth = server["url"], server["headers"]
        assert create(server, "ana", files["face"], voice=files["voice"], voice_text="Hello there.").status_code == 201
        answer = requests.post(url + "/api/jobs", headers=auth, json={
            "text": "Made on a worker.", "preset": "draft", "profile": "ana", "options": SMALL})
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        refused(requests.delete(url + "/api/profiles/ana", headers=auth), 409, "name",
                f"is used by 1 queued or running job(s) ({job_id})")

        # what a worker is sent: the archive the claim's sha256 names; a wrong sha256 and it is not used
        claim = requests.post(f"{url}/api/jobs/{job_id}/claim", json={"worker": "probe"}, headers=auth).json()
        sent = claim["profile"]
        assert sent["name"] == "ana" and sent["link"] == f"/api/jobs/{job_id}/profile"
        archive = requests.get(url + sent["link"], headers=auth)
        assert hashlib.sha256(archive.content).hexdigest() == sent["sha256"] and len(archive.content) == sent["bytes"]
        probe = tmp_path / "probe"
        probe.mkdir()
        with pytest.raises(ApiError, match="does not match the sha256 the claim gave"):
            RenderWorker.fetch_profile(Api(url, TOKEN), job_id, {**sent, "sha256": "0" * 64}, probe)
        assert not (probe / "profiles").exists() or not any((probe / "profiles").iterdir())
        requests.post(f"{url}/api/jobs/{job_id}/release", json={"worker": "probe", "attempt": claim["job"]["attempts"]},
                      headers=auth).raise_for_status()

        worker, log = start_worker("w1", broker, tmp_path / "cache", tmp_path)
        try:
            final = wait_for_job(server, job_id, lambda j: j["state"] in ("done", "failed"))[-1]
            assert final["state"] == "done" and final["worker"] == "w1", (final, log.read_text()[-2000:])
        finally:
            from conftest import stop_process
            stop_process(worker)
        date = requests.get(url + "/api/profiles/ana", headers=auth).json()["consent_date"]
        assert (final["profile"], final["consent_date"]) == ("ana", date)
        video = tmp_path / "worker.mp4"
        video.write_bytes(requests.get(url + final["links"]["video"], headers=auth).content)
        tags = ffprobe(video, count_frames=False)["format"]["tags"]
        assert (tags["podium_profile"], tags["podium_consent_date"]) == ("ana", date)
        assert not list((tmp_path / "w1" / "data").rglob("manifest.json")), "the worker kept the profile"
        assert not (tmp_path / "data" / "jobs" / job_id / "profile.zip").exists(), "the server kept its copy"
        assert requests.delete(url + "/api/profiles/ana", headers=auth).status_code == 204


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).is_file(), reason="needs Debian's chromium")
def test_the_page_creates_a_profile_and_picks_it_in_new_video(served, files, tmp_path):
    """In Chromium: the Profiles card refuses a profile without consent (one line naming the
    field), creates one from a portrait and a voice sample, shows the transcript speech
    recognition wrote, saves a correction; New video offers the profile, and the job made with
    it renders with it."""
    playwright = pytest.importorskip("playwright.sync_api")
    from test_serve_page import LAUNCH_ARGS

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            problems = []
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.goto(served["url"] + "/")
            page.fill("#profile-name", "pia")
            page.set_input_files("#profile-images", [str(files["face"])])
            page.set_input_files("#profile-voice", str(files["voice"]))
            page.click("#profile-create")
            error = page.locator("#error")
            error.wait_for(state="visible")
            assert error.inner_text().startswith("consent: a profile needs consent"), error.inner_text()
            assert not (served["store"] / "pia").exists()

            page.fill("#profile-consent-text", "I, Pia Roe, agree that Podium may make videos with my face and voice")
            page.click("#profile-create")
            page.locator("#profile-detail").wait_for(state="visible", timeout=120_000)
            assert page.locator("#profile-detail-name").inner_text() == "pia"
            heard = page.input_value("#profile-transcript")
            assert heard and heard == requests.get(served["url"] + "/api/profiles/pia").json()["voice"]["transcript"]
            assert "written by whisper-tiny-words" in page.locator("#profile-voice-info").inner_text()
            assert "Pia Roe" in page.locator("#profile-consent").inner_text()
            assert page.evaluate("document.getElementById('profile-portrait').naturalWidth") > 0
            page.fill("#profile-transcript", "Hello, I am Pia.")
            page.click("#profile-save-text")
            playwright.expect(page.locator("#profile-saved")).to_have_text("saved")
            assert requests.get(served["url"] + "/api/profiles/pia").json()["voice"]["transcript"] == "Hello, I am Pia."
            playwright.expect(page.locator("#profile-list li[data-name='pia']")).to_be_visible()

            page.wait_for_function("document.querySelectorAll('#preset option').length > 2")
            page.select_option("#preset", "draft")
            page.select_option("#size", "320x180")
            page.fill("#fps", "10")
            page.fill("#text", "Hello from the page, with my profile.")
            page.select_option("#profile", "pia")
            assert page.is_disabled("#image")  # the profile brings the portrait
            page.click("#submit")
            page.wait_for_function("document.getElementById('job-state').textContent.startsWith('done')",
                                   timeout=180_000)
            job = requests.get(served["url"] + "/api/jobs", timeout=10).json()["jobs"][0]
            assert job["state"] == "done" and job["profile"] == "pia" and job["consent_date"], job
            page.screenshot(path=str(tmp_path / "profiles-page.png"), full_page=True)
            assert not problems, problems
        finally:
            browser.close()
