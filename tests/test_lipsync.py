"""Lip sync: Wav2Lip at its real size with random weights, exported to ONNX here and run by the
engine through the memory manager; Wav2Lip's mel against an independent torch reference; the
mel window for every frame at 24/25/30 fps; clips with exactly round(seconds x fps) frames."""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest
import torch

from conftest import ffprobe, frame_at, streams
from podium.engines import lipsync
from podium.engines.lipsync import (FaceDetector, LipSyncVisual, load_wav2lip, mel_spectrogram,
                                    mel_window, wav2lip_io)
from podium.engines.output import encode_video, frames_for
from podium.engines.speech import Speech
from podium.engines.wav2lip_net import INPUT_NAMES, Wav2Lip, export_onnx
from podium.errors import PodiumError
from podium import profiling
from podium.memory import get_manager

SIZE = 192
FACE_BOX = (36, 34, 156, 170)  # where draw_face puts the face at 192x192 (x1, y1, x2, y2)
MOUTH = (slice(122, 142), slice(74, 118))  # rows, cols around the drawn mouth
AWAY = (slice(0, 28), slice(None))  # the top band: no face there
HAAR = lipsync.haar_cascade_path() is not None
NO_HAAR = ("OpenCV's Haar cascade is not in this OpenCV (5.x ships neither the cascade nor "
           "CascadeClassifier; 4.x does), and no ONNX face detector is installed")


def draw_face(size: int = SIZE) -> np.ndarray:
    """A flat cartoon face (RGB) that OpenCV's frontal-face Haar cascade finds."""
    s = size / 320
    S = lambda v: int(round(v * s))
    img = np.full((size, size, 3), (130, 110, 90), np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c + S(10)), (S(85), S(110)), 0, 0, 360, (200, 150, 120), -1)  # face
    cv2.ellipse(img, (c, c - S(80)), (S(95), S(55)), 0, 180, 360, (60, 40, 30), -1)  # hair
    for dx in (-S(35), S(35)):
        cv2.ellipse(img, (c + dx, c - S(30)), (S(22), S(6)), 0, 0, 360, (70, 50, 40), -1)
        cv2.ellipse(img, (c + dx, c - S(10)), (S(16), S(9)), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(img, (c + dx, c - S(10)), S(7), (30, 30, 40), -1)
    nose = np.array([[c, c - S(5)], [c - S(14), c + S(35)], [c + S(14), c + S(35)]])
    cv2.fillPoly(img, [nose], (185, 135, 105))
    cv2.ellipse(img, (c, c + S(62)), (S(30), S(10)), 0, 0, 360, (150, 70, 70), -1)  # mouth
    return cv2.GaussianBlur(img, (0, 0), 2 * s)


class Still:
    """A Visual that shows one picture."""

    def __init__(self, image: np.ndarray):
        self.image, self.height, self.width = image, image.shape[0], image.shape[1]
        self.calls = 0

    def render(self, t: float) -> np.ndarray:
        self.calls += 1
        return self.image


def speech_of(seconds: float, rate: int = 22050) -> Speech:
    """Bursts of harmonics and noise every 0.2 s: the mel window changes frame to frame."""
    rng = np.random.default_rng(1)
    t = np.arange(int(round(seconds * rate))) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 720, 1500), 1))
    voice = voice + 0.3 * rng.standard_normal(len(t))
    gate = (np.sin(2 * np.pi * 2.5 * t) > 0).astype(np.float64)
    samples = (0.3 * voice * gate).astype(np.float32)
    return Speech(samples, rate, [], [(0.0, seconds)])


@pytest.fixture(scope="module")
def model() -> Wav2Lip:
    return calibrated_wav2lip()


def calibrated_wav2lip() -> Wav2Lip:
    """The real-size network, random weights; BatchNorm statistics taken on random inputs
    (as training would have set them), else activations fade and the mouth ignores the mel."""
    torch.manual_seed(0)
    net = Wav2Lip()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, 1, 80, 16) * 2, torch.rand(8, 6, 96, 96))
        net.output_block[1].weight.mul_(4)  # a livelier mouth, easier to see in the tests
    return net.eval()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("wav2lip") / "wav2lip_random.onnx")


@pytest.fixture(scope="module")
def session(onnx_path):
    return load_wav2lip(onnx_path)


def test_architecture_is_wav2lips(model):
    """Same names and shapes as the published checkpoints' state_dict."""
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 36_298_035
    assert len(state) == 352
    assert state["face_encoder_blocks.0.0.conv_block.0.weight"].shape == (16, 6, 7, 7)
    assert state["face_encoder_blocks.6.1.conv_block.0.weight"].shape == (512, 512, 1, 1)
    assert state["audio_encoder.0.conv_block.0.weight"].shape == (32, 1, 3, 3)
    assert state["audio_encoder.12.conv_block.0.weight"].shape == (512, 512, 1, 1)
    assert state["face_decoder_blocks.1.0.conv_block.0.weight"].shape == (1024, 512, 3, 3)
    assert state["face_decoder_blocks.6.0.conv_block.0.weight"].shape == (160, 64, 3, 3)
    assert state["output_block.0.conv_block.0.weight"].shape == (32, 80, 3, 3)
    assert state["output_block.1.weight"].shape == (3, 32, 1, 1)
    assert "face_decoder_blocks.6.2.conv_block.1.running_var" in state


def test_onnx_export_runs_like_torch(model, session):
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs) == list(INPUT_NAMES)
    assert inputs[INPUT_NAMES[0]][1:] == [1, 80, 16] and inputs[INPUT_NAMES[1]][1:] == [6, 96, 96]
    assert wav2lip_io(session) == (*INPUT_NAMES, 96, True)
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (3, 1, 80, 16)).astype(np.float32)
    face = rng.uniform(0, 1, (3, 6, 96, 96)).astype(np.float32)
    out = session.run(None, {INPUT_NAMES[0]: mel, INPUT_NAMES[1]: face})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(mel), torch.from_numpy(face)).numpy()
    assert out.shape == (3, 3, 96, 96)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_export_script_loads_a_checkpoint(model, tmp_path):
    """scripts/export_wav2lip_onnx.py on a checkpoint laid out as Wav2Lip's training saves it."""
    import subprocess
    import sys
    from pathlib import Path

    ckpt = tmp_path / "wav2lip.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "global_step": 1, "global_epoch": 1}, ckpt)
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_wav2lip_onnx.py"
    out = tmp_path / "models" / "wav2lip.onnx"
    subprocess.run([sys.executable, str(script), str(ckpt), str(out)], check=True,
                   capture_output=True, timeout=120)
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    mel = rng.uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32)
    face = rng.uniform(0, 1, (2, 6, 96, 96)).astype(np.float32)
    got = ort.InferenceSession(str(out)).run(None, {INPUT_NAMES[0]: mel, INPUT_NAMES[1]: face})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(mel), torch.from_numpy(face)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert not list(out.parent.glob("*.part"))


def test_session_goes_through_the_memory_manager(onnx_path, session):
    key = f"wav2lip:{os.path.abspath(onnx_path)}"
    loaded = {k: (size, kind) for k, size, kind, _ in get_manager().loaded()}
    assert loaded[key] == (os.path.getsize(onnx_path), "onnx")
    assert load_wav2lip(onnx_path) is session  # cached, not loaded twice
    with pytest.raises(PodiumError, match="not found"):
        load_wav2lip(onnx_path.with_name("missing.onnx"))


def reference_mel(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's audio.melspectrogram for 16 kHz audio, written independently: scipy's
    lfilter, torch.stft (librosa 0.7's centred, reflect-padded frames) and torchaudio's
    Slaney mel filters."""
    from scipy.signal import lfilter
    import torchaudio

    y = torch.from_numpy(lfilter([1, -0.97], [1], wav.astype(np.float64)))
    spec = torch.stft(y, 800, hop_length=200, win_length=800, center=True, pad_mode="reflect",
                      window=torch.hann_window(800, periodic=True, dtype=torch.float64),
                      return_complex=True).abs()
    fb = torchaudio.functional.melscale_fbanks(401, 55.0, 7600.0, 80, 16000, norm="slaney",
                                               mel_scale="slaney").double()
    db = 20 * torch.log10(torch.clamp(fb.T @ spec, min=1e-5)) - 20
    return torch.clamp(8 * (db + 100) / 100 - 4, -4, 4).numpy()


def test_mel_matches_wav2lips_audio_py():
    wav = speech_of(1.37, rate=16000).samples
    mel = mel_spectrogram(wav, 16000)
    assert mel.dtype == np.float32 and mel.shape == (80, 1 + len(wav) // 200)
    expected = reference_mel(wav)
    assert np.abs(mel - expected).max() < 1e-3
    assert -4 <= mel.min() < -3.5 and 0 < mel.max() <= 4  # silence at the floor, speech well above
    silent = mel_spectrogram(np.zeros(16000, np.float32), 16000)
    assert np.all(silent == -4)


def test_mel_resamples_to_16khz():
    """22.05 kHz audio: the engine's resampling gives the mel of scipy's polyphase one."""
    from scipy.signal import resample_poly

    speech = speech_of(1.0, 22050)
    ours = mel_spectrogram(speech.samples, 22050)
    theirs = mel_spectrogram(resample_poly(speech.samples.astype(np.float64), 320, 441), 16000)
    assert ours.shape == theirs.shape == (80, 81)
    inner = slice(2, -2)  # the two resamplers treat the very ends differently
    assert np.abs(ours[:, inner] - theirs[:, inner]).mean() < 0.02


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_mel_window_for_every_frame(fps):
    speech = speech_of(2.37)
    mel = mel_spectrogram(speech.samples, speech.sample_rate)
    n = frames_for(speech.duration, fps)
    for i in range(n):
        start = int(80 * i / fps)
        window = mel_window(mel, i, fps)
        assert window.shape == (80, 16)
        assert start / 80 <= i / fps < (start + 1) / 80  # starts at the frame's own time
        assert start < mel.shape[1]  # the last frame's window still starts inside the mel
        inside = min(16, mel.shape[1] - start)
        np.testing.assert_array_equal(window[:, :inside], mel[:, start:start + inside])
        assert np.all(window[:, inside:] == -4)  # padded with silence past the end
    assert int(80 * (n - 1) / fps) + 16 > mel.shape[1]  # so the padding was exercised


def outside(box, shape):
    mask = np.ones(shape[:2], bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = False
    return mask


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_clip_frames_exact_and_only_the_mouth_moves(fps, session, tmp_path):
    speech = speech_of(1.03)
    base = Still(draw_face())
    visual = LipSyncVisual(base, speech, session, fps, smooth_frames=5, batch_size=16,
                           face_box=FACE_BOX)
    frames = []

    def render(t):
        frame = visual.render(t)
        frames.append(frame)
        assert len(visual._frames) <= 16  # one batch held at a time
        return frame

    out = encode_video(tmp_path / "clip.mp4", render, (SIZE, SIZE), speech.samples,
                       speech.sample_rate, fps)
    n = round(speech.duration * fps)
    info = ffprobe(out)
    assert streams(info, "video")[0]["nb_frames"] == n == len(frames)
    assert math.isclose(streams(info, "audio")[0]["duration"], n / fps, abs_tol=0.03)

    keep = outside(FACE_BOX, base.image.shape)
    for frame in frames:  # away from the face: the base visual, bit for bit
        np.testing.assert_array_equal(frame[keep], base.image[keep])
    mouths = np.stack([f[MOUTH].astype(np.float32) for f in frames])
    assert np.abs(mouths - base.image[MOUTH]).mean() > 5  # the mouth was redrawn
    assert np.abs(np.diff(mouths, axis=0)).mean(axis=(1, 2, 3)).max() > 2  # and it moves

    # The same in the encoded file (up to H.264's loss).
    a, b = frame_at(out, 0.0, SIZE, SIZE), frame_at(out, 0.2, SIZE, SIZE)
    assert np.abs(a[AWAY].astype(int) - base.image[AWAY]).mean() < 3
    assert np.abs(a[MOUTH].astype(int) - b[MOUTH]).mean() > 2


def test_out_of_order_render_and_partial_batches(session):
    speech = speech_of(0.5)
    base = Still(draw_face())
    visual = LipSyncVisual(base, speech, session, 25, batch_size=4, face_box=FACE_BOX)
    late = visual.render(11 / 25).copy()
    early = visual.render(2 / 25)
    again = LipSyncVisual(base, speech, session, 25, batch_size=1, face_box=FACE_BOX)
    np.testing.assert_allclose(late.astype(int), again.render(11 / 25), atol=1)
    np.testing.assert_allclose(early.astype(int), again.render(2 / 25), atol=1)
    assert visual.render(12 / 25).shape == (SIZE, SIZE, 3)  # past the end: last batch, 1 frame


def test_without_a_detector_or_box_the_error_says_what_to_do(session, monkeypatch):
    monkeypatch.setattr(lipsync, "haar_cascade_path", lambda: None)
    monkeypatch.setattr(lipsync, "installed_face_detector_model", lambda: None)
    with pytest.raises(PodiumError, match="face_box"):
        LipSyncVisual(Still(draw_face()), speech_of(0.3), session, 25)
    with pytest.raises(PodiumError, match="face_box"):
        LipSyncVisual(Still(draw_face()), speech_of(0.3), session, 25, face_box=(0, 0, 4, 4))


@pytest.mark.skipif(not HAAR, reason=NO_HAAR)
def test_haar_finds_the_drawn_face_and_lip_syncs_it(session):
    detector = FaceDetector("haar")
    x1, y1, x2, y2 = detector.detect(draw_face())
    fx1, fy1, fx2, fy2 = FACE_BOX
    overlap = max(0, min(x2, fx2) - max(x1, fx1)) * max(0, min(y2, fy2) - max(y1, fy1))
    assert overlap / ((x2 - x1) * (y2 - y1)) > 0.6
    base = Still(draw_face())
    visual = LipSyncVisual(base, speech_of(0.5), session, 25, face_detector="haar")
    frames = [visual.render(i / 25) for i in range(8)]
    assert all(np.abs(f[MOUTH].astype(int) - base.image[MOUTH]).mean() > 5 for f in frames)
    assert np.array_equal(frames[0][AWAY], base.image[AWAY])


@pytest.mark.skipif(not HAAR, reason=NO_HAAR)
def test_frames_without_a_face_pass_through(session):
    blank = Still(np.full((SIZE, SIZE, 3), 90, np.uint8))
    visual = LipSyncVisual(blank, speech_of(0.5), session, 30, face_detector="auto")
    for i in range(frames_for(0.5, 30)):
        assert np.array_equal(visual.render(i / 30), blank.image)


def test_node(onnx_path, tmp_path):
    from podium.nodes.lipsync import PodiumLipSync

    spec = PodiumLipSync.INPUT_TYPES()
    assert spec["required"]["face_detector"][0] == ["auto", "haar"]
    assert PodiumLipSync.VALIDATE_INPUTS(face_box="1,2,3") != True  # noqa: E712
    base = Still(draw_face())
    before = len(profiling.reports)
    (visual,) = PodiumLipSync().sync(
        speech_of(0.4), 25, spec["required"]["model"][0][0], 0, 10, 0, 0, 5, 8, "auto",
        visual=base, model_path=str(onnx_path), face_box=",".join(map(str, FACE_BOX)))
    assert [r.name for r in list(profiling.reports)[before:]] == ["lipsync"]
    assert (visual.width, visual.height) == (SIZE, SIZE)
    assert visual.render(0.0).shape == (SIZE, SIZE, 3)
    with pytest.raises(PodiumError):
        PodiumLipSync().sync(speech_of(0.4), 25, "none (use model_path)", 0, 10, 0, 0, 5,
                             8, "auto", visual=base)


def test_frame_sequence_plays_back_and_forth():
    from podium.engines.frames import FrameSequence

    clip = FrameSequence(np.zeros((4, 8, 6, 3), np.uint8), 10)
    assert (clip.width, clip.height) == (6, 8)
    assert [clip.index(i / 10) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert FrameSequence(np.zeros((1, 8, 6, 3), np.uint8), 10).index(3.7) == 0
    with pytest.raises(PodiumError, match=r"\(B, H, W, 3\)"):
        FrameSequence(np.zeros((8, 6, 3), np.uint8), 10)


def test_node_lip_syncs_an_image_batch_from_any_node(onnx_path):
    """frames: a (B, H, W, 3) IMAGE batch as a core video model gives it; each output frame
    is its source frame (back and forth) with only the mouth changed by Wav2Lip."""
    from podium.nodes.lipsync import PodiumLipSync

    face = draw_face()
    source = np.stack([face] * 3)
    for k in range(3):
        source[k][AWAY] = 40 * (k + 1)  # tells the source frames apart
    image = torch.from_numpy(source).float().div(255.0)  # ComfyUI's IMAGE
    fps, seconds = 25, 0.4
    model = PodiumLipSync.INPUT_TYPES()["required"]["model"][0][0]
    (visual,) = PodiumLipSync().sync(speech_of(seconds), fps, model, 0, 10, 0, 0, 5, 8, "auto",
                                     frames=image, model_path=str(onnx_path),
                                     face_box=",".join(map(str, FACE_BOX)))
    assert (visual.width, visual.height) == (SIZE, SIZE)
    rendered = [visual.render(i / fps) for i in range(frames_for(seconds, fps))]
    for i, frame in enumerate(rendered):
        k = [0, 1, 2, 1][i % 4]
        assert np.array_equal(frame[AWAY], source[k][AWAY]), i
        assert not np.array_equal(frame[MOUTH], source[k][MOUTH]), i  # Wav2Lip drew the mouth
    mouths = {rendered[i][MOUTH].tobytes() for i in range(len(rendered))}
    assert len(mouths) > len(rendered) // 2  # the mouth follows the audio, frame by frame
    odd = torch.zeros(2, 33, 32, 3)
    with pytest.raises(PodiumError, match="even"):
        PodiumLipSync().sync(speech_of(seconds), fps, model, 0, 10, 0, 0, 5, 8, "auto",
                             frames=odd, model_path=str(onnx_path), face_box="0,0,30,30")
    with pytest.raises(PodiumError, match="connect a visual"):
        PodiumLipSync().sync(speech_of(seconds), fps, model, 0, 10, 0, 0, 5, 8, "auto",
                             model_path=str(onnx_path))


def test_engine_and_node_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import podium.engines.lipsync, podium.nodes.lipsync; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
