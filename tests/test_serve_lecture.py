"""Lectures through `podium serve` (issue 22 item 6): a deck and notes uploaded with the layout
options, the slide count known at submission, one segment a slide, the MP4 made from them; bad
decks refused in one line with nothing stored. A real server process on loopback, real
python-pptx / PIL decks made here, draft renders."""
from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import requests

from conftest import PLAY_VIDEO, ffprobe, frame_at, podium_server, stop_process, streams, wait_for_job
from test_deck import COLOURS, HAVE_OFFICE, NOTES, make_pdf, make_pptx

W, H, FPS = 160, 96, 12
SMALL = {"size": f"{W}x{H}", "fps": FPS}


def _finished(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fake_ollama import FakeOllama

    root = tmp_path_factory.mktemp("serve-lecture")
    with FakeOllama() as ollama, podium_server(root / "data", "--max-deck-mb", "0.5", "--ollama-host", ollama.url,
                                               tmpdir=root / "tmp") as server:
        server["root"], server["ollama"] = root, ollama
        yield server


def _post(server: dict, fields: dict, files: dict) -> requests.Response:
    data = {k: json.dumps(v) if k == "options" else v for k, v in fields.items()}
    return requests.post(server["url"] + "/api/jobs", data=data, files=files,
                         headers={"Origin": server["url"]}, timeout=60)


def test_a_pdf_with_notes_and_layout_options_renders_one_segment_a_slide(served, tmp_path, portrait_png):
    pdf = make_pdf(tmp_path / "talk.pdf", size=(W * 2, H * 2))
    notes = "\n---\n".join(["Red comes first.", "", "Blue is last, and says so."])
    options = {**SMALL, "layout": "pip", "pip_position": "bottom-left", "pip_size": 0.4,
               "pip_shape": "square", "pip_border": 2, "pip_margin": 4, "hold": 1.0}
    answer = _post(served, {"preset": "draft", "options": options},
                   {"deck": ("My talk.pdf", pdf.read_bytes(), "application/pdf"),
                    "notes": ("talk.md", notes.encode(), "text/markdown"),
                    "image": ("me.png", portrait_png.read_bytes(), "image/png")})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["slides"] == 3 and len(job["slide_titles"]) == 3, job  # known at submission
    assert job["uploads"] == ["deck", "image", "notes"] and job["request"]["options"]["pip_shape"] == "square"
    job = wait_for_job(served, job["id"], _finished, every=0.2)[-1]
    assert job["state"] == "done", job
    assert [s["index"] for s in job["segments"]] == [0, 1, 2]  # a segment a slide
    assert all(s["state"] in ("done", "cached") for s in job["segments"]), job["segments"]

    folder = served["root"] / "data" / "jobs" / job["id"]
    request = json.loads((folder / "request.json").read_text())
    assert request["deck"] == str(folder / "inputs" / "deck.pdf") and request["script"] is None
    assert request["notes"] == str(folder / "inputs" / "notes.md")
    assert (request["pip_position"], request["pip_size"], request["layout"]) == ("bottom-left", 0.4, "pip")

    video = requests.get(served["url"] + job["links"]["video"], timeout=30)
    out = tmp_path / "talk.mp4"
    out.write_bytes(video.content)
    info = ffprobe(out)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["width"], v["height"]) == (W, H)
    assert abs(float(v["duration"]) - float(a["duration"])) <= 1 / FPS
    # the first slide's colour fills the frame away from the box (bottom-left), the box is not it
    frame = frame_at(out, 0.3, W, H).astype(int)
    assert abs(frame[8, W - 8] - COLOURS[0]).max() <= 16, frame[8, W - 8]
    box = int(round(0.4 * H))
    assert abs(frame[H - 4 - box // 2, 4 + box // 2] - COLOURS[0]).max() > 30


@pytest.mark.skipif(not HAVE_OFFICE, reason="PPTX slides are drawn by LibreOffice (setup.sh installs it)")
def test_a_pptx_job_takes_its_narration_from_the_speaker_notes(served, tmp_path):
    deck = make_pptx(tmp_path / "talk.pptx")
    answer = _post(served, {"preset": "draft", "options": {**SMALL, "hold": 0.5}},
                   {"deck": ("talk.pptx", deck.read_bytes(), "application/octet-stream")})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["slides"] == 3 and job["title"] == f"Slide {COLOURS[0]}", job
    job = wait_for_job(served, job["id"], _finished, every=0.2)[-1]
    assert job["state"] == "done" and len(job["segments"]) == 3, job
    srt = requests.get(served["url"] + job["links"]["subtitles"], timeout=30).text
    spoken = " ".join(line for line in srt.splitlines()
                      if line.strip() and not line.strip().isdigit() and "-->" not in line)
    assert spoken == " ".join(n for n in NOTES if n)
    assert "notes" not in job["links"]  # its notes are the deck's own: none written
    missing = requests.get(served["url"] + job["links"]["self"] + "/notes", timeout=10)
    assert missing.status_code == 404 and "only a guided deck job" in missing.json()["detail"], missing.text


@pytest.mark.skipif(not HAVE_OFFICE, reason="PPTX slides are drawn by LibreOffice (setup.sh installs it)")
def test_a_guided_deck_job_has_its_silent_slides_narrated_and_offers_the_notes(served, tmp_path):
    deck = make_pptx(tmp_path / "talk.pptx")  # slide 2 has no notes
    asked = len(served["ollama"].chats)
    answer = _post(served, {"mode": "guided", "preset": "draft", "options": {**SMALL, "duration": 20}},
                   {"deck": ("talk.pptx", deck.read_bytes(), "application/octet-stream")})
    assert answer.status_code == 201, answer.text
    job = wait_for_job(served, answer.json()["id"], _finished, every=0.2)[-1]
    assert job["state"] == "done" and len(job["segments"]) == 3, job
    assert len(served["ollama"].chats) - asked == 1  # only the slide without notes was written
    notes = requests.get(served["url"] + job["links"]["notes"], timeout=30)
    assert notes.status_code == 200 and notes.headers["content-type"].startswith("text/markdown")
    sections = [s.strip() for s in notes.text.split("\n---\n")]
    assert sections[0] == NOTES[0] and sections[2] == NOTES[2] and len(sections[1].split()) >= 5, sections
    srt = requests.get(served["url"] + job["links"]["subtitles"], timeout=30).text
    assert sections[1].split()[0] in srt  # the written narration is what was spoken


def _keynote() -> bytes:
    """What a Keynote '09+ file is: a zip of Index/*.iwa, which no PowerPoint reader opens."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Index/Document.iwa", b"\x00\x01keynote")
        archive.writestr("Metadata/Properties.plist", b"<plist/>")
    return buffer.getvalue()


def _bomb(pptx: bytes) -> bytes:
    """A real PPTX plus a part that unpacks to 6 MB (10 times the test server's 0.5 MB deck limit
    is 5 MB) from a few kilobytes."""
    buffer = io.BytesIO(pptx)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ppt/media/padding.bin", bytes(6_000_000))
    return buffer.getvalue()


def test_bad_decks_and_notes_are_refused_in_one_line_and_nothing_is_stored(served, tmp_path):
    pptx = make_pptx(tmp_path / "talk.pptx").read_bytes()
    pdf = make_pdf(tmp_path / "talk.pdf").read_bytes()
    jobs = served["root"] / "data" / "jobs"
    before = sorted(jobs.iterdir())
    draft = {"preset": "draft", "options": SMALL}
    cases = [
        (422, "deck", "empty", draft, {"deck": ("talk.pptx", b"", "application/octet-stream")}),
        (422, "deck", "corrupt", draft, {"deck": ("talk.pptx", pptx[: len(pptx) // 2], "application/zip")}),
        (422, "deck", "Keynote", draft, {"deck": ("talk.key", _keynote(), "application/x-iwork-keynote")}),
        (422, "deck", "not a PowerPoint deck", draft, {"deck": ("talk.pptx", _keynote(), "")}),
        (422, "deck", "unpacks to 6 MB", draft, {"deck": ("talk.pptx", _bomb(pptx), "")}),
        (422, "deck", "PowerPoint (.pptx) or PDF", draft, {"deck": ("talk.ppt", b"\xd0\xcf\x11\xe0" * 8, "")}),
        (413, "deck", "0.5 MB", draft, {"deck": ("big.pdf", pdf + bytes(600_000), "application/pdf")}),
        (422, "notes", "go with a deck", {**draft, "text": "Hello."}, {"notes": ("n.md", b"Hi.", "text/markdown")}),
        (422, "notes", "is a PDF", draft, {"deck": ("talk.pdf", pdf, "application/pdf")}),
        (422, "notes", "4 sections", draft, {"deck": ("talk.pdf", pdf, "application/pdf"),
                                             "notes": ("n.md", b"a\n---\nb\n---\nc\n---\nd", "text/markdown")}),
        (422, "notes", "UTF-8", draft, {"deck": ("talk.pdf", pdf, "application/pdf"),
                                        "notes": ("n.md", b"caf\xe9", "text/markdown")}),
        (422, "text", "drop the text", {**draft, "text": "Hello."}, {"deck": ("talk.pptx", pptx, "")}),
        (422, "options.layout", "not full", {**draft, "options": {**SMALL, "layout": "full"}},
         {"deck": ("talk.pptx", pptx, "")}),
        (422, "options.pip_position", "", {**draft, "options": {**SMALL, "pip_position": "middle"}},
         {"deck": ("talk.pptx", pptx, "")}),
        (422, "options.pip_size", "", {**draft, "options": {**SMALL, "pip_size": 0.9}},
         {"deck": ("talk.pptx", pptx, "")}),
    ]
    for status, field, words, fields, files in cases:
        answer = _post(served, fields, files)
        assert answer.status_code == status, (field, words, answer.text)
        body = answer.json()
        assert body["field"] == field and body["detail"].startswith(field), body
        assert words in body["detail"] and "\n" not in body["detail"], body
        assert str(served["root"]) not in body["detail"] and "deck.pptx" not in body["detail"], body  # its names
    assert sorted(jobs.iterdir()) == before, "a refused deck left files"
    # as JSON, the layout fields validate through JobRequest.options too
    answer = requests.post(served["url"] + "/api/jobs", timeout=30, json={
        "text": "Hi.", "preset": "draft", "options": {"pip_shape": "hexagon"}})
    assert answer.status_code == 422 and answer.json()["field"] == "options.pip_shape", answer.text


CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
# every text a slide's line shows while the job is followed (its progress, not only its end)
WATCH_SLIDES = """() => {
    window.slideLines = [];
    new MutationObserver(() => {
        for (const li of document.querySelectorAll('#segments li')) window.slideLines.push(li.textContent);
    }).observe(document.getElementById('segments'), {childList: true, subtree: true, characterData: true});
}"""
PLAY = PLAY_VIDEO


@pytest.mark.skipif(not HAVE_OFFICE, reason="PPTX slides are drawn by LibreOffice (setup.sh installs it)")
@pytest.mark.skipif(not os.path.isfile(CHROMIUM), reason="needs Debian's chromium")
def test_the_page_uploads_a_pptx_with_a_layout_follows_each_slide_and_plays_the_video(served, tmp_path,
                                                                                       portrait_png):
    playwright = pytest.importorskip("playwright.sync_api")
    deck = make_pptx(tmp_path / "lecture.pptx")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems = []
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.goto(served["url"] + "/")
            page.wait_for_function("document.querySelectorAll('#preset option').length > 2")
            page.select_option("#preset", "draft")
            page.select_option("#size", "320x180")
            page.fill("#fps", "10")
            page.set_input_files("#deck", str(deck))
            assert page.is_disabled("#text") and page.is_visible("#deck-hint")  # the notes narrate
            page.set_input_files("#image", str(portrait_png))
            page.select_option("#layout", "pip")
            page.select_option("#pip-position", "bottom-right")
            page.select_option("#pip-size", "0.333")
            page.select_option("#pip-shape", "circle")
            page.evaluate(WATCH_SLIDES)
            page.click("#submit")
            page.wait_for_function("document.getElementById('error').hidden")
            # the slide count is known from the submission on
            playwright.expect(page.locator("#slide-count")).to_have_text("3 slides")
            playwright.expect(page.locator("#segments-title")).to_have_text("Slides")
            page.wait_for_function("document.getElementById('job-state').textContent.startsWith('done')",
                                   timeout=240_000)
            lines = page.eval_on_selector_all("#segments li", "items => items.map(i => i.textContent)")
            seen = page.evaluate("window.slideLines")
            played = page.evaluate(PLAY)
            page.evaluate("document.getElementById('player').pause()")
            page.screenshot(path=os.environ.get("PODIUM_PAGE_SCREENSHOT", str(tmp_path / "page.png")),
                            full_page=True)
            assert not problems, problems
        finally:
            browser.close()

    assert lines == [f"Slide {i + 1} (Slide {c}): done" for i, c in enumerate(COLOURS)], lines
    assert any(": running" in line for line in seen), seen  # its progress was shown slide by slide
    job = requests.get(served["url"] + "/api/jobs", timeout=10).json()["jobs"][0]
    assert job["state"] == "done" and job["uploads"] == ["deck", "image"], job
    options = requests.get(served["url"] + job["links"]["self"], timeout=10).json()["request"]["options"]
    assert {k: options[k] for k in ("layout", "pip_position", "pip_size", "pip_shape")} == {
        "layout": "pip", "pip_position": "bottom-right", "pip_size": 0.333, "pip_shape": "circle"}, options
    assert "text" not in job["request"] and job["slides"] == 3, job
    assert played["error"] is None and played["readyState"] >= 2, played
    assert played["currentTime"] >= 0.5, played  # it plays: its clock advances
    assert (played["width"], played["height"]) == (320, 180), played


def test_a_remote_worker_fetches_the_deck_and_notes_through_the_api(tmp_path):
    from test_queue_redis import REDIS, TOKEN, redis_server, start_worker

    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    pdf = make_pdf(tmp_path / "talk.pdf", size=(W * 2, H * 2))
    notes = ["Red comes first.", "Green is second.", "Blue is last."]
    with redis_server(tmp_path / "redis") as broker, \
            podium_server(tmp_path / "data", "--broker", broker, token=TOKEN, tmpdir=tmp_path / "serve-tmp") as server:
        worker, log = start_worker("w1", broker, tmp_path / "cache", tmp_path)
        try:
            answer = requests.post(server["url"] + "/api/jobs", headers=server["headers"], timeout=60,
                                   data={"preset": "draft", "options": json.dumps({**SMALL, "layout": "slides"})},
                                   files={"deck": ("talk.pdf", pdf.read_bytes(), "application/pdf"),
                                          "notes": ("talk.md", "\n---\n".join(notes).encode(), "text/markdown")})
            assert answer.status_code == 201, answer.text
            assert answer.json()["slides"] == 3
            job = wait_for_job(server, answer.json()["id"], _finished, timeout=240)[-1]
            assert job["state"] == "done" and job["worker"] == "w1", (job, log.read_text()[-3000:])
            assert len(job["segments"]) == 3, job
            srt = requests.get(server["url"] + job["links"]["subtitles"], headers=server["headers"], timeout=30).text
        finally:
            stop_process(worker)
    spoken = " ".join(line for line in srt.splitlines()
                      if line.strip() and not line.strip().isdigit() and "-->" not in line)
    assert spoken == " ".join(notes)  # the notes went to the worker with the deck
