"""Lectures (issue 22): a preset's graph becomes a deck lecture, one run a page, stitched; each
page is up for exactly its narration and the presenter stays in its box."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import draw_portrait, ffprobe, frame_at, parse_srt
from orchestrator.render import lecture
from orchestrator.servers.dispatch import InProcessInstance, render_all
from orchestrator.render.segments import SegmentCache
from orchestrator.render.stitch import stitch
from orchestrator.graphs.workflow import find_node, load_workflow
from podium.engines.compose import Pip
from podium.errors import UsageError
from test_deck import COLOURS, NOTES, make_pdf, make_pptx

W, H, FPS = 320, 180, 25


def render(graph, talk, tmp_path, values=None, files=None):
    cache = SegmentCache(tmp_path / "cache")
    jobs = lecture.plan_pages(graph, talk, values or {("Save video", "fps"): FPS,
                                                    ("Save video", "intermediate"): True}, files or {})
    clips = render_all(jobs, [InProcessInstance()], cache, lambda *a: None)
    out = tmp_path / "talk.mp4"
    stitch(clips, out, subtitles=True)
    return out, clips


def test_the_draft_graph_becomes_a_pip_lecture_whose_presenter_is_drawn_at_box_size():
    graph = lecture.lecture_graph(load_workflow("direct"), "pip", Pip(size=0.25), (W, H), 2.0)
    assert graph[find_node(graph, "Script")]["class_type"] == "PodiumDeck"
    presenter = graph[find_node(graph, "Presenter")]["inputs"]
    assert (presenter["width"], presenter["height"]) == Pip(size=0.25).box_size(W, H) == (44, 44)
    save = graph[find_node(graph, "Save video")]["inputs"]
    assert graph[save["visual"][0]]["class_type"] == "PodiumCompose"
    slides = lecture.lecture_graph(load_workflow("direct"), "slides", Pip(), (W, H), 2.0)
    assert "PodiumPresenter" not in {n["class_type"] for n in slides.values()}
    with pytest.raises(UsageError, match="--layout pip or slides"):
        lecture.lecture_graph(load_workflow("direct"), "full", Pip(), (W, H), 2.0)


def test_a_pptx_lecture_in_draft_shows_each_slide_for_its_notes_with_the_portrait_in_the_corner(tmp_path):
    deck = make_pptx(tmp_path / "talk.pptx")
    talk = lecture.read_lecture(deck, None, hold_s=1.0)
    assert [s.text for s in talk.script.segments] == [n for n in NOTES]
    portrait = tmp_path / "me.png"
    draw_portrait(portrait, 200, 240)
    graph = lecture.lecture_graph(load_workflow("direct"), "pip",
                                  Pip(position="bottom-right", size=0.3, shape="square", margin=8),
                                  (W, H), 1.0)
    out, clips = render(graph, talk, tmp_path, files={("Presenter", "portrait_path"): portrait})
    assert len(clips) == 3  # one run a page
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= 1 / FPS
    start = 0.0
    box = Pip(size=0.3).box_size(W, H)
    for clip, colour in zip(clips, COLOURS):
        for t in (start + 2 / FPS, start + clip.duration / 2, start + clip.duration - 2 / FPS):
            frame = frame_at(out, t, W, H).astype(int)
            assert np.abs(frame[H - 8 - box[1] - 6, 20] - colour).max() <= 12, (t, colour)  # the slide
            assert np.abs(frame[H - 8 - box[1] // 2, W - 8 - box[0] // 2] - colour).max() > 30  # the face
        start += clip.duration
    subtitles = [text for _, _, text in parse_srt(out.with_suffix(".srt"))]
    assert " ".join(subtitles) == " ".join(n for n in NOTES if n)  # what was said is the notes


def test_a_pdf_lecture_needs_its_notes_and_renders_slides_only(tmp_path):
    pdf = make_pdf(tmp_path / "talk.pdf")
    with pytest.raises(UsageError, match="give its narration with --notes"):
        lecture.read_lecture(pdf, None, 1.0)
    notes = tmp_path / "talk.notes.md"
    notes.write_text("\n---\n".join(NOTES))
    talk = lecture.read_lecture(pdf, notes, hold_s=1.0)
    graph = lecture.lecture_graph(load_workflow("direct"), "slides", Pip(), (W, H), 1.0)
    out, clips = render(graph, talk, tmp_path)
    assert 1.4 <= clips[1].duration <= 1.6  # held 1 s, silent (plus the 0.25 s breaths either side)
    frame = frame_at(out, clips[0].duration + clips[1].duration / 2, W, H).astype(int)
    assert np.abs(frame[H // 2, W // 2] - COLOURS[1]).max() <= 12


def test_podium_generate_deck_pip_with_a_timeline_end_to_end(tmp_path):
    from conftest import run_cli

    make_pptx(tmp_path / "talk.pptx")
    draw_portrait(tmp_path / "me.png", 200, 240)
    rc, out, err = run_cli("generate", "--deck", "talk.pptx", "--image", "me.png", "--size", f"{W}x{H}",
                           "--pip-position", "top-left", "--pip-size", "0.3", "--hold", "1",
                           "--timeline", "talk.otio", "--out", "talk.mp4", "--quiet",
                           cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    assert "3 segments" in out  # a run a page
    video = tmp_path / "talk.mp4"
    streams = {s["codec_type"]: s for s in ffprobe(video)["streams"]}
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= 1 / FPS
    import opentimelineio as otio

    edit = otio.adapters.read_from_file(str(tmp_path / "talk.otio"))
    assert len(edit.tracks[0].find_clips()) == 3
    assert abs(edit.tracks[0].duration().to_seconds() - float(streams["video"]["duration"])) <= 1 / FPS
    assert [m.name for m in edit.tracks[0].markers][:1] == ["This is the red slide."]


def test_the_presenter_over_the_scripts_own_slides_without_a_deck(tmp_path):
    from conftest import run_cli

    draw_portrait(tmp_path / "me.png", 200, 240)
    rc, out, err = run_cli("generate", "--text", "## A title\n\nOne line here.", "--image", "me.png",
                           "--layout", "pip", "--size", f"{W}x{H}", "--out", "v.mp4", "--quiet",
                           cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    frame = frame_at(tmp_path / "v.mp4", 1.0, W, H).astype(int)
    from podium.engines.presenter import SlideDeck

    assert np.abs(frame[H // 2, W // 3] - SlideDeck.BACKGROUND).max() <= 12  # the slide's background
    box = Pip().box_size(W, H)
    assert np.abs(frame[16 + box[1] // 2, W - 16 - box[0] // 2] - SlideDeck.BACKGROUND).max() > 30  # the face


@pytest.mark.parametrize("args, message", [
    (["--deck", "talk.pptx", "--text", "hi"], "a deck brings its own narration"),
    (["--text", "hi", "--notes", "n.md"], "notes go with a deck"),
    (["--deck", "talk.pptx", "--layout", "full"], "not full"),
    (["--deck", "talk.pdf"], "give its narration with --notes"),
    (["--deck", "missing.pptx"], "deck not found"),
    (["--deck", "talk.pptx", "--timeline", "v.mp4"], "would be the same file"),
    (["--deck", "talk.pptx", "--pip-size", "0.9"], "--pip-size"),
])
def test_bad_lecture_requests_are_one_line_and_write_nothing(tmp_path, args, message):
    from conftest import listing, run_cli

    make_pptx(tmp_path / "talk.pptx")
    make_pdf(tmp_path / "talk.pdf")
    before = listing(tmp_path)
    rc, out, err = run_cli("generate", *args, "--out", "v.mp4", "--quiet", cwd=tmp_path,
                           tmpdir=tmp_path / "scratch")
    assert rc == 2, err
    assert message in err and err.strip().count("\n") == 0, err
    after = {k: v for k, v in listing(tmp_path).items() if not k.startswith("scratch")}
    assert after == {k: v for k, v in before.items() if not k.startswith("scratch")}


def test_guided_lecture_writes_notes_for_silent_slides_and_keeps_the_decks_own(tmp_path):
    from conftest import run_cli
    from fake_ollama import FakeOllama

    make_pptx(tmp_path / "talk.pptx")  # slide 2 has no notes
    with FakeOllama() as ollama:
        rc, out, err = run_cli("generate", "--mode", "guided", "--deck", "talk.pptx", "--ollama-host",
                               ollama.url, "--duration", "20", "--size", f"{W}x{H}", "--out", "talk.mp4",
                               "--quiet", cwd=tmp_path, tmpdir=tmp_path / "scratch")
        asked = len(ollama.chats)
    assert rc == 0, err
    assert asked == 1  # only the slide without notes was written by the model
    sections = [s.strip() for s in (tmp_path / "talk.notes.md").read_text().split("\n---\n")]
    assert sections[0] == NOTES[0] and sections[2] == NOTES[2] and len(sections[1].split()) >= 5
    assert "--notes talk.notes.md" in err
    said = " ".join(text for _, _, text in parse_srt(tmp_path / "talk.srt"))
    assert sections[1].split()[0] in said  # the written narration is what was spoken
