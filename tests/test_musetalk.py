"""MuseTalk 1.5 lip sync through the real loaders (diffusers UNet2DConditionModel and
AutoencoderKL, transformers WhisperModel / WhisperFeatureExtractor, all via the memory manager)
on tiny random-weight models saved in the published file layout (tests/tiny_musetalk.py):
frame counts exact at 24 / 25 / 30 fps, nothing changes outside the mouth region, no seam where
the crop is pasted back, silence keeps the input face, a missing file names the pull command."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

import tiny_musetalk
from conftest import ffprobe, streams
from podium.engines import lipsync
from podium.engines.lipsync import paste_face
from podium.engines.media import encode_video, frames_for
from podium.engines.musetalk import (AUDIO_FPS, MuseTalkFiles, MuseTalkModels,
                                     MuseTalkVisual, encoder_window, position_encoding,
                                     silence_weights)
from podium.engines.speech import Speech
from podium.errors import ModelMissingError, PodiumError
from podium.memory import get_manager
from test_lipsync import FACE_BOX, SIZE, Still, draw_face

X1, Y1, X2, Y2 = FACE_BOX


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tiny_musetalk.build(tmp_path_factory.mktemp("musetalk-models"))


def files_in(root) -> MuseTalkFiles:
    return MuseTalkFiles(root / tiny_musetalk.UNET_DIR / "unet.pth",
                         root / tiny_musetalk.UNET_DIR / "musetalk.json",
                         root / tiny_musetalk.VAE_DIR, root / tiny_musetalk.WHISPER_DIR)


@pytest.fixture(scope="module")
def models(models_dir):
    return MuseTalkModels(files_in(models_dir)).load_all()


def mouth_mask(shape) -> np.ndarray:
    """Where the paste may change pixels: inside the face box, where the blend weight is > 0."""
    weight = np.zeros(shape[:2], np.float32)
    weight[Y1:Y2, X1:X2] = lipsync._blend_mask(Y2 - Y1, X2 - X1)[..., 0]
    return weight


def loud(seconds: float, rate: int = 16000) -> Speech:
    """Speech-like noise with no pauses: every frame speaks."""
    rng = np.random.default_rng(3)
    t = np.arange(int(round(seconds * rate))) / rate
    samples = 0.2 * np.sin(2 * np.pi * 220 * t) * (1.2 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
    return Speech(samples.astype(np.float32), rate, [], [(0.0, seconds)])


def test_published_layout_loads_through_the_memory_manager(models):
    keys = {key.split(":")[0]: kind for key, _, kind, _ in get_manager().loaded()}
    assert {keys.get(k) for k in ("musetalk-unet", "musetalk-vae", "musetalk-whisper")} == {"torch"}
    unet, vae, whisper = models.unet(), models.vae(), models.whisper()
    assert type(unet).__name__ == "UNet2DConditionModel" and unet.config.in_channels == 8
    assert type(vae).__name__ == "AutoencoderKL"
    assert type(whisper).__name__ == "WhisperEncoder"  # the decoder is not kept
    assert unet.config.cross_attention_dim == whisper.config.d_model
    assert not any(p.is_meta for p in unet.parameters())
    # The file on disk is what was saved: the weights are the published state_dict's.
    saved = torch.load(models.files.unet, weights_only=True)
    name = "conv_in.weight"
    assert torch.equal(unet.state_dict()[name].float(), saved[name].float())


def test_position_encoding_is_the_sinusoidal_table():
    table = position_encoding(50, 384)
    assert table.shape == (50, 384)
    assert table[0, 0] == 0 and table[0, 1] == 1  # sin(0), cos(0)
    assert math.isclose(table[7, 2 * 5], math.sin(7 / 10000 ** (2 * 5 / 384)), rel_tol=1e-5)
    assert math.isclose(table[7, 2 * 5 + 1], math.cos(7 / 10000 ** (2 * 5 / 384)), rel_tol=1e-5)


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_audio_window_follows_each_frames_time(fps):
    for i in range(3 * fps):
        start, stop = encoder_window(i / fps)
        assert stop - start == 10 and start == math.floor(AUDIO_FPS * i / fps + 1e-6) - 4
    if fps == 25:  # MuseTalk's own 25 fps indexing: frame i starts at encoder frame 2i - 4
        assert [encoder_window(i / 25)[0] for i in range(5)] == [-4, -2, 0, 2, 4]


def test_whisper_features_per_frame(models):
    """Each frame's tokens are the encoder's hidden states around its time, zeros outside the
    speech, and the same across the 30 s window boundary as the encoder gives them."""
    from podium.engines.musetalk import WhisperFeatures

    speech = loud(30.5)
    features = WhisperFeatures(speech.samples, models)
    layers = models.whisper().config.encoder_layers + 1
    width = models.whisper().config.d_model
    first = features.window(0.0).reshape(10, layers, width)
    assert first.shape == (10, layers, width)
    assert not first[:4].any() and first[4:].any()  # 4 encoder frames before the speech: zeros
    assert not np.allclose(features.window(0.2), features.window(0.24))

    extractor, encoder = models.extractor(), models.whisper()
    with torch.inference_mode():
        def states(chunk):
            mel = extractor(chunk, sampling_rate=16000, return_tensors="pt").input_features
            return torch.stack(encoder(mel, output_hidden_states=True).hidden_states, 2)[0].numpy()
        a, b = states(speech.samples[:480000]), states(speech.samples[480000:])
    across = features.window(30.0).reshape(10, layers, width)  # encoder frames 1496..1505
    np.testing.assert_allclose(across[:4], a[1496:1500], atol=1e-5)
    np.testing.assert_allclose(across[4:], b[0:6], atol=1e-5)
    tail = features.window(30.5).reshape(10, layers, width)  # 1521..1530: past the end at 1525
    assert tail[:4].any() and not tail[4:].any()


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_clip_frames_exact_and_only_the_mouth_changes(fps, models, tmp_path):
    speech = loud(0.23)  # 5.52, 5.75 and 6.9 frames: rounded to 6, 6 and 7
    base = Still(draw_face())
    visual = MuseTalkVisual(base, speech, models, fps, batch_size=4, face_box=FACE_BOX)
    frames = []

    def render(t):
        frames.append(visual.render(t))
        assert len(visual._frames) <= 4  # one batch held at a time
        return frames[-1]

    out = encode_video(tmp_path / "clip.mp4", render, (SIZE, SIZE), speech.samples,
                       speech.sample_rate, fps)
    n = round(speech.duration * fps)
    info = ffprobe(out)
    assert streams(info, "video")[0]["nb_frames"] == n == len(frames) == visual.n_frames
    assert math.isclose(streams(info, "audio")[0]["duration"], n / fps, abs_tol=1 / fps)

    weight = mouth_mask(base.image.shape)
    keep, mouth = weight == 0, weight > 0.99
    for frame in frames:
        change = np.abs(frame.astype(np.float32) - base.image)
        assert change[keep].mean() == 0  # outside the mouth region: the input frame exactly
        assert change[mouth].mean() > 2  # the mouth was redrawn
    mouths = np.stack([f[mouth].astype(np.float32) for f in frames])
    assert np.abs(np.diff(mouths, axis=0)).mean(axis=(1, 2)).max() > 0.5  # and follows the audio


def test_frames_render_alike_in_any_order(models):
    speech = loud(0.4)
    base = Still(draw_face())
    visual = MuseTalkVisual(base, speech, models, 25, batch_size=2, face_box=FACE_BOX)
    late = visual.render(9 / 25).copy()
    early = visual.render(2 / 25)
    again = MuseTalkVisual(base, speech, models, 25, batch_size=1, face_box=FACE_BOX)
    np.testing.assert_allclose(late.astype(int), again.render(9 / 25), atol=1)
    np.testing.assert_allclose(early.astype(int), again.render(2 / 25), atol=1)


def line_steps(image: np.ndarray, base: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
    """Mean |step| of (image - base) between neighbouring rows / columns inside the box."""
    x1, y1, x2, y2 = box
    change = (image.astype(np.float32) - base)[y1:y2, x1:x2]
    return (np.abs(np.diff(change, axis=0)).mean(axis=(1, 2)),
            np.abs(np.diff(change, axis=1)).mean(axis=(0, 2)))


def test_pasted_crop_leaves_no_seam(models):
    """The box border and the mask's outer edge: the output's gradient there is the input's
    (no box edge); across the feathered band a colour step spreads over many pixels (no colour
    step or chin seam), where a hard paste of the same face steps in one pixel row."""
    base = draw_face()
    visual = MuseTalkVisual(Still(base), loud(0.3), models, 25, batch_size=1, face_box=FACE_BOX)
    out = visual.render(0.12).astype(np.float32)
    weight = mouth_mask(base.shape)
    ring = np.zeros(base.shape[:2], bool)  # the box's own border, 2 px each side of it
    ring[Y1 - 2:Y2 + 2, X1 - 2:X2 + 2] = True
    ring[Y1 + 2:Y2 - 2, X1 + 2:X2 - 2] = False
    grad = lambda img: np.abs(np.diff(img.astype(np.float32), axis=0))[:, :-1] + \
        np.abs(np.diff(img.astype(np.float32), axis=1))[:-1]
    near_edge = (ring | ((weight > 0) & (weight < 0.02)))[:-1, :-1]  # where the mask starts
    assert np.abs(grad(out) - grad(base))[near_edge].mean() < 0.5
    inside = (weight > 0.99)[:-1, :-1]
    assert grad(out)[inside].mean() > 1  # the redrawn mouth has texture of its own

    # A uniform colour error of 40 levels in the generated face, pasted three ways.
    face = base[Y1:Y2, X1:X2].astype(np.float32) + 40
    soft = paste_face(base, face, FACE_BOX)
    hard = base.astype(np.float32).copy()
    hard[Y1 + (Y2 - Y1) // 2:Y2, X1:X2] = np.clip(face[(Y2 - Y1) // 2:], 0, 255)
    soft_rows, soft_cols = line_steps(soft, base, FACE_BOX)
    hard_rows, hard_cols = line_steps(hard, base, FACE_BOX)
    assert hard_rows.max() > 25  # the hard paste's seam: the whole step in one row
    assert soft_rows.max() < 40 / 6 and soft_cols.max() < 40 / 6  # ours: over the feather
    core = mouth_mask(base.shape) > 0.99  # and the whole colour error where the mask is 1
    assert np.abs((soft.astype(int) - base)[core] - 40).max() <= 1


def test_silence_keeps_the_input_face(models):
    rate = 16000
    voice = loud(0.2, rate).samples
    samples = np.concatenate([np.zeros(int(0.3 * rate), np.float32), voice,
                              np.zeros(int(0.3 * rate), np.float32)])
    speech = Speech(samples, rate, [], [(0.0, len(samples) / rate)])
    base = Still(draw_face())
    visual = MuseTalkVisual(base, speech, models, 25, batch_size=8, face_box=FACE_BOX)
    frames = [visual.render(i / 25) for i in range(visual.n_frames)]
    silent = [i for i in range(len(frames)) if i / 25 < 0.2 or i / 25 > 0.62]  # windows: no voice
    speaking = [i for i in range(len(frames)) if 0.36 <= i / 25 <= 0.44]
    for i in silent:
        assert np.array_equal(frames[i], base.image), i  # a closed, still mouth: the input face
    for i in speaking:
        assert not np.array_equal(frames[i], base.image), i

    assert len(silent) >= 8 and len(speaking) >= 2
    weights = silence_weights(samples, [0.1, 0.4, 0.7], -50.0)
    assert list(weights) == [0.0, 1.0, 0.0]
    tone = (10 ** (-45 / 20) * math.sqrt(2) * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.float32)
    assert math.isclose(silence_weights(tone, [0.5], -50.0)[0], 0.5, abs_tol=0.02)  # fades in


def test_node_lip_syncs_frames_and_checks_files(models_dir, monkeypatch, tmp_path):
    from podium.nodes.musetalk import PodiumMuseTalk

    monkeypatch.setenv("PODIUM_MODELS_DIR", str(models_dir))
    spec = PodiumMuseTalk.INPUT_TYPES()["required"]
    ids = spec["model"][0][0], spec["vae"][0][0], spec["whisper"][0][0]
    assert ids == ("musetalk-1.5", "sd-vae-ft-mse", "whisper-tiny")
    assert PodiumMuseTalk.VALIDATE_INPUTS(face_box="1,2,3") != True  # noqa: E712
    face = draw_face()
    source = np.stack([face] * 3)
    for k in range(3):
        source[k][:20] = 40 * (k + 1)  # tells the source frames apart
    image = torch.from_numpy(source).float().div(255.0)  # ComfyUI's IMAGE
    args = (loud(0.2), 25, *ids, 0, 10, 0, 0, 5, 4, "auto", -50.0)
    (visual,) = PodiumMuseTalk().sync(*args, frames=image, face_box=",".join(map(str, FACE_BOX)))
    assert (visual.width, visual.height) == (SIZE, SIZE)
    for i in range(frames_for(0.2, 25)):
        frame, k = visual.render(i / 25), [0, 1, 2, 1][i % 4]
        assert np.array_equal(frame[:20], source[k][:20]), i
    with pytest.raises(PodiumError, match="connect a visual"):
        PodiumMuseTalk().sync(*args)

    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    (broken / tiny_musetalk.UNET_DIR / "unet.pth").unlink()
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(broken))
    with pytest.raises(ModelMissingError) as missing:
        PodiumMuseTalk().sync(*args, visual=Still(face))
    message = str(missing.value)
    assert "\n" not in message and "unet.pth" in message
    assert "podium models pull musetalk-1.5" in message
    shutil.rmtree(broken / tiny_musetalk.WHISPER_DIR)
    (broken / tiny_musetalk.UNET_DIR / "unet.pth").write_bytes(b"")
    with pytest.raises(ModelMissingError, match="podium models pull whisper-tiny"):
        PodiumMuseTalk().sync(*args, visual=Still(face))


def test_damaged_weights_say_so(models_dir, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    (broken / tiny_musetalk.UNET_DIR / "unet.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PodiumError, match="cannot read the MuseTalk UNet"):
        MuseTalkModels(files_in(broken)).unet()
