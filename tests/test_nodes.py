"""The pack's node classes called directly, as ComfyUI calls them: valid V1 input specs,
VALIDATE_INPUTS answers, outputs named like ComfyUI's, and ComfyUI's AUDIO / IMAGE types
(torch tensors) as well as the numpy ones the draft path uses."""
from __future__ import annotations

import inspect
import subprocess

import numpy as np
import pytest

from conftest import decode_audio, ffprobe, listing, parse_srt, streams
from podium import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, paths
from podium.engines.speech import SpeechBuilder
from podium.engines.presenter import PortraitMotion, SlideDeck, load_image
from podium.errors import PodiumError
from podium.nodes.output import PodiumSaveVideo
from podium.nodes.presenter import PodiumPresenter
from podium.nodes.script import PodiumDirectScript
from podium.nodes.subtitles import PodiumSubtitles
from podium.nodes.voice import PodiumPiperTTS

torch = pytest.importorskip("torch")

SR = 22050
FPS = 10
W, H = 160, 96


def sine(seconds: float = 1.0, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ---- V1 specs ----

_PRIMITIVES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def _check_input(node: str, name: str, spec) -> None:
    where = f"{node}.{name}"
    assert isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 2, where
    kind = spec[0]
    options = spec[1] if len(spec) == 2 else {}
    assert isinstance(options, dict), where
    if isinstance(kind, list):  # a combo
        assert kind and all(isinstance(o, str) for o in kind), where
        if "default" in options:
            assert options["default"] in kind, where
        return
    assert isinstance(kind, str) and kind and kind == kind.upper(), where
    if kind in ("INT", "FLOAT"):
        number = int if kind == "INT" else (int, float)
        for key in ("default", "min", "max", "step"):
            if key in options:
                assert isinstance(options[key], number) and not isinstance(options[key], bool), (where, key)
        assert "default" in options, where
        if "min" in options:
            assert options["min"] <= options["default"], where
        if "max" in options:
            assert options["default"] <= options["max"], where
        if "step" in options:
            assert options["step"] > 0, where
    elif kind == "STRING":
        assert isinstance(options.get("default", ""), str), where
    if "tooltip" in options:
        assert isinstance(options["tooltip"], str) and options["tooltip"], where


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_node_class_is_a_valid_v1_node(name):
    cls = NODE_CLASS_MAPPINGS[name]
    assert cls.__name__ == name
    assert isinstance(NODE_DISPLAY_NAME_MAPPINGS.get(name), str)
    spec = cls.INPUT_TYPES()
    assert isinstance(spec, dict) and set(spec) <= {"required", "optional", "hidden"} and "required" in spec
    names = []
    for section in ("required", "optional"):
        for input_name, input_spec in spec.get(section, {}).items():
            _check_input(name, input_name, input_spec)
            names.append(input_name)
    assert len(names) == len(set(names))

    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
    if hasattr(cls, "RETURN_NAMES"):
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("Podium")
    assert isinstance(getattr(cls, "OUTPUT_NODE", False), bool)
    if not cls.RETURN_TYPES:
        assert cls.OUTPUT_NODE is True, "a node without outputs must be an output node"

    # The function takes every required input, and every optional one with a default.
    params = inspect.signature(getattr(cls(), cls.FUNCTION)).parameters
    for input_name in spec["required"]:
        assert input_name in params, f"{name}.{cls.FUNCTION} lacks {input_name}"
    for input_name in spec.get("optional", {}):
        assert input_name in params and params[input_name].default is not inspect.Parameter.empty, input_name
    # VALIDATE_INPUTS only asks for inputs that exist.
    check = getattr(cls, "VALIDATE_INPUTS", None)
    if check is not None:
        for arg in inspect.signature(check).parameters:
            assert arg in names or arg == "input_types", f"{name}.VALIDATE_INPUTS({arg})"


def test_piper_voice_list_offers_the_shipped_voice():
    voices = PodiumPiperTTS.INPUT_TYPES()["required"]["voice"]
    assert "piper-en_US-joe-medium" in voices[0]
    assert voices[1]["default"] in voices[0]


# ---- VALIDATE_INPUTS ----

def test_presenter_validate_inputs(tmp_path, portrait_png):
    assert PodiumPresenter.VALIDATE_INPUTS(portrait_path="") is True
    assert PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(portrait_png)) is True

    missing = tmp_path / "gone.png"
    answer = PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(missing))
    assert isinstance(answer, str) and "not found" in answer and str(missing) in answer

    corrupt = tmp_path / "noise.png"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    answer = PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(corrupt))
    assert isinstance(answer, str) and str(corrupt) in answer and "PNG" in answer

    truncated = tmp_path / "half.png"
    truncated.write_bytes(portrait_png.read_bytes()[:300])
    assert isinstance(PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(truncated)), str)

    assert isinstance(PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(tmp_path)), str)  # a folder


def test_piper_validate_inputs():
    assert PodiumPiperTTS.VALIDATE_INPUTS(voice_path="") is True
    assert PodiumPiperTTS.VALIDATE_INPUTS(voice_path="/voices/x.onnx") is True
    answer = PodiumPiperTTS.VALIDATE_INPUTS(voice_path="/voices/x.wav")
    assert isinstance(answer, str) and ".onnx" in answer


# ---- presenter ----

def test_presenter_takes_a_comfy_image_tensor(portrait_png):
    rgb = load_image(portrait_png)
    image = torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]  # (1, H, W, 3) in [0, 1]
    (visual,) = PodiumPresenter().present(None, None, W, H, 1.0, portrait=image)
    assert isinstance(visual, PortraitMotion)
    frame = visual.render(0.0)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    # The IMAGE wins over the path; the still (motion 0) shows the picture, the moving one moves.
    (still,) = PodiumPresenter().present(None, None, W, H, 0.0, portrait=image, portrait_path="/nope.png")
    assert np.array_equal(still.render(0.0), still.render(1.3))
    assert not np.array_equal(visual.render(0.0), visual.render(1.3))


def test_presenter_refuses_odd_sizes(portrait_png):
    with pytest.raises(PodiumError, match="even"):
        PodiumPresenter().present(None, None, W + 1, H, 1.0, portrait_path=str(portrait_png))


# ---- save video ----

@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "output"
    paths.set_output_directory(folder)
    yield folder
    paths.set_output_directory(None)


@pytest.fixture
def still(portrait_png) -> PortraitMotion:
    return PortraitMotion(load_image(portrait_png), W, H, speech=None, strength=1.0)


def _audio(waveform, rate: int = SR) -> dict:
    return {"waveform": waveform, "sample_rate": rate}


def test_save_video_names_files_like_comfyui(out_dir, still):
    audio = _audio(sine()[None, None])  # numpy (1, 1, T), as the draft path passes it
    first = PodiumSaveVideo().save(still, audio, FPS, "clip", "none")
    second = PodiumSaveVideo().save(still, audio, FPS, "clip", "none")
    nested = PodiumSaveVideo().save(still, audio, FPS, "talks/clip", "none")
    assert first["ui"]["images"][0]["filename"] == "clip_00001.mp4"
    assert second["ui"]["images"][0]["filename"] == "clip_00002.mp4"
    assert (nested["ui"]["images"][0]["subfolder"], nested["ui"]["images"][0]["filename"]) == ("talks", "clip_00001.mp4")
    assert sorted(listing(out_dir)) == ["clip_00001.mp4", "clip_00002.mp4", "talks", "talks/clip_00001.mp4"]
    item = first["ui"]["images"][0]
    assert (item["type"], item["format"], item["frames"], item["fps"]) == ("output", "video/mp4", FPS, FPS)
    assert item["duration"] == pytest.approx(1.0)
    assert "subtitles" not in first["ui"]

    info = ffprobe(out_dir / "clip_00001.mp4")
    (video,), (audio_stream,) = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], audio_stream["codec_name"]) == ("h264", "aac")
    assert (video["width"], video["height"], video["nb_frames"]) == (W, H, FPS)
    assert abs(video["duration"] - audio_stream["duration"]) <= 1 / FPS


def test_save_video_intermediate_keeps_the_audio_lossless(out_dir, still):
    """`intermediate` (what the orchestrator sets): a .mov whose audio is the 16-bit PCM of the
    narration, sample for sample; without it, the playable MP4 above."""
    samples = (0.4 * sine(0.93) + 0.05 * np.random.default_rng(1).standard_normal(int(0.93 * SR))).astype(np.float32)
    result = PodiumSaveVideo().save(still, _audio(samples[None, None]), FPS, "seg", "none",
                                    intermediate=True)
    item = result["ui"]["images"][0]
    assert (item["filename"], item["format"], item["frames"]) == ("seg_00001.mov", "video/quicktime", 9)
    info = ffprobe(out_dir / "seg_00001.mov")
    (video,), (audio_stream,) = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], audio_stream["codec_name"]) == ("h264", "pcm_s16le")
    assert int(audio_stream["sample_rate"]) == SR and video["nb_frames"] == 9
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out_dir / "seg_00001.mov"), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    want = (np.clip(samples, -1, 1) * 32767.0).astype("<i2")[:int(round(0.9 * SR))]  # 9 frames' worth
    assert np.array_equal(np.frombuffer(raw, "<i2"), want)


def test_save_video_refuses_a_prefix_outside_the_output_folder(out_dir, still):
    with pytest.raises(ValueError, match="outside the output folder"):
        PodiumSaveVideo().save(still, _audio(sine()[None, None]), FPS, "../escape", "none")
    assert not (out_dir.parent / "escape_00001.mp4").exists()


def test_save_video_writes_srt_beside_the_mp4(out_dir, still):
    builder = SpeechBuilder(SR, pause_s=0.3)
    builder.add_sentence("First words here.", sine(0.6))
    builder.add_sentence("Then some more.", sine(0.5))
    builder.end_segment()
    speech = builder.build()
    (cues,) = PodiumSubtitles().cue(speech, 42)
    result = PodiumSaveVideo().save(still, _audio(speech.samples[None, None]), FPS, "sub", "srt", subtitles=cues)
    # the .srt first (what the orchestrator stitches as subtitles), then the captions as drawn (.ass)
    assert result["ui"]["subtitles"] == [{"filename": f"sub_00001.{ext}", "subfolder": "", "type": "output"}
                                         for ext in ("srt", "ass")]
    parsed = parse_srt(out_dir / "sub_00001.srt")
    assert [c[2] for c in parsed] == ["First words here.", "Then some more."]
    assert parsed[0][0] == pytest.approx(0.25, abs=1e-3) and parsed[0][1] == pytest.approx(0.85, abs=1e-3)
    assert parsed[1][0] == pytest.approx(1.15, abs=1e-3) and parsed[1][1] == pytest.approx(1.65, abs=1e-3)
    assert sorted(listing(out_dir)) == ["sub_00001.ass", "sub_00001.mp4", "sub_00001.srt"]


def test_save_video_errors_leave_nothing(out_dir, still):
    with pytest.raises(PodiumError, match="no subtitles are connected"):
        PodiumSaveVideo().save(still, _audio(sine()[None, None]), FPS, "x", "srt")
    with pytest.raises(PodiumError, match="audio is empty"):
        PodiumSaveVideo().save(still, _audio(np.zeros((1, 1, 0), np.float32)), FPS, "x", "none")
    assert not out_dir.exists() or listing(out_dir) == {}


def _saved_audio(out_dir, still, waveform, prefix) -> np.ndarray:
    result = PodiumSaveVideo().save(still, _audio(waveform), FPS, prefix, "none")
    return decode_audio(out_dir / result["ui"]["images"][0]["filename"])


def test_save_video_takes_torch_audio_and_averages_stereo(out_dir, still):
    tone = sine(1.0, amplitude=0.4)
    mono = _saved_audio(out_dir, still, torch.from_numpy(tone)[None, None], "mono")
    half = _saved_audio(out_dir, still, torch.from_numpy(np.stack([tone, np.zeros_like(tone)]))[None], "half")
    cancel = _saved_audio(out_dir, still, torch.from_numpy(np.stack([tone, -tone]))[None], "cancel")
    assert rms(mono) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)
    assert rms(half) == pytest.approx(rms(mono) / 2, rel=0.1)  # (L + R) / 2, not L alone
    assert rms(cancel) < 0.01 * rms(mono)
    # A batch: the first item is the one saved.
    batch = torch.from_numpy(np.stack([np.zeros_like(tone), tone])[:, None])  # (2, 1, T)
    first_only = _saved_audio(out_dir, still, batch, "batch")
    assert rms(first_only) < 0.01 * rms(mono)
    # numpy stereo is averaged the same way.
    half_np = _saved_audio(out_dir, still, np.stack([tone, np.zeros_like(tone)])[None], "half_np")
    assert rms(half_np) == pytest.approx(rms(half), rel=0.05)


# ---- the nodes chained by hand, as ComfyUI runs them (torch loaded: AUDIO is a tensor) ----

def test_nodes_chained_with_the_real_voice(out_dir):
    (script,) = PodiumDirectScript().make("## Hello\nHello there. Goodbye now.", 60)
    speech, audio = PodiumPiperTTS().speak(script, "piper-en_US-joe-medium", 1.0, 0.3)
    assert isinstance(audio["waveform"], torch.Tensor) and audio["waveform"].shape[:2] == (1, 1)
    assert audio["sample_rate"] == speech.sample_rate
    assert audio["waveform"].shape[2] == len(speech.samples)
    assert [s.text for s in speech.sentences] == ["Hello there.", "Goodbye now."]
    assert PodiumPresenter.VALIDATE_INPUTS(portrait_path="") is True
    (visual,) = PodiumPresenter().present(script, speech, W, H, 1.0)
    assert isinstance(visual, SlideDeck)
    (cues,) = PodiumSubtitles().cue(speech, 42)
    result = PodiumSaveVideo().save(visual, audio, FPS, "podium/video", "srt", subtitles=cues)
    item = result["ui"]["images"][0]
    video = out_dir / item["subfolder"] / item["filename"]
    assert video == out_dir / "podium" / "video_00001.mp4"
    info = ffprobe(video)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert v["nb_frames"] == item["frames"] == round(a["duration"] * FPS)
    assert a["duration"] == pytest.approx(speech.duration, abs=1 / FPS)
    assert rms(decode_audio(video)) > 0.01
    assert [c[2] for c in parse_srt(video.with_suffix(".srt"))] == ["Hello there.", "Goodbye now."]


def test_save_image_writes_the_first_image_as_png(out_dir):
    from PIL import Image

    from podium.nodes.output import PodiumSaveImage

    torch = pytest.importorskip("torch")
    batch = torch.zeros(2, 6, 8, 3)
    batch[0, :, :, 0] = 1.0  # first image red, second black
    ui = PodiumSaveImage().save(batch, "people/host")["ui"]["images"][0]
    assert (ui["subfolder"], ui["filename"]) == ("people", "host_00001.png")
    with Image.open(out_dir / "people" / "host_00001.png") as image:
        assert image.size == (8, 6) and image.getpixel((3, 3)) == (255, 0, 0)
    assert sorted(listing(out_dir)) == ["people", "people/host_00001.png"]  # no temp file left
