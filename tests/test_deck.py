"""Decks in (issue 22): a PPTX or PDF made here becomes pages and narration, the pages follow the
spoken notes to the frame, the presenter sits in a free corner, and bad decks get one line each."""
from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ffprobe, frame_at
from podium import paths
from podium.engines import deck as deck_engine
from podium.engines.compose import Pip, PipVisual, place
from podium.engines.deck import DeckError, parse_pages, read_deck, read_notes, render_pages
from podium.nodes.compose import PodiumCompose
from podium.nodes.deck import PodiumDeck, PodiumDeckSlides
from podium.nodes.output import PodiumSaveVideo
from podium.nodes.voice import PodiumPiperTTS

W, H, FPS = 320, 180, 25
COLOURS = [(200, 40, 40), (40, 160, 60), (40, 70, 200)]
NOTES = ["This is the red slide.", "", "Blue is last. It has two sentences."]
HAVE_OFFICE = bool(shutil.which("soffice") or shutil.which("libreoffice"))


def make_pptx(path, colours=COLOURS, notes=NOTES, text_corner=None):
    """A 16:9 deck whose slides are filled with one colour each, a title, and speaker notes."""
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.util import Emu

    deck = Presentation()
    deck.slide_width, deck.slide_height = Emu(12192000), Emu(6858000)
    for colour, note in zip(colours, notes):
        slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
        fill = slide.background.fill
        fill.solid()
        fill.fore_color.rgb = RGBColor(*colour)
        slide.shapes.title.text = f"Slide {colour}"
        if note:
            slide.notes_slide.notes_text_frame.text = note
    deck.save(str(path))
    return path


def make_pdf(path, colours=COLOURS, size=(640, 360), busy_corner=None):
    """A PDF of plain colour pages (PIL writes it); `busy_corner` draws a dark block there."""
    pages = []
    for colour in colours:
        page = Image.new("RGB", size, colour)
        if busy_corner == "top-right":
            page.paste((10, 10, 10), (size[0] - 200, 0, size[0], 140))
        pages.append(page)
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72)
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside ComfyUI relative inputs are under the working folder
    monkeypatch.setattr(paths, "scratch_directory", lambda kind: tmp_path / "scratch" / kind)
    paths.set_output_directory(tmp_path / "out")
    yield tmp_path
    paths.set_output_directory(None)


def test_pptx_notes_titles_and_pages_are_read(tmp_path):
    deck = read_deck(make_pptx(tmp_path / "talk.pptx"))
    assert deck.kind == "pptx" and len(deck.pages) == 3
    assert [p.notes for p in deck.pages] == NOTES
    assert deck.pages[0].title == f"Slide {COLOURS[0]}"


def test_a_deck_is_parsed_once_per_content_and_again_when_it_changes(tmp_path, monkeypatch):
    """Every page run of a lecture reads the deck: python-pptx parses it once per content, and a
    deck saved again under the same name is read afresh."""
    calls = []
    real = deck_engine._pptx_pages
    monkeypatch.setattr(deck_engine, "_pptx_pages", lambda path: calls.append(path) or real(path))
    deck_engine._parsed.cache_clear()
    path = make_pptx(tmp_path / "talk.pptx")
    first, second = read_deck(path), read_deck(path)
    assert len(calls) == 1 and first.pages == second.pages and second.path == path
    second.pages.clear()  # a caller's list is its own: the cached deck keeps its pages
    assert len(read_deck(path).pages) == len(NOTES)
    make_pptx(path, notes=["Changed notes.", "Two.", "Three."])
    assert read_deck(path).pages[0].notes == "Changed notes." and len(calls) == 2


def test_pdf_pages_render_at_the_video_size_letterboxed_in_their_own_colour(tmp_path):
    deck = read_deck(make_pdf(tmp_path / "talk.pdf", size=(400, 400)))  # square pages, 16:9 video
    files = render_pages(deck, W, H, tmp_path / "cache")
    assert len(files) == 3
    for file, colour in zip(files, COLOURS):
        pixels = np.asarray(Image.open(file))
        assert pixels.shape == (H, W, 3)
        assert np.abs(pixels[H // 2, W // 2].astype(int) - colour).max() <= 3
        assert np.abs(pixels[H // 2, 2].astype(int) - colour).max() <= 3  # the bars match the page


def test_rendered_pages_are_reused_not_drawn_again(tmp_path, monkeypatch):
    deck = read_deck(make_pdf(tmp_path / "talk.pdf"))
    first = render_pages(deck, W, H, tmp_path / "cache")
    monkeypatch.setattr(deck_engine, "_draw_page", lambda *a: pytest.fail("drawn twice"))
    assert render_pages(deck, W, H, tmp_path / "cache") == first
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(not HAVE_OFFICE, reason="LibreOffice is not installed (scripts/setup.sh installs it)")
def test_a_pptx_is_drawn_by_libreoffice_once_for_the_whole_deck(tmp_path):
    deck = read_deck(make_pptx(tmp_path / "talk.pptx"))
    files = render_pages(deck, W, H, tmp_path / "cache")
    for file, colour in zip(files, COLOURS):
        pixels = np.asarray(Image.open(file)).astype(int)
        assert np.abs(pixels[H - 10, W // 2] - colour).max() <= 6  # the slide's own fill


@pytest.mark.skipif(not HAVE_OFFICE, reason="LibreOffice is not installed")
def test_libreoffice_that_does_not_finish_is_stopped_with_one_line(tmp_path):
    deck = read_deck(make_pptx(tmp_path / "talk.pptx"))
    with pytest.raises(DeckError, match="did not finish talk.pptx within 0 s; export the deck to PDF"):
        render_pages(deck, W, H, tmp_path / "cache", timeout_s=0.05)
    assert not list((tmp_path / "cache").iterdir())  # its work folder went with it
    deadline = time.monotonic() + 10  # SIGKILLed processes are gone once the kernel reaps them
    while subprocess.run(["pgrep", "-f", f"{tmp_path}/talk.pptx"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "LibreOffice is still running"
        time.sleep(0.05)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.with_suffix(".pptx").write_bytes(b""), "is empty"),
    (lambda p: p.with_suffix(".pptx").write_bytes(b"PK\x03\x04 not really a zip"), "corrupt or password-protected"),
    (lambda p: p.with_suffix(".pdf").write_bytes(b"%PDF-1.4 broken"), "cannot be opened"),
    (lambda p: p.with_suffix(".key").write_bytes(b"x"), "must be .pptx, .pdf or .md"),
])
def test_bad_decks_are_one_clear_line(tmp_path, make, message):
    make(tmp_path / "deck")
    path = next(tmp_path.iterdir())
    with pytest.raises(DeckError, match=message):
        read_deck(path)


def test_a_deck_of_too_many_pages_and_notes_of_too_many_sections_are_refused(tmp_path):
    with pytest.raises(DeckError, match="has 301 pages; a deck may have at most 300"):
        read_deck(make_pdf(tmp_path / "book.pdf", colours=[(255, 255, 255)] * 301, size=(20, 20)))
    notes = tmp_path / "notes.md"
    notes.write_text("one\n---\ntwo\n---\nthree\n---\nfour\n")
    with pytest.raises(DeckError, match="4 sections but the deck has 3 pages"):
        read_notes(notes, 3)
    assert read_notes(notes, 5)[-1] == ""


def test_page_choices_are_read_as_people_write_them():
    assert parse_pages("", 4) == [0, 1, 2, 3]
    assert parse_pages("2-3, 1", 4) == [1, 2, 0]
    with pytest.raises(DeckError, match="the deck has pages 1 to 4"):
        parse_pages("5", 4)
    with pytest.raises(DeckError, match="write page numbers like"):
        parse_pages("two", 4)


def test_the_presenter_moves_off_slide_content_and_says_so():
    page = np.full((360, 640, 3), 250, np.uint8)
    pip = Pip(position="top-right", size=1 / 6, shape="square", margin=10)  # Paper2Video's default
    assert place(page, pip).corner == "top-right" and place(page, pip).note == ""
    page[0:100, 500:640] = 20  # a figure in the top right corner
    moved = place(page, pip)
    assert moved.corner == "top-left" and "content under top-right" in moved.note
    page[4:-4, 4:-4] = 20  # content everywhere inside a white rim: the asked corner, said so
    assert "no corner is free" in place(page, Pip(size=0.3)).note


def test_a_pdf_deck_narrated_from_notes_renders_each_page_for_its_narration_with_the_presenter_in_its_box(in_tmp):
    make_pdf(in_tmp / "talk.pdf", busy_corner=None)
    (in_tmp / "talk.notes.md").write_text("\n---\n".join(NOTES))
    script, plan = PodiumDeck().load("talk.pdf", W, H, notes="talk.notes.md", hold_seconds=1.0)
    assert [s.sentences for s in script.segments] == [["This is the red slide."], [],
                                                       ["Blue is last.", "It has two sentences."]]
    speech, audio = PodiumPiperTTS().speak(script, "piper-en_US-joe-medium", 1.0, 0.3, noise_scale=0, noise_w=0)
    (slides,) = PodiumDeckSlides().slides(plan, speech, W, H)

    class Presenter:  # a magenta square the size of the box: where its pixels land is checked
        width, height = 44, 44

        def render(self, t):
            return np.full((44, 44, 3), (255, 0, 255), np.uint8)

    (visual,) = PodiumCompose().compose(slides, Presenter(), "bottom-left", 44 / H, "square", 0, 8)
    saved = PodiumSaveVideo().save(visual, audio, FPS, "deck", "none")["ui"]["images"][0]
    video = in_tmp / "out" / saved["subfolder"] / saved["filename"]
    streams = {s["codec_type"]: s for s in ffprobe(video)["streams"]}
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= 1 / FPS
    bounds = speech.segment_bounds
    assert 0.95 <= bounds[1][1] - bounds[1][0] <= 1.05  # the silent page held for its hold time
    for (start, end), colour in zip(bounds, COLOURS):
        for t in (start + 1.5 / FPS, (start + end) / 2, end - 1.5 / FPS):
            frame = frame_at(video, t, W, H).astype(int)
            assert np.abs(frame[20, W - 20] - colour).max() <= 12, (t, colour)  # the page, timed
            assert np.abs(frame[H - 8 - 22, 8 + 22] - (255, 0, 255)).max() <= 16  # inside the box
    frame = frame_at(video, bounds[0][0] + 0.5, W, H).astype(int)
    magenta = (np.abs(frame - (255, 0, 255)).max(axis=-1) <= 40)
    ys, xs = np.nonzero(magenta)
    assert ys.min() >= H - 8 - 44 - 2 and xs.max() <= 8 + 44 + 2  # nowhere outside its box


def test_pip_visual_keeps_one_place_per_page():
    class Page:
        width, height = 320, 180

        def __init__(self):
            self.frame = np.full((180, 320, 3), 240, np.uint8)
            self.frame[:60, 220:] = 0  # content top right

        def page_key(self, t):
            return 0

        def render(self, t):
            return self.frame

    class Face:
        width = height = 40

        def render(self, t):
            return np.zeros((40, 40, 3), np.uint8)

    visual = PipVisual(Page(), Face(), Pip(size=0.25))
    visual.render(0.0), visual.render(1.0)
    assert visual.notes == ["page 1: moved to top-left: content under top-right"]  # once, not per frame


def test_burned_captions_keep_out_of_a_bottom_corner_box(in_tmp):
    from podium.nodes.subtitles import PodiumSubtitles

    w, h = 480, 270
    make_pdf(in_tmp / "talk.pdf", colours=[(30, 30, 90)], size=(480, 270))
    (in_tmp / "n.md").write_text("This is a long sentence that fills a whole caption line from side to side.")
    script, plan = PodiumDeck().load("talk.pdf", w, h, notes="n.md")
    speech, audio = PodiumPiperTTS().speak(script, "piper-en_US-joe-medium", 1.0, 0.3, noise_scale=0, noise_w=0)
    (slides,) = PodiumDeckSlides().slides(plan, speech, w, h)

    class Presenter:
        width = height = 80

        def render(self, t):
            return np.full((80, 80, 3), (30, 30, 90), np.uint8)  # the page's colour: captions show

    (cues,) = PodiumSubtitles().cue(speech, 60)
    (visual,) = PodiumCompose().compose(slides, Presenter(), "bottom-right", 0.3, "square", 0, 10)
    saved = PodiumSaveVideo().save(visual, audio, FPS, "cap", "srt+burn", subtitles=cues)["ui"]["images"][0]
    frame = frame_at(in_tmp / "out" / saved["subfolder"] / saved["filename"], 1.5, w, h).astype(int)
    white = frame.min(axis=-1) > 200
    box_w = Pip(size=0.3).box_size(w, h)[0]
    assert white[h // 2:].sum() > 50  # the caption is there
    assert not white[:, w - 10 - box_w:].any() and not white[:, :10 + box_w].any()  # clear of both sides
