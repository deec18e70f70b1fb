"""The page of `podium serve` in a real browser (Debian's chromium driven by Playwright):
a bad request's error in one line, a job submitted with a portrait, its progress, the video
played and downloaded, the job in the list."""
from __future__ import annotations

import os
from pathlib import Path

import pysubs2
import pytest
import requests

from conftest import PLAY_VIDEO, ffprobe, podium_server, streams

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
TEXT = "# Hello page\nThis video was asked for in a browser.\n\nAnd this is its second part."


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_submits_a_job_follows_it_and_plays_the_video(tmp_path, portrait_png):
    playwright = pytest.importorskip("playwright.sync_api")
    shot = Path(os.environ.get("PODIUM_PAGE_SCREENSHOT", tmp_path / "page.png"))
    with podium_server(tmp_path / "data", tmpdir=tmp_path / "serve-tmp") as server, \
            playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            problems = []
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.goto(server["url"] + "/")
            # presets and voices come from the API's schema
            page.wait_for_function("document.querySelectorAll('#preset option').length > 2")
            assert "draft" in page.eval_on_selector_all("#preset option", "os => os.map(o => o.value)")
            page.select_option("#preset", "draft")
            page.select_option("#size", "320x180")
            page.fill("#fps", "10")

            # the API's refusal, in one line
            page.fill("#text", "   ")
            page.click("#submit")
            error = page.locator("#error")
            error.wait_for(state="visible")
            assert error.inner_text().startswith("text:"), error.inner_text()
            assert "\n" not in error.inner_text()

            page.fill("#text", TEXT)
            page.set_input_files("#image", str(portrait_png))  # an upload: sent as multipart
            page.click("#submit")
            page.wait_for_function("document.getElementById('error').hidden")
            # live progress: the plan's two segments appear, then the job is done
            page.wait_for_function("document.querySelectorAll('#segments li').length === 2", timeout=60_000)
            page.wait_for_function("document.getElementById('job-state').textContent.startsWith('done')",
                                   timeout=180_000)
            job = requests.get(server["url"] + "/api/jobs", timeout=10).json()["jobs"][0]
            assert job["state"] == "done" and job["title"] == "Hello page", job
            assert job["uploads"] == ["image"] and job["request"]["options"]["fps"] == 10, job
            # the list of past jobs shows it, done, and opens it on a click
            playwright.expect(page.locator(f"#jobs tr[data-id='{job['id']}'] td.state-cell")).to_have_text("done")
            assert page.eval_on_selector("#progress", "p => p.value") == 1

            # the video plays: it has its metadata and its clock advances
            played = page.evaluate(PLAY_VIDEO)
            with page.expect_download() as download:
                page.click("#download-video")
            saved = tmp_path / "downloaded.mp4"
            download.value.save_as(saved)
            # the captions as the video draws them (.ass), offered beside the subtitles (.srt)
            assert page.is_visible("#download-subtitles") and page.is_visible("#download-captions")
            with page.expect_download() as drawn:
                page.click("#download-captions")
            assert drawn.value.suggested_filename == f"podium-{job['id']}.ass"
            captions = tmp_path / "downloaded.ass"
            drawn.value.save_as(captions)
            page.evaluate("document.getElementById('player').pause()")
            page.screenshot(path=str(shot), full_page=True)
            assert not problems, problems
        finally:
            browser.close()

    ass = pysubs2.load(str(captions))
    assert ass.info["PlayResX"] == "320" and ass.info["PlayResY"] == "180"  # laid out at the video's size
    assert "This video was asked for in a browser." in [e.plaintext.replace("\n", " ") for e in ass.events]
    info = ffprobe(saved)
    (video,), (audio,) = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], audio["codec_name"]) == ("h264", "aac")
    assert played["error"] is None and played["readyState"] >= 2, played
    assert played["currentTime"] >= 0.5, played
    assert (played["width"], played["height"]) == (320, 180), played
    assert abs(played["duration"] - float(info["format"]["duration"])) <= 0.1, (played, info["format"])
