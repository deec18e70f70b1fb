"""The cinema graphs (workflows/cinema_s2v.json, cinema_humo.json) in a real ComfyUI 0.3.64 on
CPU, with tiny random-weight models its own loaders read (tests/tiny_wan.py):
- each graph as shipped validates: POST /prompt answers 200 with empty node_errors (the model
  names bound to the tiny files; the text encoder, and HuMo's whisper, are placeholder files,
  see below);
- each runs end to end at 64x64 (S2V) / 32x32 (HuMo), a second of speech, two steps: Piper speaks, the core Wan nodes make
  the frames from the portrait and the audio features, Podium holds the colour, retimes 16 fps
  (HuMo: 25) to 25 fps, upscales and writes an MP4 whose video and audio agree within a frame.

What is not tiny (ComfyUI fixes its size) and how it is covered: the umt5-xxl text encoder
(5.7 B) and, for HuMo, whisper-large-v3 (635 M, always 30 s of audio). For validation they are
placeholder files of the shipped names (validation checks names; the run that follows fails in
that loader, which the test checks). For the end-to-end run the test-only nodes in
tests/comfy_stand_ins give CONDITIONING / AUDIO_ENCODER_OUTPUT of their exact shapes in their
place. wav2vec2-large (S2V's encoder) and the Wan 2.1 VAE run at their real size, random weights.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_cinema.py
"""
from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import COMFYUI_DIR, comfyui_server, draw_portrait, ffprobe, live_comfyui, run_prompt, streams
from orchestrator.render.presets import speak_with_piper
from orchestrator.graphs.workflow import bind, find_node, load_workflow

pytestmark = live_comfyui

REPO = Path(__file__).resolve().parent.parent
FPS = 25
# S2V's frame packer (the Extend chunk's motion context) has a 4x8x8 kernel: a 64x64 frame
# (8x8 latent) is its least; HuMo runs at 32x32.
SIZE = {"s2v": 64, "humo": 32}
PLACEHOLDERS = {"text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                "audio_encoders": "whisper_large_v3_encoder_fp16.safetensors"}
# Frames per generation in the CPU runs: small, so that a sentence of a second or two is a
# chain of several chunks (the continuation path), as a long sentence is at full size.
CPU_MAX_FRAMES = {"s2v": 9, "humo": 13}
# The model lists a graph's loaders name, pointed at the tiny files.
TINY_NAMES = {
    "s2v": {("Diffusion model", "unet_name"): "tiny_wan22_s2v.safetensors",
            ("VAE", "vae_name"): "tiny_wan21_vae.safetensors",
            ("Audio encoder", "audio_encoder_name"): "tiny_wav2vec2_large.safetensors"},
    "humo": {("Diffusion model", "unet_name"): "tiny_humo.safetensors",
             ("VAE", "vae_name"): "tiny_wan21_vae.safetensors"},
}


def make_base(base: Path) -> list[str]:
    """A ComfyUI base directory: the pack and the test-only stand-ins linked in, the tiny cinema
    models and the placeholders in models/, a portrait, a still Piper voice and a tiny
    Real-ESRGAN x2 in input/; the ComfyUI command line that serves it."""
    from tiny_wan import install_tiny_cinema_models
    from test_upscale import build as build_upscaler
    from podium.models import resolve

    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "podium").symlink_to(REPO / "custom_nodes" / "podium")
    (base / "custom_nodes" / "podium_test_stand_ins").symlink_to(REPO / "tests" / "comfy_stand_ins")
    for name in ("input", "output", "temp", "user"):
        (base / name).mkdir()
    install_tiny_cinema_models(base / "models", "all", COMFYUI_DIR)
    install_empty_distill_loras(base / "models")
    for folder, name in PLACEHOLDERS.items():
        (base / "models" / folder).mkdir(parents=True, exist_ok=True)
        (base / "models" / folder / name).write_bytes(b"placeholder: not a model")
    draw_portrait(base / "input" / "portrait.png", 64, 64)
    with wave.open(str(base / "input" / "reference.wav"), "wb") as wav:  # what --voice-ref gives
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000)
        wav.writeframes((np.sin(np.arange(16000) * 0.05) * 8000).astype("<i2").tobytes())
    build_upscaler(base / "input" / "tiny_x2.pth", scale=2, num_block=1)
    voice = Path(resolve("piper-en_US-joe-medium"))
    (base / "input" / "joe.onnx").write_bytes(voice.read_bytes())
    config = json.loads(Path(f"{voice}.json").read_text())
    config.setdefault("inference", {}).update(noise_scale=0.0, noise_w=0.0)
    (base / "input" / "joe.onnx.json").write_text(json.dumps(config))
    return [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(base), "--database-url", "sqlite:///:memory:"]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui-cinema")
    args = make_base(base)
    with comfyui_server(args, cwd=base, log_path=base / "comfyui.log") as server:
        yield {**server, "base": base}


def shipped(kind: str) -> dict:
    """The shipped graph with its model names bound to the tiny files and the voice reference
    bound as the orchestrator binds --voice-ref."""
    return bind(load_workflow(f"cinema_{kind}"), {**TINY_NAMES[kind], ("Voice", "reference_audio"): "reference.wav",
                                                 ("Voice", "ref_text"): "A reference voice."})


def small(kind: str) -> dict:
    """The shipped graph made small (64x64 / 32x32, 2 steps, Piper, the tiny upscaler, a few
    frames per generation so that a short sentence is already a chain; the chunks are the
    chain node's own, from the audio) with the stand-ins in place of the encoders a CPU cannot run."""
    graph = speak_with_piper(shipped(kind))
    values = {("Script", "text"): LONG_SENTENCE,
              ("Voice", "voice_path"): "joe.onnx",
              ("Upscale", "model_path"): "tiny_x2.pth", ("Upscale", "region"): "frame",
              ("Output fps", "value"): FPS, ("Save video", "filename_prefix"): f"podium/cinema_{kind}",
              ("Talking chain", "steps"): 2, ("Talking chain", "max_frames"): CPU_MAX_FRAMES[kind]}
    for title in ("Talking chain", "Generation size: portrait"):
        values[(title, "width")] = values[(title, "height")] = SIZE[kind]
    graph = bind(graph, values)
    for title in ("Motion prompt", "Negative prompt"):  # umt5-xxl -> its stand-in
        node = graph[find_node(graph, title)]
        graph[find_node(graph, title)] = {"class_type": "TestStandInUMT5Encode",
                                          "inputs": {"text": node["inputs"]["text"]}, "_meta": node["_meta"]}
    del graph[find_node(graph, "Text encoder")]
    if kind == "humo":  # whisper-large-v3 -> its stand-in (ComfyUI's AudioEncoderEncode still runs)
        loader = find_node(graph, "Audio encoder")
        graph[loader] = {"class_type": "TestStandInWhisperLoader", "inputs": {}, "_meta": graph[loader]["_meta"]}
    return graph


def install_empty_distill_loras(models: Path) -> None:
    """The distill LoRA files the graphs name, holding no weights: ComfyUI's LoRA loader runs on
    them for real (the tiny models have no layer a real LoRA could patch)."""
    from safetensors.torch import save_file
    import torch

    (models / "loras").mkdir(parents=True, exist_ok=True)
    for kind in ("infinitetalk", "s2v", "humo"):
        graph = load_workflow(f"cinema_{kind}")
        name = graph[find_node(graph, "Distill LoRA")]["inputs"]["lora_name"]
        if not (models / "loras" / name).exists():
            save_file({"podium.empty": torch.zeros(1)}, str(models / "loras" / name))


def wait_history(comfy: dict, prompt_id: str, timeout: float = 300) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        entry = requests.get(f"{comfy['url']}/history/{prompt_id}").json().get(prompt_id)
        if entry and entry["status"].get("completed") is not None and entry["status"]["status_str"] in ("success", "error"):
            return entry
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")


@pytest.mark.parametrize("kind", ["s2v", "humo"])
def test_shipped_graph_validates(comfy, kind):
    graph = shipped(kind)
    answer = requests.post(comfy["url"] + "/prompt", json={"prompt": graph})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["node_errors"] == {}
    # It was queued: it then fails in a loader of a placeholder (nothing here can run umt5-xxl,
    # nor the F5 voice without a reference), never in validation.
    entry = wait_history(comfy, body["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert graph[error["node_id"]]["class_type"] in ("CLIPLoader", "AudioEncoderLoader", "PodiumF5VoiceClone"), error


@pytest.mark.parametrize("kind,model_class", [("s2v", "WAN22_S2V"), ("humo", "WAN21_HuMo")])
def test_graph_runs_to_an_mp4_with_both_streams_in_step(comfy, tmp_path, kind, model_class):
    graph = small(kind)
    entry, messages = run_prompt(comfy, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    ran = {m["data"]["node"] for m in messages if m["type"] == "executing"} - {None}
    chain = find_node(graph, "Talking chain")
    assert {find_node(graph, t) for t in ("Diffusion model", "Talking chain", "Retime", "Save video")} <= ran
    expanded = {n for n in ran if n.startswith(chain + ".")}  # the nodes the chain expanded into
    assert len(expanded) > 4, ran  # (one chunk is encoder, video node, sampler, decode)
    log = comfy["log"].read_text()
    assert f"Requested to load {model_class}" in log  # the tiny model really sampled
    video = entry["outputs"][find_node(graph, "Save video")]["images"][0]
    answer = requests.get(comfy["url"] + "/view", params={k: video[k] for k in ("filename", "subfolder", "type")})
    assert answer.status_code == 200
    path = tmp_path / "cinema.mp4"
    path.write_bytes(answer.content)
    info = ffprobe(path)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert (v["width"], v["height"]) == (2 * SIZE[kind], 2 * SIZE[kind])  # the x2 upscaler ran
    assert abs(v["duration"] - a["duration"]) <= 1 / FPS, (v["duration"], a["duration"])
    assert v["nb_frames"] == round(a["duration"] * FPS) or abs(v["nb_frames"] / FPS - a["duration"]) <= 1 / FPS
    assert a["duration"] > 0.5  # the narration is there, not an empty clip


LONG_SENTENCE = "Hello there, and welcome."  # at CPU_MAX_FRAMES, a chain of three or more chunks
ONE_WORD = "Thanks."


@pytest.mark.timeout(1800)  # two CPU ComfyUIs on a shared 2-core machine: about 10-25 min
def test_a_long_sentence_and_a_one_word_paragraph_over_an_s2v_and_a_humo_server(comfy, tmp_path):
    """Two servers, one running the S2V graph and one HuMo (each its own graph, as the cinema
    preset gives them), the orchestrator's own segmenting, dispatch, cache and stitching: the
    long sentence is a chain of chunks, the one word a single one, and every clip and the
    stitched MP4 keep video and audio within a frame."""
    from orchestrator.servers.dispatch import render_all
    from orchestrator.servers.remote import ComfyInstance
    from orchestrator.render.segments import SegmentCache, plan_per_server
    from orchestrator.render.stitch import stitch
    from podium.engines.chunks import plan_chunks
    from podium.engines.script import parse_script

    second = tmp_path / "second"
    args = make_base(second)
    with comfyui_server(args, cwd=second, log_path=second / "comfyui.log") as other:
        servers = {"s2v": ComfyInstance(comfy["url"]), "humo": ComfyInstance(other["url"])}
        script = parse_script(f"{LONG_SENTENCE}\n\n{ONE_WORD}")
        assert len(script.segments) == 2
        bound = {servers[kind].name: (small(kind), {}, {}) for kind in servers}  # portrait.png in both inputs
        jobs = plan_per_server(bound, script)
        clips = render_all(jobs, list(servers.values()), SegmentCache(tmp_path / "cache"), lambda *event: None)
        out = stitch(clips, tmp_path / "talk.mp4")
        logs = comfy["log"].read_text() + (second / "comfyui.log").read_text()
    assert "Requested to load WAN22_S2V" in logs and "Requested to load WAN21_HuMo" in logs  # both ran
    for clip in clips:
        info = ffprobe(clip.path)
        (v,), (a,) = streams(info, "video"), streams(info, "audio")
        assert abs(v["duration"] - a["duration"]) <= 1 / FPS, (clip.path, v["duration"], a["duration"])
    long_s = ffprobe(clips[0].path)["format"]["duration"]
    assert len(plan_chunks("s2v", float(long_s), CPU_MAX_FRAMES["s2v"]).chunks) > 2  # it was a chain
    info = ffprobe(out)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / FPS
