"""The cinema graphs without a server.

cinema_infinitetalk.json needs WanInfiniteTalkToVideo, which ComfyUI 0.3.64 does not have: it is
validated here, with the orchestrator's port of ComfyUI's validation (orchestrator/render/local.py:
every required input, link types, ranges, lists), against the node definitions of current ComfyUI
recorded from its source in tests/data/comfyui-0.38/object_info_infinitetalk.json (the Podium
nodes are the pack's own classes); every input the graph sets must be declared by its node.
All three graphs: frames made at the model's native rate and retimed from it, the output fps
set in one place, every chunk anchored on the portrait. (S2V and HuMo are validated by a live
ComfyUI 0.3.64 in tests/test_comfyui_cinema.py.)
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from orchestrator.render.local import PromptError, validate
from orchestrator.render.presets import speak_with_piper
from orchestrator.graphs.workflow import find_node, load_workflow
from podium.engines.chunks import plan_chunks
from podium.nodes import NODE_CLASS_MAPPINGS

REPO = Path(__file__).resolve().parents[1]
RECORDED = json.loads((REPO / "tests/data/comfyui-0.38/object_info_infinitetalk.json").read_text())
NATIVE_FPS = {"s2v": 16.0, "humo": 25.0, "infinitetalk": 25.0}
FILE_INPUTS = {"unet_name", "clip_name", "vae_name", "audio_encoder_name", "name", "image", "lora_name"}


def v1_spec(spec: list) -> list:
    """A V3 /object_info input spec as V1's: a COMBO's options, a DynamicCombo's option keys."""
    typ, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if typ == "COMBO":
        return [list(opts.get("options", [])), {k: v for k, v in opts.items() if k != "options"}]
    if typ == "COMFY_DYNAMICCOMBO_V3":
        return [[o["key"] for o in opts["options"]], {}]
    return spec


def classes_from_object_info(info: dict, graph: dict) -> dict[str, type]:
    """Classes with INPUT_TYPES / RETURN_TYPES / OUTPUT_NODE from recorded /object_info entries.
    A file-name list is a server's folder contents (recorded empty): it gets the graph's own
    value, so that check passes here and is left to a live server."""
    used = {(n["class_type"], k): v for n in graph.values() for k, v in n["inputs"].items()}
    out = {}
    for name, entry in info.items():
        if name.startswith("_"):
            continue
        inputs = {}
        for category, specs in entry["input"].items():
            inputs[category] = {}
            for key, spec in specs.items():
                spec = v1_spec(spec)
                if key in FILE_INPUTS and isinstance(spec[0], list) and not spec[0] and (name, key) in used:
                    spec = [[used[(name, key)]], *spec[1:]]
                inputs[category][key] = spec
        out[name] = type(name, (), {"INPUT_TYPES": classmethod(lambda cls, i=inputs: copy.deepcopy(i)),
                                    "RETURN_TYPES": tuple(entry["output"]), "FUNCTION": "run",
                                    "OUTPUT_NODE": entry["output_node"]})
    return out


def infinitetalk() -> tuple[dict, dict]:
    graph = speak_with_piper(load_workflow("cinema_infinitetalk"))
    return graph, {**classes_from_object_info(RECORDED, graph), **NODE_CLASS_MAPPINGS}


def expanded(graph: dict, seconds: float) -> tuple[dict, str]:
    """The graph with its PodiumWanChain replaced by what the node expands into for `seconds` of
    audio (the node's own code, ComfyUI's GraphBuilder), its outputs re-linked; and the id of
    the node that yields the frames."""
    import sys

    import numpy as np
    from conftest import COMFYUI_DIR, HAVE_COMFYUI
    if not HAVE_COMFYUI:  # the chain expands through ComfyUI's own GraphBuilder
        pytest.skip("set COMFYUI_DIR to a ComfyUI source tree: the chain expands with its GraphBuilder")
    sys.path.insert(0, str(COMFYUI_DIR))
    from podium.nodes.chain import PodiumWanChain

    chain_id = find_node(graph, "Talking chain")
    node = graph[chain_id]
    dynprompt = type("D", (), {"get_node": lambda self, i: graph[i]})()
    audio = {"waveform": np.full((1, 1, int(16000 * seconds)), 0.1, np.float32), "sample_rate": 16000}
    values = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
    out = PodiumWanChain().chain(**{**values, "model": None, "positive": None, "negative": None, "vae": None,
                                    "audio": audio, "audio_encoder": None, "portrait": None,
                                    "model_patch": object() if "model_patch" in node["inputs"] else None},
                                 unique_id=chain_id, dynprompt=dynprompt)
    frames, fps = out["result"]
    merged = {k: copy.deepcopy(v) for k, v in graph.items() if k != chain_id}
    for n in merged.values():
        for key, value in n["inputs"].items():
            if value == [chain_id, 0]:
                n["inputs"][key] = frames
            elif value == [chain_id, 1]:
                n["inputs"][key] = fps
    merged.update(out["expand"])
    return merged, frames[0]


def test_infinitetalk_graph_is_valid_for_current_comfyui():
    graph, classes = infinitetalk()
    assert set(n["class_type"] for n in graph.values()) <= set(classes)
    for node_id, node in graph.items():
        declared = classes[node["class_type"]].INPUT_TYPES()
        names = {**declared.get("required", {}), **declared.get("optional", {})}
        assert set(node["inputs"]) <= set(names), (node_id, set(node["inputs"]) - set(names))
    for seconds in (0.05, 0.4, 3.3, 12.0):  # one chunk, and chains of two and several
        merged, _ = expanded(graph, seconds)
        assert validate(merged, classes) == [find_node(merged, "Save video")]
        talks = [k for k, n in merged.items() if n["class_type"] == "WanInfiniteTalkToVideo"]
        assert len(talks) == len(plan_chunks("infinitetalk", seconds).chunks)
        for k in talks[1:]:  # every later chunk continues from all frames made so far
            previous = merged[k]["inputs"]["previous_frames"]
            assert merged[previous[0]]["class_type"] in ("VAEDecode", "ImageBatch")
        drops = [n for n in merged.values() if n["class_type"] == "ImageFromBatch"]
        assert all(n["inputs"]["batch_index"] == 9 for n in drops) and len(drops) == len(talks) - 1


@pytest.mark.parametrize("break_it", ["link type", "missing input", "out of range", "not an option"])
def test_infinitetalk_check_catches_a_broken_graph(break_it):
    graph, classes = infinitetalk()
    merged, _ = expanded(graph, 6.0)
    chunk2 = [n for n in merged.values() if n["class_type"] == "WanInfiniteTalkToVideo"][1]["inputs"]
    if break_it == "link type":
        chunk2["previous_frames"] = [next(k for k, n in merged.items() if n["class_type"] == "KSampler"), 0]
    elif break_it == "missing input":
        del chunk2["model_patch"]
    elif break_it == "out of range":
        chunk2["motion_frame_count"] = 40  # at most 33
    else:
        chunk2["mode"] = "three_speakers"
    with pytest.raises(PromptError):
        validate(merged, classes)


@pytest.mark.parametrize("kind", ["s2v", "humo", "infinitetalk"])
def test_frames_made_at_the_native_rate_and_retimed_to_one_output_fps(kind):
    graph = load_workflow(f"cinema_{kind}")
    fps = find_node(graph, "Output fps")
    assert graph[fps]["class_type"] == "PrimitiveInt"
    for title in ("Retime", "Frames", "Save video"):
        assert graph[find_node(graph, title)]["inputs"]["fps"] == [fps, 0], title
    chain = find_node(graph, "Talking chain")
    retime = graph[find_node(graph, "Retime")]["inputs"]
    assert retime["source_fps"] == [chain, 1] and retime["images"] == [find_node(graph, "Colour match"), 0]
    voice_audio = [find_node(graph, "Voice"), 1]
    assert retime["audio"] == voice_audio == graph[find_node(graph, "Save video")]["inputs"]["audio"]
    assert graph[chain]["inputs"]["audio"] == voice_audio and graph[chain]["inputs"]["kind"] == kind
    portrait = [find_node(graph, "Generation size: portrait"), 0]  # padded to the generation aspect
    assert graph[portrait[0]]["inputs"]["image"] == [find_node(graph, "Portrait"), 0]
    assert graph[chain]["inputs"]["portrait"] == portrait
    assert graph[find_node(graph, "Colour match")]["inputs"]["reference"] == portrait
    merged, frames = expanded(graph, 9.0)
    assert merged[find_node(merged, "Retime")]["inputs"]["source_fps"] == NATIVE_FPS[kind]
    video = [n for n in merged.values() if n["class_type"] in (
        "WanSoundImageToVideo", "WanSoundImageToVideoExtend", "WanHuMoImageToVideo", "WanInfiniteTalkToVideo")]
    assert len(video) == len(plan_chunks(kind, 9.0).chunks) > 1
    first = video[0]["inputs"]
    assert first.get("ref_image", first.get("start_image")) == portrait  # each take starts on the portrait


def test_the_fast_path_is_the_distill_lora_at_the_templates_steps():
    for kind, steps in (("infinitetalk", 4), ("s2v", 4), ("humo", 6)):
        graph = load_workflow(f"cinema_{kind}")
        lora = graph[find_node(graph, "Distill LoRA")]
        assert "lightx2v" in lora["inputs"]["lora_name"]
        assert graph[find_node(graph, "Model sampling")]["inputs"]["model"] == [find_node(graph, "Distill LoRA"), 0]
        chain = graph[find_node(graph, "Talking chain")]["inputs"]
        assert (chain["steps"], chain["cfg"]) == (steps, 1.0)


def test_frames_node_shows_each_image_at_its_time_and_refuses_odd_sizes():
    import numpy as np

    from podium.errors import PodiumError
    from podium.nodes.frames import PodiumFrames

    batch = np.zeros((5, 4, 6, 3), np.float32)
    for i in range(5):
        batch[i] = i / 4
    (visual,) = PodiumFrames().frames(batch, 25)
    assert (visual.width, visual.height) == (6, 4)
    for i in range(5):
        assert visual.render(i / 25)[0, 0, 0] == round(255 * i / 4)
    with pytest.raises(PodiumError, match="even width and height"):
        PodiumFrames().frames(np.zeros((2, 5, 6, 3), np.float32), 25)
