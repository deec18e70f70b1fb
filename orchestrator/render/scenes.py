"""Scene shots in any preset's graph: a Scene node between what the preset shows and where it
goes, added (API format) only when the script has `[scene: ...]` marks, so other graphs and
their cached segments stay as they were.

- `--layout full` (default): a segment with a scene shows its shot full frame with the narration
  over it (no presenter picture: the shot is the picture); the others show the presenter.
- `--layout pip`: the shot is the Compose node's background, the talking presenter in its corner
  box on top; segments without a scene keep the script's slides.
- `--layout slides`: the shot, else the slides.

Shots are cached with their segments: the segment's scene is in the Script node's text (its
script JSON) and the generator, seed and size are the Scene node's inputs, all part of the bound
graph the segment cache keys on, so nothing else is needed.
"""
from __future__ import annotations

import copy

from podium.engines.script import Script

from orchestrator.graphs.workflow import find_node

SCENE, LAYOUT = "Scene", "Layout"
OFF = "off (procedural motion)"  # the Scene node's "off" for a model (as the Idle clip node's)
VIDEO_MODEL = "wan2.2-ti2v-5b"


def has_scenes(script: Script) -> bool:
    return any(segment.scene for segment in script.segments)


def generators(preset) -> tuple[str, str]:
    """(video model, image model) the preset's Scene node tries, best first: the CPU draft makes
    title cards (nothing to download); the others Wan 2.2 TI2V, else their image model's still."""
    if preset.name == "draft":
        return OFF, OFF
    return VIDEO_MODEL, preset.image_model or OFF


def fallback_line(video_model: str, image_model: str) -> str:
    """What a server without the core shot graph makes its shots with (the Scene node alone)."""
    still = f"a still from {image_model} with the camera move, else " if image_model != OFF else ""
    video = f"{video_model} in-process where installed, else " if video_model != OFF else ""
    return f"the shots in-process: {video}{still}a title card"


def scene_graph(graph: dict, size: tuple[int, int], seed: int, video_model: str, image_model: str) -> dict:
    """The graph (already in its layout) with the Scene node in place; the input is not changed."""
    graph = copy.deepcopy(graph)
    layout = [k for k, n in graph.items() if n.get("_meta", {}).get("title") == LAYOUT]
    target = graph[layout[0]]["inputs"] if layout else graph[find_node(graph, "Save video")]["inputs"]
    key = "background" if layout else "visual"
    scene_id = str(max(int(k) for k in graph if k.isdigit()) + 1)
    inputs = {"script": [find_node(graph, "Script"), 0], "speech": [find_node(graph, "Voice"), 0],
              "width": size[0], "height": size[1], "video_model": video_model, "image_model": image_model,
              "seed": seed, "steps": 0, "resolution": 1280, "clip_seconds": 5.0, "fallback": target[key]}
    presenters = [k for k, n in graph.items() if n["class_type"] == "PodiumPresenter"
                  and n.get("_meta", {}).get("title") == "Presenter"]
    if presenters:  # its portrait starts the shots `with the presenter`
        inputs["presenter"] = [presenters[0], 0]
    graph[scene_id] = {"class_type": "PodiumScene", "_meta": {"title": SCENE}, "inputs": inputs}
    target[key] = [scene_id, 0]
    return graph
