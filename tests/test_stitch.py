"""Stitching real clips made by the pack's own encoder: exact total length, order, subtitles."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import srt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "custom_nodes"))
from podium.engines.output import encode_video  # noqa: E402

from orchestrator.render.stitch import Clip, stitch  # noqa: E402
from podium.errors import PodiumError  # noqa: E402

FPS = 25
RATE = 22050
TONES = [300.0, 600.0, 1200.0]
FRAMES = [25, 38, 51]


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def decode_audio(path, rate=16000):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    made = []
    for i, (tone, frames) in enumerate(zip(TONES, FRAMES)):
        t = np.arange(int(frames / FPS * RATE)) / RATE
        samples = (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
        shade = 60 * (i + 1)
        path = folder / f"clip{i}.mp4"
        encode_video(path, lambda s, shade=shade: np.full((90, 160, 3), shade, np.uint8), (160, 90),
                     samples, RATE, FPS)
        srt_path = folder / f"clip{i}.srt"
        srt_path.write_text(f"1\n00:00:00,100 --> 00:00:00,900\nclip {i}\n")
        made.append(Clip(path, frames, FPS, srt_path))
    return made


def dominant_tone(samples, rate=16000):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()]


def test_stitched_length_is_the_sum_and_order_is_kept(clips, tmp_path):
    out = stitch(clips, tmp_path / "all.mp4")
    streams = probe(out)
    total = sum(FRAMES) / FPS
    assert int(streams["video"]["nb_read_frames"]) == sum(FRAMES)
    assert abs(float(streams["audio"]["duration"]) - total) <= 1 / FPS
    assert abs(float(streams["video"]["duration"]) - total) <= 1 / FPS
    audio = decode_audio(out)
    start = 0.0
    for tone, frames in zip(TONES, FRAMES):  # each clip's tone sits in its own time range
        middle = start + frames / FPS / 2
        window = audio[int((middle - 0.15) * 16000): int((middle + 0.15) * 16000)]
        assert abs(dominant_tone(window) - tone) < 20
        start += frames / FPS
    assert not list(tmp_path.glob(".*part*"))


def test_subtitles_are_shifted_to_their_clip(clips, tmp_path):
    stitch(clips, tmp_path / "all.mp4")
    text = (tmp_path / "all.srt").read_text()
    assert "00:00:00,100 --> 00:00:00,900\nclip 0" in text
    assert "00:00:01,100 --> 00:00:01,900\nclip 1" in text  # clip 1 starts at 25/25 = 1.0 s
    assert "00:00:02,620 --> 00:00:03,420\nclip 2" in text  # clip 2 starts at 63/25 = 2.52 s


def test_loudness_is_normalised(clips, tmp_path):
    quiet = stitch(clips, tmp_path / "raw.mp4", normalize=False)
    loud = stitch(clips, tmp_path / "norm.mp4")
    rms = [float(np.sqrt(np.mean(decode_audio(p) ** 2))) for p in (quiet, loud)]
    # -16 LUFS for a sine is about 0.16 RMS; the input tones are 0.3/sqrt(2) = 0.21
    assert rms[1] != pytest.approx(rms[0], rel=0.05)
    assert 0.08 < rms[1] < 0.3


def test_crossfade_shortens_by_the_overlaps(clips, tmp_path):
    out = stitch(clips, tmp_path / "fade.mp4", crossfade_s=0.2)
    streams = probe(out)
    total = sum(FRAMES) / FPS - 2 * 0.2
    assert abs(float(streams["video"]["duration"]) - total) <= 1 / FPS
    assert abs(float(streams["audio"]["duration"]) - total) <= 1 / FPS
    text = (tmp_path / "fade.srt").read_text()
    assert "00:00:00,900 --> 00:00:01,700\nclip 1" in text  # starts at 1.0 - 0.2


def test_a_failed_stitch_leaves_the_old_file(clips, tmp_path):
    out = tmp_path / "all.mp4"
    out.write_bytes(b"the user's earlier video")
    broken = Clip(tmp_path / "missing.mp4", 25, FPS)
    with pytest.raises(PodiumError, match="missing.mp4|ffmpeg"):
        stitch([clips[0], broken], out)
    assert out.read_bytes() == b"the user's earlier video"
    assert not list(tmp_path.glob(".*part*"))


def test_segment_pcm_is_encoded_once(tmp_path):
    """Segments as the orchestrator gets them (PodiumSaveVideo `intermediate`: H.264 + 16-bit
    PCM in a .mov): the stitched MP4's AAC is the one encode of the segments' PCM joined, sample
    for sample the same as encoding that join directly, with no earlier lossy generation; and
    its audio lasts as long as its video, to the frame."""
    rate, rng = 48000, np.random.default_rng(3)
    clips, pcm = [], []
    for i, (tone, frames) in enumerate(zip(TONES, FRAMES)):
        n = int(frames / FPS * rate) - 137  # a little short: padded to the frame
        t = np.arange(n) / rate
        samples = (0.3 * np.sin(2 * np.pi * tone * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
        path = tmp_path / f"seg{i}.mov"
        encode_video(path, lambda s, i=i: np.full((90, 160, 3), 50 * (i + 1), np.uint8), (160, 90),
                     samples, rate, FPS, preset="h264_pcm")
        assert probe(path)["audio"]["codec_name"] == "pcm_s16le"
        decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
                                 capture_output=True, check=True).stdout
        pcm.append(np.frombuffer(decoded, "<i2"))
        assert len(pcm[-1]) == round(frames / FPS * rate)  # exactly the video's length
        clips.append(Clip(path, frames, FPS))
    out = stitch(clips, tmp_path / "talk.mp4", normalize=False)

    joined = tmp_path / "joined.f32"
    (np.concatenate(pcm).astype(np.float32) / 32768.0).tofile(joined)
    reference = tmp_path / "once.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", str(joined),
                    "-c:a", "aac", "-b:a", "160k", "-ar", str(rate), "-ac", "1", str(reference)], check=True)
    ours, once = decode_audio(out, rate), decode_audio(reference, rate)
    assert len(ours) == len(once) and np.array_equal(ours, once)
    streams = probe(out)
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    assert int(streams["video"]["nb_read_frames"]) == sum(FRAMES)
    assert abs(float(streams["audio"]["duration"]) - sum(FRAMES) / FPS) <= 1 / FPS
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= 1 / FPS
    # The same segments as AAC MP4s (what the orchestrator used to make) lose more: their
    # stitched audio has been through two encodes, and is further from the PCM than ours.
    aac_clips = []
    for i, clip in enumerate(clips):
        path = tmp_path / f"seg{i}.mp4"
        encode_video(path, lambda s, i=i: np.full((90, 160, 3), 50 * (i + 1), np.uint8), (160, 90),
                     pcm[i].astype(np.float32) / 32768.0, rate, FPS)
        aac_clips.append(Clip(path, clip.frames, FPS))
    twice = decode_audio(stitch(aac_clips, tmp_path / "twice.mp4", normalize=False), rate)
    exact = np.concatenate(pcm).astype(np.float32) / 32768.0
    error = lambda decoded: float(np.sqrt(np.mean((decoded[:len(exact)] - exact) ** 2)))
    assert error(ours) < 0.8 * error(twice), (error(ours), error(twice))


def test_offsets_round_to_the_nearest_millisecond(tmp_path):
    """At 30 fps a clip of 38 frames ends at 1.26667 s: the next clip's cues move by 1.267 s."""
    from orchestrator.render.stitch import merge_subtitles

    for i in range(2):
        (tmp_path / f"c{i}.srt").write_text(f"1\n00:00:00,100 --> 00:00:00,900\nclip {i}\n")
    clips = [Clip(tmp_path / f"c{i}.mp4", 38, 30, tmp_path / f"c{i}.srt") for i in range(2)]
    merged = list(srt.parse(merge_subtitles(clips, [0.0, 38 / 30])))
    assert [(c.index, c.start.total_seconds(), c.end.total_seconds(), c.content) for c in merged] == \
        [(1, 0.1, 0.9, "clip 0"), (2, 1.367, 2.167, "clip 1")]
