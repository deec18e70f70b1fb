"""The cinema chunk arithmetic (engines/chunks.py) for every audio length from 0.05 s to 30 s in
10 ms steps, on each graph, checked by re-doing what ComfyUI's nodes do with those chunks
(comfy_extras/nodes_wan.py) rather than trusting the plan's own sums:

- InfiniteTalk: a later chunk needs >= 9 previous frames ("Not enough previous frames"), reads
  the audio from len(previous) - 9, yields `length` frames of which the first 9 are re-made;
- S2V: each chunk's audio window is [4 x latents so far, + 4 x its latents) of a bucket padded to
  whole windows (get_audio_embed_bucket_fps), from wav2vec2's 50 Hz features resampled to 30;
  the concatenated latents decode to 4 x LT - 3 frames;
- HuMo: pieces of audio, contiguous, each generation 4n+1 frames holding its piece;
then PodiumRetime's own check (engines/timing.retime_indices) at 24, 25 and 30 fps: the frames
cover the audio, so no length of speech can fail there.
"""
from __future__ import annotations

import math

import pytest

from podium.engines.chunks import MAX_FRAMES, NATIVE_FPS, latents, plan_chunks, s2v_window_is_whole
from podium.engines.output import frames_for
from podium.engines.timing import retime_indices

DURATIONS = [round(0.05 + 0.01 * i, 2) for i in range(int(round((30 - 0.05) / 0.01)) + 1)]


def decoded(length: int) -> int:
    """Frames the Wan VAE decodes from a node's latents for `length`."""
    return 4 * (latents(length) - 1) + 1


def infinitetalk_frames(plan) -> int:
    frames = 0
    for k, chunk in enumerate(plan.chunks):
        if k:
            assert frames >= 9, "ComfyUI: Not enough previous frames provided."
            assert math.isclose(chunk.audio_start, (frames - 9) / 25)  # audio_start = len(previous) - motion
            made = decoded(chunk.length)
            kept = min(chunk.keep, made - chunk.skip)  # ImageFromBatch(batch_index=trim_image, length)
            assert chunk.skip == 9 and kept == made - 9
            frames += kept
        else:
            frames = decoded(chunk.length)
    return frames


def s2v_frames(plan, seconds: float) -> int:
    samples = round(seconds * 16000)
    wav2vec_frames = (samples - 400) // 320 + 1  # 50 Hz
    audio_30 = int(wav2vec_frames / 50 * 30)     # linear_interpolation(..., 50, 30)
    total = 0
    assert len({c.length for c in plan.chunks}) == 1  # equal chunks: windows never cut short
    for chunk in plan.chunks:
        batch = latents(chunk.length) * 4
        buckets = int(audio_30 / (batch * 30 / 16)) + 1
        window = min(batch, buckets * batch - total * 4)
        assert window == batch, "a chunk whose audio window is cut short"
        total += latents(chunk.length)
    assert all(s2v_window_is_whole(plan, audio_30))
    return 4 * total - 3


def humo_frames(plan, seconds: float) -> int:
    end = 0.0
    for chunk in plan.chunks:
        assert math.isclose(chunk.audio_start, end)
        assert chunk.keep <= decoded(chunk.length) and chunk.length <= MAX_FRAMES["humo"]
        assert math.isclose((chunk.audio_end - chunk.audio_start) * 25, chunk.keep)
        end = chunk.audio_end
    assert end >= seconds - 1e-9
    return sum(c.keep for c in plan.chunks)


@pytest.mark.parametrize("kind", ["infinitetalk", "s2v", "humo"])
def test_every_length_from_50_ms_to_30_s_chains_and_retimes(kind):
    for seconds in DURATIONS:
        plan = plan_chunks(kind, seconds)
        for chunk in plan.chunks:
            assert (chunk.length - 1) % 4 == 0 and 1 <= chunk.length <= MAX_FRAMES[kind], (seconds, chunk)
        made = {"infinitetalk": lambda: infinitetalk_frames(plan), "s2v": lambda: s2v_frames(plan, seconds),
                "humo": lambda: humo_frames(plan, seconds)}[kind]()
        assert made == plan.frames, seconds
        for fps in (24, 25, 30):
            indices = retime_indices(made, NATIVE_FPS[kind], fps, seconds)  # raises if too short
            assert len(indices) == frames_for(seconds, fps)


def test_chunk_counts_grow_with_the_audio_and_no_length_is_refused():
    assert len(plan_chunks("infinitetalk", 3.2).chunks) == 1       # 81 frames at 25 fps
    assert len(plan_chunks("infinitetalk", 3.3).chunks) == 2
    assert len(plan_chunks("s2v", 4.8).chunks) == 1                # 77 frames at 16 fps
    assert len(plan_chunks("s2v", 30).chunks) == 7
    assert len(plan_chunks("humo", 3.88).chunks) == 1              # 97 frames at 25 fps
    assert len(plan_chunks("humo", 300).chunks) == 78               # five minutes, one take


def test_humo_cuts_at_the_pause_it_is_given():
    plan = plan_chunks("humo", 6.0, cut=lambda lo, hi: lo + 10)
    assert plan.chunks[0].keep == 48 + 10 and plan.chunks[0].length == 61
