"""The cinema preset's Podium nodes called as ComfyUI calls them (torch IMAGE / AUDIO):
Wan's 4n+1 frame count, colour held to the reference, frame-exact retiming to the output fps."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from podium import NODE_CLASS_MAPPINGS
from podium.engines.timing import retime_indices, wan_frame_count
from podium.errors import PodiumError
from podium.nodes.color_match import PodiumColorMatch
from podium.nodes.timing import PodiumFrameCount, PodiumRetime

torch = pytest.importorskip("torch")

SR = 16000


def audio(seconds: float) -> dict:
    n = int(round(seconds * SR))
    return {"waveform": torch.zeros(1, 2, n), "sample_rate": SR}


def test_registered():
    for name in ("PodiumFrameCount", "PodiumColorMatch", "PodiumRetime"):
        assert name in NODE_CLASS_MAPPINGS


@pytest.mark.parametrize("seconds, expected", [
    (0.01, 1),       # one frame covers a blip
    (1.0, 17),       # 16 frames needed -> 17 = 4*4+1
    (2.0, 33),       # 32 -> 33
    (2.07, 37),      # 33.12 -> 34 needed -> 37
    (5.0, 81),       # 80 -> 81, Wan's usual length
    (5.1, 81),       # 81.6 -> would be 85, capped at 81
    (60.0, 81),
])
def test_frame_count_is_4n_plus_1_covering_the_audio(seconds, expected):
    (frames,) = PodiumFrameCount().count(audio(seconds), 16.0, 81)
    assert frames == expected and frames % 4 == 1
    if frames < 81:
        assert frames / 16.0 >= seconds - 1e-9


def test_frame_count_cap_rounds_down_to_4n_plus_1():
    assert wan_frame_count(60.0, 16.0, 100) == 97
    assert wan_frame_count(60.0, 25.0, 1) == 1


def drifted_batch(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.2, 0.8, (32, 48, 3)).astype(np.float32)
    frames = []
    for i in range(n):  # warmer, brighter, flatter frame after frame
        f = reference * (1.0 - 0.1 * i) + np.array([0.06, 0.02, -0.05]) * i + 0.04 * i
        frames.append(np.clip(f + rng.normal(0, 0.02, f.shape), 0, 1))
    return np.stack(frames).astype(np.float32), reference


def lab_mean_std(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


def test_color_match_brings_a_drifted_batch_back_to_the_reference():
    frames, reference = drifted_batch()
    ref_mean, ref_std = lab_mean_std(reference)
    (out,) = PodiumColorMatch().match(torch.from_numpy(frames), torch.from_numpy(reference[None]), 1.0)
    assert isinstance(out, torch.Tensor) and out.shape == frames.shape and out.dtype == torch.float32
    out = out.numpy()
    assert 0.0 <= out.min() and out.max() <= 1.0
    for i in range(1, len(frames)):
        before_mean, _ = lab_mean_std(frames[i])
        mean, std = lab_mean_std(out[i])
        assert np.abs(before_mean - ref_mean).max() > 4.0  # the batch really drifted
        assert np.abs(mean - ref_mean).max() < 1.0, (i, mean, ref_mean)
        assert np.abs(std - ref_std).max() < 1.0, (i, std, ref_std)


def test_color_match_strength_zero_is_identity_and_half_is_between():
    frames, reference = drifted_batch()
    images = torch.from_numpy(frames)
    (same,) = PodiumColorMatch().match(images, torch.from_numpy(reference[None]), 0.0)
    assert torch.equal(same, images)
    (half,) = PodiumColorMatch().match(images, torch.from_numpy(reference[None]), 0.5)
    ref_mean, _ = lab_mean_std(reference)
    drift = np.abs(lab_mean_std(frames[-1])[0] - ref_mean).max()
    left = np.abs(lab_mean_std(half.numpy()[-1])[0] - ref_mean).max()
    assert 0.3 * drift < left < 0.7 * drift


def test_color_match_rejects_strength_out_of_range():
    frames, reference = drifted_batch(1)
    with pytest.raises(PodiumError, match="strength"):
        PodiumColorMatch().match(torch.from_numpy(frames), torch.from_numpy(reference[None]), 1.5)


def numbered_frames(n: int) -> torch.Tensor:
    """n frames, frame i filled with the value i / 1000: the output says which source frame it is."""
    return (torch.arange(n, dtype=torch.float32) / 1000).view(n, 1, 1, 1).expand(n, 4, 6, 3).contiguous()


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_retime_gives_exact_counts_and_nearest_source_frames(fps):
    seconds = 5.0 - 1 / 16  # 79 frames of audio at 16 fps: Wan makes 81
    n_source = wan_frame_count(seconds, 16.0, 81)
    (out,) = PodiumRetime().retime(numbered_frames(n_source), 16.0, fps, audio(seconds))
    expected_count = round(seconds * fps)
    assert out.shape == (expected_count, 4, 6, 3)
    got = [round(v * 1000) for v in out[:, 0, 0, 0].tolist()]
    # nearest source frame to each output timestamp j / fps, ties up
    want = [min(int(np.floor(j * 16 / fps + 0.5)), n_source - 1) for j in range(expected_count)]
    assert got == want
    assert got[0] == 0 and got == sorted(got)
    for j, i in enumerate(got):  # no output frame is further than half a source frame from its time
        assert abs(i / 16 - j / fps) <= 0.5 / 16 + 1e-9


def test_retime_known_indices():
    # 24 fps from 16: every third output frame repeats; 25 fps: 0.64 source frames per output
    assert retime_indices(17, 16, 24, 0.5).tolist() == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7]
    assert retime_indices(17, 16, 25, 0.4).tolist() == [0, 1, 1, 2, 3, 3, 4, 4, 5, 6]
    assert retime_indices(17, 16, 30, 0.3).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_retime_output_count_follows_the_audio_not_the_clip():
    # 81 frames made for 4.2 s of speech: the video is cut to the audio's length, audio untouched
    a = audio(4.2)
    (out,) = PodiumRetime().retime(numbered_frames(81), 16.0, 25, a)
    assert len(out) == 105
    assert a["waveform"].shape[-1] == round(4.2 * SR)


def test_retime_refuses_a_clip_too_short_for_the_audio():
    with pytest.raises(PodiumError, match="PodiumFrameCount"):
        PodiumRetime().retime(numbered_frames(33), 16.0, 25, audio(5.0))


# ---- the chain's helpers ----

def test_a_chain_that_cannot_run_says_which_and_why_in_one_line():
    from podium.nodes.chain import check_inputs

    with pytest.raises(PodiumError) as err:
        check_inputs("s2v", 48, 48, None)
    assert "s2v cannot draw 48x48" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PodiumError, match="infinitetalk needs its model_patch"):
        check_inputs("infinitetalk", 832, 480, None)
    with pytest.raises(PodiumError, match="unknown kind 'wan'"):
        check_inputs("wan", 832, 480, None)
    check_inputs("humo", 32, 32, None)  # fine


def test_humo_pieces_end_in_the_pause_between_words():
    """Speech-like audio with a silent gap: the cut lands in the gap, on a frame boundary."""
    from podium.nodes.chain import quiet_cut

    rate, fps = 16000, 25.0
    samples = np.sin(np.arange(rate * 5) * 0.3).astype(np.float32) * 0.5
    samples[int(3.0 * rate):int(3.2 * rate)] = 0.0  # a 200 ms pause at 3.0-3.2 s
    frame = quiet_cut(samples, rate, fps)(48, 97)
    assert 3.0 <= frame / fps <= 3.2


def test_audio_slice_is_the_piece_asked_for():
    from podium.nodes.chain import PodiumAudioSlice

    whole = {"waveform": torch.arange(SR * 2, dtype=torch.float32).reshape(1, 1, -1) / SR, "sample_rate": SR}
    (piece,) = PodiumAudioSlice().slice(whole, 0.5, 1.25)
    assert piece["waveform"].shape[-1] == int(0.75 * SR) and piece["sample_rate"] == SR
    assert float(piece["waveform"][0, 0, 0]) == pytest.approx(0.5)
    with pytest.raises(PodiumError, match="past the audio"):
        PodiumAudioSlice().slice(whole, 3.0, 4.0)


def test_the_portrait_is_padded_to_the_generation_aspect_not_cropped():
    """A square portrait into 832x480: all of it (top of the head to the chin) is in the frame,
    scaled to the height and centred; the sides are its own edges stretched out."""
    from podium.nodes.framing import PodiumFitPortrait

    square = np.zeros((1, 240, 240, 3), np.float32)
    square[:, :20] = 1.0           # the top of the head: white band at the top
    square[:, -20:, :, 0] = 1.0    # the chin: red band at the bottom
    (fitted,) = PodiumFitPortrait().fit(torch.from_numpy(square), 832, 480)
    out = fitted[0].numpy()
    assert out.shape == (480, 832, 3)
    middle = out[:, 416]
    assert middle[0].min() > 0.9 and middle[-1][0] > 0.9 and middle[-1][1] < 0.1  # both ends kept
    assert np.allclose(out[240, 0], out[240, 176], atol=0.05)  # the side: the edge colour stretched
