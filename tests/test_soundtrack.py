"""The soundtrack: music looped without a click, ducked under the voice and back up in the
pauses (measured on the stems), the mix at the loudness target (ffmpeg's ebur128, true peak);
[sfx: ...] cues parsed out of the narration and placed at their sentences; the nodes; and the
CLI's draft run with --music FILE (an MP4 whose streams agree, at the target loudness)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import FFMPEG, ffprobe, run_cli, streams
from orchestrator.render import soundtrack as orchestrated
from orchestrator.render.stitch import Clip
from podium.engines import soundtrack
from podium.engines.guided_answer import parse_answer, to_script
from podium.engines.script_files import script_to_markdown
from podium.engines.script import parse_script
from podium.errors import PodiumError, UsageError

RATE = 48000
REPO = Path(__file__).resolve().parents[1]


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file, as a reviewer measures it."""
    log = subprocess.run([FFMPEG, "-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True).stderr
    summary = log[log.rfind("Summary:"):]
    return (float(re.search(r"I:\s*(-?[\d.]+) LUFS", summary).group(1)),
            float(re.search(r"Peak:\s*(-?[\d.]+) dBFS", summary).group(1)))


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def tone_track(seconds: float, rate: int = RATE) -> np.ndarray:
    """Music-like: three partials with slow beating, a length that ends mid-cycle (so a plain
    loop would jump)."""
    t = np.arange(int(seconds * rate)) / rate
    env = 0.7 + 0.3 * np.sin(2 * np.pi * 0.9 * t)
    return (env * (0.25 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 277.2 * t + 1)
                   + 0.1 * np.sin(2 * np.pi * 329.6 * t + 2))).astype(np.float32)


def voice_with_pauses(rng) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
    """Speech-like bursts (noise at a syllable rhythm) and pauses: (voice, speech spans,
    pause spans of at least 1.2 s)."""
    parts, speech, pauses, at = [np.zeros(int(0.4 * RATE), np.float32)], [], [], int(0.4 * RATE)
    for seconds, gap in [(1.6, 1.4), (1.2, 0.3), (1.4, 1.6), (1.0, 0.4)]:
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        burst = (0.25 * rng.standard_normal(n) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32)
        speech.append((at, at + n))
        if gap >= 1.2:
            pauses.append((at + n, at + n + int(gap * RATE)))
        parts += [burst, np.zeros(int(gap * RATE), np.float32)]
        at += n + int(gap * RATE)
    return np.concatenate(parts), speech, pauses


def step_ratio(x: np.ndarray, centre: int, half: int = 480) -> float:
    """The largest sample-to-sample step near `centre`, over the RMS there: a click is a step
    far larger than the signal's own."""
    w = x[max(centre - half, 0):centre + half]
    return float(np.abs(np.diff(w)).max() / np.sqrt(np.mean(np.square(w)) + 1e-12))


# --- the engine -------------------------------------------------------------------------------

def test_a_short_track_loops_without_a_click_at_the_seam():
    track = tone_track(1.37)
    looped = soundtrack.fit_length(track, RATE, 5 * RATE, crossfade_s=0.3)
    assert len(looped) == 5 * RATE
    overlap, seam = soundtrack.loop_points(soundtrack.trim_silence(track, RATE), RATE, 0.3)
    seams = list(range(seam, len(looped) - overlap, seam))
    assert len(seams) >= 3
    elsewhere = max(step_ratio(looped, c) for c in range(2400, seams[0] - 2400, 2400))
    at_seams = max(step_ratio(looped, s + k) for s in seams for k in range(0, overlap + 1, overlap // 4))
    assert at_seams <= 1.2 * elsewhere, (at_seams, elsewhere)
    # the same measure finds the click a plain repetition makes
    tiled = np.tile(track, 4)
    assert step_ratio(tiled, len(track)) > 3 * elsewhere
    # equal power: the level holds through the cross-fade (within 1.5 dB of the track's)
    for s in seams:
        assert abs(db(looped[s:s + overlap]) - db(track)) < 1.5


def test_sections_with_their_own_music_meet_in_an_equal_power_cross_fade():
    t = np.arange(int(3.7 * RATE)) / RATE  # long enough not to loop: only the sections' fade
    high = (0.3 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    low = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    bed = soundtrack.sections_bed([(low, 0, 3 * RATE), (high, 3 * RATE, 5 * RATE)], RATE, 5 * RATE,
                                  loop_crossfade_s=0.2, crossfade_s=1.0)
    assert len(bed) == 5 * RATE

    def share(x, f):  # how much of a stretch's power is at frequency f
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        k = int(round(f * len(x) / RATE))
        return spectrum[k - 3:k + 4].sum() / spectrum.sum()

    assert share(bed[RATE:2 * RATE], 200) > 0.95 and share(bed[int(3.6 * RATE):int(4.6 * RATE)], 880) > 0.95
    levels = [db(bed[i:i + 2400]) for i in range(int(2.3 * RATE), int(3.7 * RATE), 2400)]
    assert max(levels) - min(levels) < 1.5  # no dip or bump where they meet


def test_a_long_track_is_trimmed_and_silence_at_its_ends_is_dropped():
    track = np.concatenate([np.zeros(RATE, np.float32), tone_track(3.0), np.zeros(RATE, np.float32)])
    fitted = soundtrack.fit_length(track, RATE, 2 * RATE)
    assert len(fitted) == 2 * RATE and db(fitted[:4800]) > -30  # it starts with the music
    with pytest.raises(UsageError, match="silent"):
        soundtrack.fit_length(np.zeros(RATE, np.float32), RATE, RATE)
    with pytest.raises(UsageError, match="too short"):
        soundtrack.fit_length(tone_track(0.2), RATE, 4 * RATE)


def test_music_is_ducked_under_the_voice_and_back_up_in_pauses_and_the_mix_is_at_target():
    voice, speech, pauses = voice_with_pauses(np.random.default_rng(1))
    settings = soundtrack.MixSettings(fade_in_s=0.0, fade_out_s=0.0)
    stems = {}
    mixed = soundtrack.mix(voice, RATE, tone_track(2.3), settings=settings, stems=stems)
    music, level = stems["music"], stems["music_not_ducked"]
    assert len(mixed) == len(voice) == len(music)
    assert soundtrack.active_db(level, RATE) == pytest.approx(soundtrack.active_db(voice, RATE) + settings.music_volume_db, abs=0.1)
    for start, end in speech:
        assert db(music[start:end]) <= db(voice[start:end]) - 12.0, "music not ducked while speaking"
        assert db(music[start:end]) == pytest.approx(db(level[start:end]) - settings.duck_db, abs=0.5)
    for start, end in pauses:  # the middle of each long pause: the music is back up
        middle = slice(start + int(0.6 * RATE), end - int(0.3 * RATE))
        assert db(music[middle]) == pytest.approx(db(level[middle]), abs=0.2)
    loudness, peak = soundtrack.measure(mixed, RATE)
    assert abs(loudness - settings.loudness_lufs) <= 0.5 and peak <= settings.true_peak_db


def test_another_loudness_target_is_met_from_a_clipping_input_with_the_true_peak_under_the_ceiling():
    rng = np.random.default_rng(2)
    voice, _, _ = voice_with_pauses(rng)
    mixed = soundtrack.mix(voice * 3.5, RATE, tone_track(1.9) * 3,  # peaks far over full scale
                           settings=soundtrack.MixSettings(loudness_lufs=-23.0))
    loudness, peak = soundtrack.measure(mixed, RATE)
    assert abs(loudness + 23.0) <= 0.5 and peak <= -1.0
    with pytest.raises(UsageError, match="loudness"):
        soundtrack.MixSettings(loudness_lufs=3).check()


def test_a_file_that_is_not_audio_is_one_line(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not music\n")
    with pytest.raises(UsageError) as caught:
        soundtrack.decode(notes, RATE)
    assert "cannot be read as audio" in str(caught.value) and "\n" not in str(caught.value)


# --- cues in the script -----------------------------------------------------------------------

SCRIPT = """# Talk
[music: calm piano, slow]

[sfx: whoosh] Welcome everyone! Thank you for coming [sfx: Applause]. Today we talk.

## Part two
[music: upbeat synth]
We did it [sfx: bell] together. The end. [sfx: applause]
"""


def test_sfx_marks_are_never_spoken_and_the_script_json_round_trips():
    script = parse_script(SCRIPT)
    first, second = script.segments
    assert script.music == "calm piano, slow" and (first.music, second.music) == ("", "upbeat synth")
    assert first.sentences == ["Welcome everyone!", "Thank you for coming.", "Today we talk."]
    assert [(c.sound, c.sentence, c.at) for c in first.cues] == [("whoosh", 0, 0.0), ("Applause", 1, 1.0)]
    assert [(c.sound, c.sentence, c.at) for c in second.cues] == [("bell", 0, 0.75), ("applause", 1, 1.0)]
    assert "sfx" not in " ".join(script.sentences) and "music" not in " ".join(script.sentences)
    data = script.to_dict()
    assert data["music"] == "calm piano, slow" and data["segments"][1]["music"] == "upbeat synth"
    assert "[sfx: bell]" in data["segments"][1]["text"]
    again = parse_script(json.dumps(data))
    assert again.to_dict() == data
    assert [s.cues for s in again.segments] == [s.cues for s in script.segments]
    markdown = parse_script(script_to_markdown(script))  # the .md beside a guided video too
    assert [s.cues for s in markdown.segments] == [s.cues for s in script.segments]
    assert markdown.music == script.music and markdown.segments[1].music == "upbeat synth"


def test_the_llm_answer_carries_a_music_prompt_and_sound_effects_at_their_sentences():
    answer = json.dumps({
        "title": "Bees", "stage": "a meadow", "music": "light acoustic guitar, warm",
        "segments": [{"slide_title": "Hello", "narration": "Bees are busy. They make honey.", "bullets": ["busy"]},
                     {"slide_title": "More", "narration": "Listen to the hive [sfx: buzzing] now.", "bullets": ["hive"]}],
        "sound_effects": [{"sound": "birdsong", "sentence": "They make honey"},
                          {"sound": "thunder", "sentence": "words that are nowhere"}],
    })
    script = to_script(parse_answer(answer))
    assert script.music == "light acoustic guitar, warm"
    assert [(c.sound, c.sentence, c.at) for c in script.segments[0].cues] == [("birdsong", 1, 0.0)]
    assert script.segments[1].sentences == ["Listen to the hive now."]  # the mark is not spoken
    assert [c.sound for c in script.segments[1].cues] == ["buzzing"]
    assert parse_script(json.dumps(script.to_dict())).to_dict() == script.to_dict()


def test_cues_fall_at_their_sentence_times_from_the_segment_subtitles(tmp_path):
    script = parse_script("Welcome everyone! Thank you for coming [sfx: applause].\n\n[sfx: bell] The end.")
    srt_path = tmp_path / "a.srt"
    srt_path.write_text("1\n00:00:00,250 --> 00:00:01,100\nWelcome everyone!\n\n"
                        "2\n00:00:01,400 --> 00:00:02,000\nThank you for\n\n"
                        "3\n00:00:02,000 --> 00:00:02,600\ncoming.\n\n")
    clips = [Clip(tmp_path / "a.mov", 75, 25.0, srt_path), Clip(tmp_path / "b.mov", 50, 25.0, None)]
    times = orchestrated.cue_times(script, clips, [0.0, 3.0])
    assert times[0] == ("applause", pytest.approx(2.6))  # the end of the sentence (two cues)
    assert times[1] == ("bell", pytest.approx(3.0 + orchestrated.LEAD_S))  # no subtitles: speech start


# --- nodes ------------------------------------------------------------------------------------

def write_track(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0",
                    str(path)], input=tone_track(seconds).tobytes(), check=True)
    return path


def test_music_file_node_is_confined_to_the_input_folder_inside_comfyui(tmp_path, monkeypatch):
    from podium.nodes.soundtrack import PodiumMix, PodiumMusicFile

    (tmp_path / "input").mkdir()
    write_track(tmp_path / "input" / "bed.ogg")
    write_track(tmp_path / "secret.flac")
    fp = types.ModuleType("folder_paths")
    fp.get_input_directory = lambda: str(tmp_path / "input")
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    (music,) = PodiumMusicFile().load("bed.ogg")
    assert music["sample_rate"] == RATE and abs(np.asarray(music["waveform"]).shape[-1] - 2 * RATE) < 2000
    for outside in ("../secret.flac", str(tmp_path / "secret.flac")):
        with pytest.raises(PodiumError, match="not a file this server can use"):
            PodiumMusicFile().load(outside)
    voice, _, _ = voice_with_pauses(np.random.default_rng(3))
    voice16 = voice[::3].copy()  # 16 kHz: the node resamples the voice to the mix's rate
    (mixed,) = PodiumMix().mix({"waveform": voice16.reshape(1, 1, -1), "sample_rate": 16000}, music,
                               music_volume=-8.0, duck=12.0, loudness=-18.0)
    samples = np.asarray(mixed["waveform"]).reshape(-1)
    assert mixed["sample_rate"] == RATE and abs(len(samples) - len(voice)) <= 3
    assert abs(soundtrack.measure(samples, RATE)[0] + 18.0) <= 0.5


def test_the_draft_music_workflow_runs_in_process(tmp_path):
    from orchestrator.render.embedded import run_graph
    from orchestrator.graphs.workflow import bind, load_workflow

    graph = bind(load_workflow("direct_music"), {
        ("Music file", "file"): str(write_track(tmp_path / "bed.wav", 1.5)),
        ("Presenter", "width"): 160, ("Presenter", "height"): 90, ("Script", "text"): "Hello there. A short test.",
    })
    outputs = run_graph(graph, tmp_path / "out")
    item = next(i for ui in outputs.values() for i in ui.get("images", []))
    video = tmp_path / "out" / item["subfolder"] / item["filename"]
    loudness, peak = ebur128(video)
    assert abs(loudness + 16.0) <= 1.0 and peak <= -1.0


# --- the command line ---------------------------------------------------------------------------

def test_cli_draft_with_a_music_file_and_a_sound_cue(tmp_path):
    music = write_track(tmp_path / "bed.mp3", 2.0)
    ding = write_track(tmp_path / "ding.wav", 0.6)
    video = tmp_path / "talk.mp4"
    rc, out, err = run_cli("generate", "--text", "Hello there. This is the music test. [sfx: ding] It ends here.",
                           "--music", music, "--sfx", f"ding={ding}", "--subtitles", "none",
                           "--size", "160x90", "--quiet", "--out", video, tmpdir=tmp_path / "tmp")
    assert rc == 0, err
    info = ffprobe(video)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / 25 and a["codec_name"] == "aac"
    loudness, peak = ebur128(video)
    assert abs(loudness + 16.0) <= 1.0 and peak <= -1.0
    assert not video.with_suffix(".srt").exists()  # the cue's timing did not publish subtitles
    assert "warning" not in err


def test_cli_refuses_a_music_file_that_is_not_audio_in_one_line(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("la la la\n")
    rc, out, err = run_cli("generate", "--text", "Hi.", "--music", notes, "--out", tmp_path / "v.mp4",
                           tmpdir=tmp_path / "tmp")
    assert rc == 2 and err.count("\n") == 1 and "--music" in err and "cannot be read as audio" in err
    assert not (tmp_path / "v.mp4").exists()


def test_stitch_mixes_the_soundtrack_into_its_one_encode_with_cross_faded_segments(tmp_path):
    """(Without a cross-fade: the CLI test below.)"""
    crossfade = 0.3
    from orchestrator.render.stitch import stitch
    from podium.engines.output import encode_video

    rng = np.random.default_rng(4)
    clips = []
    for i, frames in enumerate((40, 35)):
        voice = (0.2 * rng.standard_normal(int(frames / 25 * 24000))).astype(np.float32)
        path = tmp_path / f"c{i}.mov"
        encode_video(path, lambda t: np.full((90, 160, 3), 80, np.uint8), (160, 90), voice, 24000, 25,
                     preset="h264_pcm")
        clips.append(Clip(path, frames, 25.0))
    heard = {}

    def mixer(narration):
        heard["samples"] = len(narration)
        return soundtrack.mix(narration, RATE, tone_track(1.0), settings=soundtrack.MixSettings(loudness_lufs=-20.0))

    out = stitch(clips, tmp_path / "v.mp4", crossfade_s=crossfade, mixer=mixer)
    expected = (75 / 25 - crossfade) * RATE
    assert abs(heard["samples"] - expected) <= 2  # the joined (cross-faded) narration, whole
    info = ffprobe(out)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / 25 and abs(v["duration"] - expected / RATE) <= 1 / 25
    loudness, peak = ebur128(out)
    assert abs(loudness + 20.0) <= 1.0 and peak <= -1.0


def test_cli_music_auto_runs_the_music_graph_once_with_the_scripts_prompt(tmp_path, monkeypatch, capsys):
    """--music auto through the partner's real ACE-Step pipeline, tiny and random (tests/
    tiny_music.py), in-process: the music graph runs once per video and its track is mixed."""
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "AceStepPipeline"):
        pytest.skip("diffusers without AceStepPipeline")
    import tiny_music
    from podium.models import load_registry

    models = tmp_path / "models"
    tiny_music.build(models / load_registry().get("acestep-v15-xl-turbo").folder)
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(models))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    script = tmp_path / "talk.md"
    script.write_text("# Bees\n\n[music: light acoustic guitar]\n\nBees are busy. They make honey.\n\n"
                      "Then they rest.\n")
    video, cache = tmp_path / "bees.mp4", tmp_path / "cache"
    from orchestrator.cli.main import main  # in this process: torch is loaded already, once is enough

    assert main(["generate", "--script", str(script), "--music", "auto", "--size", "160x90", "--quiet",
                 "--cache-dir", str(cache), "--out", str(video)]) == 0
    made = [p for p in cache.iterdir() if p.name.startswith("music-")]
    assert len(made) == 1  # one track for the two segments
    info = ffprobe(video)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / 25
    loudness, peak = ebur128(video)
    assert abs(loudness + 16.0) <= 1.0 and peak <= -1.0
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "empty"))  # no model: said before any work
    capsys.readouterr()
    assert main(["generate", "--script", str(script), "--music", "auto", "--cache-dir", str(cache),
                 "--out", str(tmp_path / "b.mp4")]) == 2
    err = capsys.readouterr().err
    assert "podium models pull acestep-v15-xl-turbo" in err and err.count("\n") == 1


# --- a long upload decodes only what the video needs (issue 18.7) -----------------------------


@pytest.fixture
def hour_of_silence(tmp_path):
    """An hour of silent FLAC: 0.7 MB on disk, 690 MB as 48 kHz float32."""
    path = tmp_path / "input" / "hour.flac"
    path.parent.mkdir()
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3600",
                    "-c:a", "flac", str(path)], check=True)
    assert path.stat().st_size < 2_000_000
    return path


def test_music_file_node_decodes_only_as_long_as_the_voice_it_goes_under(hour_of_silence, monkeypatch):
    import tracemalloc

    from podium.nodes import soundtrack as node

    monkeypatch.chdir(hour_of_silence.parent)
    voice = {"waveform": np.zeros((1, 1, 2 * 16000), np.float32), "sample_rate": 16000}  # 2 s
    tracemalloc.start()
    try:
        (music,) = node.PodiumMusicFile().load("hour.flac", voice=voice)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    length = np.asarray(music["waveform"]).shape[-1]
    assert length <= (2 + node.LEAD_MARGIN_S) * RATE + RATE
    assert peak < 3 * length * 4 + (8 << 20), f"peak {peak / 1e6:.0f} MB for {length * 4 / 1e6:.0f} MB of samples"
    # no voice linked and max_seconds 0: capped (at 20 minutes; 40 s here to keep the test light)
    monkeypatch.setattr(node, "MAX_TRACK_S", 40.0)
    (music,) = node.PodiumMusicFile().load("hour.flac")
    assert np.asarray(music["waveform"]).shape[-1] <= 41 * RATE
    (music,) = node.PodiumMusicFile().load("hour.flac", max_seconds=3.0, voice=voice)  # the smaller wins
    assert abs(np.asarray(music["waveform"]).shape[-1] - 3 * RATE) <= RATE // 10


def test_decode_streams_into_one_array_of_what_was_asked(hour_of_silence):
    import tracemalloc

    tracemalloc.start()
    try:
        samples = soundtrack.decode(hour_of_silence, RATE, max_seconds=60.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(len(samples) - 60 * RATE) <= RATE // 10 and samples.dtype == np.float32
    # before: the whole pipe's bytes and a copy of them (2x); now the samples' array and a block
    assert peak < 1.2 * samples.nbytes + (4 << 20), f"peak {peak / 1e6:.1f} MB for {samples.nbytes / 1e6:.1f} MB"


def test_sound_effects_come_from_stable_audio_open_when_it_is_installed(tmp_path, monkeypatch):
    """[sfx:] cues: Stable Audio Open (an effects model) when its files are in the models
    folder of the process that makes them, not for --commercial (non-commercial licence), and
    not guessed for a ComfyUI server; else the sfx graph's own model (ACE-Step)."""
    from orchestrator.render.soundtrack import SFX_MODEL_PREFERRED, sfx_model

    here = type("InProcess", (), {"in_process": True})()
    server = type("Server", (), {"in_process": False})()
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path))
    assert sfx_model(here, commercial=False) == "acestep-v15-xl-turbo"  # not installed
    folder = tmp_path / "diffusers" / "stable-audio-open-1.0"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    assert sfx_model(here, commercial=False) == SFX_MODEL_PREFERRED
    assert sfx_model(here, commercial=True) == "acestep-v15-xl-turbo"
    assert sfx_model(server, commercial=False) == "acestep-v15-xl-turbo"
