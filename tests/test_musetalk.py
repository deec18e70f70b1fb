"""MuseTalk 1.5 lip sync through the real loaders (diffusers UNet2DConditionModel and
AutoencoderKL, transformers WhisperModel / WhisperFeatureExtractor, all via the memory manager)
on tiny random-weight models saved in the published file layout (tests/tiny_musetalk.py):
frame counts exact at 24 / 25 / 30 fps, nothing changes outside the paste mask, no seam where the
crop is pasted back, pauses rendered by the model (quiet audio reaches it as silence, no swap to
the input face), faces framed from landmarks, a missing file names the pull command."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

import tiny_musetalk
from conftest import ffprobe, streams
from podium.engines.lipsync import paste_face
from podium.engines.output import encode_video, frames_for
from podium.engines.musetalk import (AUDIO_FPS, MuseTalkFiles, MuseTalkModels,
                                     MuseTalkVisual, encoder_window, gate_silence,
                                     position_encoding)
from podium.engines.musetalk_face import box_locator, crop_box
from podium.engines.speech import Speech
from podium.errors import ModelMissingError, PodiumError
from podium.memory import get_manager
from test_lipsync import FACE_BOX, SIZE, Still, draw_face
from test_musetalk_face import drawn_mesh

SHAPE = box_locator(FACE_BOX)(None)  # the face box framed as MuseTalk's crop
CROP_BOX = crop_box(SHAPE, (0, 10, 0, 0), SIZE, SIZE)
X1, Y1, X2, Y2 = CROP_BOX


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


def mouth_mask(shape, face_shape=SHAPE) -> np.ndarray:
    """Where the paste may change pixels: inside the crop, where the paste mask is > 0."""
    from podium.engines.musetalk_face import paste_mask
    box = crop_box(face_shape, (0, 10, 0, 0), shape[1], shape[0])
    weight = np.zeros(shape[:2], np.float32)
    weight[box[1]:box[3], box[0]:box[2]] = paste_mask(face_shape, box)
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
    # and follows the audio (the mean is over the whole lower face now, chin included, where the
    # tiny random model moves less per pixel than in the old central box: 0.2, was 0.5)
    assert np.abs(np.diff(mouths, axis=0)).mean(axis=(1, 2)).max() > 0.2


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
    soft = paste_face(base, face, CROP_BOX, mask=weight[Y1:Y2, X1:X2])
    hard = base.astype(np.float32).copy()
    hard[Y1 + (Y2 - Y1) // 2:Y2, X1:X2] = np.clip(face[(Y2 - Y1) // 2:], 0, 255)
    soft_rows, soft_cols = line_steps(soft, base, CROP_BOX)
    hard_rows, hard_cols = line_steps(hard, base, CROP_BOX)
    assert hard_rows.max() > 25  # the hard paste's seam: the whole step in one row
    # ours: over upstream's blur (5% of the 1.5x box; a 9 px kernel at this size, so the
    # step spreads over fewer rows than the earlier 15%-of-the-box feather's 6)
    assert soft_rows.max() < 40 / 4 and soft_cols.max() < 40 / 4
    core = mouth_mask(base.shape) > 0.99  # and the whole colour error where the mask is 1
    assert np.abs((soft.astype(int) - base)[core] - 40).max() <= 1


def test_pauses_are_rendered_by_the_model_not_swapped(models):
    """Every frame is the model's (upstream renders every frame): no frame in a pause is the
    sharp input face. Quiet noise in the pauses reaches Whisper as digital silence, so a pause
    with -70 dBFS hiss renders exactly as one of zeros."""
    rate = 16000
    voice = loud(0.12, rate).samples
    gap = int(0.2 * rate)
    silent = np.concatenate([np.zeros(gap, np.float32), voice, np.zeros(gap, np.float32)])
    hiss = 10 ** (-70 / 20) * np.random.default_rng(5).standard_normal(len(silent)).astype(np.float32)
    hissy = silent + np.where(silent == 0, hiss, 0).astype(np.float32)
    far = np.ones(len(silent), bool)  # hiss only where no frame also hears the voice
    far[gap - 6 * 320:gap + len(voice) + 6 * 320] = False
    hiss_far = silent + np.where(far, hiss, 0).astype(np.float32)
    base = Still(draw_face())
    mouth = mouth_mask(base.image.shape) > 0.99

    def frames_of(samples, count=None):
        speech = Speech(samples, rate, [], [(0.0, len(samples) / rate)])
        visual = MuseTalkVisual(base, speech, models, 25, batch_size=7, face_box=FACE_BOX)
        return [visual.render(i / 25) for i in range(count or visual.n_frames)]

    frames, with_hiss = frames_of(silent), frames_of(hiss_far, 5)
    for i, frame in enumerate(frames):  # 0-4 and 8-12 in the pauses
        assert np.abs(frame[mouth].astype(int) - base.image[mouth]).mean() > 2, i  # the model's
    for i, frame in enumerate(with_hiss):
        np.testing.assert_array_equal(frame, frames[i])  # hiss gated: the same as silence
    assert not np.array_equal(frames[0], frames[6])  # the model hears the voice at 0.24 s

    gated = gate_silence(hissy, -50.0)
    hop, n = rate // AUDIO_FPS, len(hissy) // (rate // AUDIO_FPS)
    assert not gated[:gap - 6 * hop].any()  # the pause: silence
    np.testing.assert_array_equal(gated[gap:gap + len(voice)], hissy[gap:gap + len(voice)])
    assert gated[gap - 2 * hop:gap].any()  # the hiss just before the voice is heard with it
    assert np.array_equal(gate_silence(hissy, -120.0), hissy) and n > 0  # -120 dBFS: nothing gated


def test_faces_framed_from_landmarks_each_frame(models):
    """With a face mesh, the crop and the mask follow its landmarks: outside the mask the frame
    is the input, a frame without landmarks passes through unchanged, and a frame seen before
    (a still portrait, a looped clip) is not located again."""
    face = draw_face()

    class Marked:  # the drawn face, each frame marked in its corner (frame k: level k)
        width = height = SIZE

        def render(self, t):
            image = face.copy()
            image[:2, :2] = round(t * 25) % 4
            return image

    class DrawnMesh:  # the drawn face's known landmarks; none on frames marked 2
        calls = 0

        def landmarks(self, rgb):
            DrawnMesh.calls += 1
            return None if rgb[0, 0, 0] == 2 else drawn_mesh(SIZE)

    visual = MuseTalkVisual(Marked(), loud(0.32), models, 25, batch_size=3, face_mesh=DrawnMesh(),
                            smooth_frames=1)
    assert visual.framing == "face mesh"
    from podium.engines.musetalk_face import shape_from_mesh
    weight = mouth_mask(face.shape, shape_from_mesh(drawn_mesh(SIZE)))
    frames = [visual.render(i / 25) for i in range(visual.n_frames)]
    assert len(frames) == 8 and DrawnMesh.calls == 4  # four distinct frames, each located once
    for i, frame in enumerate(frames):
        source = Marked().render(i / 25)
        if i % 4 == 2:
            assert np.array_equal(frame, source), i  # no face found: passes through
            continue
        change = np.abs(frame.astype(np.float32) - source)
        assert change[weight == 0].max() == 0, i
        assert change[weight > 0.99].mean() > 2, i


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
