"""Scene shots on ComfyUI servers: per server, the core video graph for `[scene: ...]` shots
when it can run it, else the Scene node's in-process fallbacks, said per server as the cinema
preset says its graphs.

The graph is workflows/scene_wan22_5b.json (ComfyUI's own Wan 2.2 TI2V 5B template,
video_wan2_2_5B_ti2v.json in the comfyui-workflow-templates-json package: UNETLoader
wan2.2_ti2v_5B, CLIPLoader umt5-xxl type wan, VAELoader wan2.2_vae, ModelSamplingSD3 shift 8,
Wan22ImageToVideoLatent, KSampler 20 steps cfg 5 uni_pc/simple, VAEDecode). Its nodes upstream
of its Scene node's `clip` input (the shot chain, from the Podium Scene shot node that reads the
segment's scene) are put into the job's graph and wired to that graph's Scene node, Script,
Voice and Presenter; the Scene node loops the frames over the narration as it loops the
in-process clip, so the camera move, the length and the PiP layout are one code path. A server
lacking a class or a model file (checked as cinema checks: /object_info and its model lists)
keeps the Scene node alone: a still from the preset's image model with the camera move, else a
title card.

Shots are cached with their segments: the shot chain (prompt source, seed, size, model files,
sampler) is part of the segment's bound graph, which the segment cache keys on.
"""
from __future__ import annotations

import copy
import sys
from typing import Callable

from orchestrator.graphs.workflow import find_node, load_workflow
from orchestrator.servers import cinema

WORKFLOW = "scene_wan22_5b"
SCENE = "Scene"
SHARED = ("Script", "Voice", "Presenter")  # titles the shot chain reads from the job's graph
SHOT = "Scene shot"
SAMPLER = "Scene sampler"


def _title(node: dict) -> str:
    return (node.get("_meta") or {}).get("title", "")


def shot_chain(stored: dict) -> dict:
    """The stored graph's nodes that make the clip (upstream of its Scene node's `clip`), less
    the nodes the job's graph already has (SHARED titles)."""
    scene = stored[find_node(stored, SCENE)]
    todo, chain = [scene["inputs"]["clip"][0]], {}
    while todo:
        node_id = todo.pop()
        if node_id in chain or _title(stored[node_id]) in SHARED:
            continue
        chain[node_id] = copy.deepcopy(stored[node_id])
        todo += [v[0] for v in chain[node_id]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return {k: chain[k] for k in sorted(chain, key=int)}  # the stored order: loaders first


def with_shot_chain(graph: dict, chain: dict, stored: dict) -> dict:
    """`graph` (with its Scene node) with the chain added under new ids, wired to the graph's own
    Script/Voice/Presenter, sized and seeded as its Scene node; the Scene node takes the frames."""
    graph = copy.deepcopy(graph)
    scene = graph[find_node(graph, SCENE)]["inputs"]
    start = max(int(k) for k in graph if k.isdigit()) + 1
    ids = {old: str(start + i) for i, old in enumerate(sorted(chain, key=int))}
    shared = {}
    for title in SHARED:
        mine = [k for k, n in graph.items() if _title(n) == title]
        shared[find_node(stored, title)] = mine[0] if mine else None
    for old, node in chain.items():
        node = copy.deepcopy(node)
        for name, value in list(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] in shared:
                if shared[value[0]] is None:  # no presenter in this graph: text-to-video only
                    del node["inputs"][name]
                else:
                    node["inputs"][name] = [shared[value[0]], value[1]]
            elif isinstance(value, list) and len(value) == 2:
                node["inputs"][name] = [ids[value[0]], value[1]]
        graph[ids[old]] = node
    shot = graph[ids[find_node(stored, SHOT)]]["inputs"]
    shot["width"], shot["height"] = scene["width"], scene["height"]
    graph[ids[find_node(stored, SAMPLER)]]["inputs"]["seed"] = scene["seed"]
    clip = stored[find_node(stored, SCENE)]["inputs"]["clip"]
    scene["clip"] = [ids[clip[0]], clip[1]]
    scene["clip_fps"] = stored[find_node(stored, SCENE)]["inputs"]["clip_fps"]
    return graph


def _old_pack(offer: cinema.ServerOffer) -> bool:
    """A server whose Podium pack predates the Scene node's clip input."""
    optional = ((offer.object_info.get("PodiumScene") or {}).get("input") or {}).get("optional") or {}
    return "PodiumScene" in offer.object_info and "clip" not in optional


def _why(unfit: cinema.Unfit, offer: cinema.ServerOffer) -> str:
    """What the server lacks for the chain: a newer Podium pack, core nodes (a newer ComfyUI),
    model files (what to pull)."""
    pack = sorted(c for c in unfit.classes if c.startswith("Podium"))
    if _old_pack(offer):
        pack.append("PodiumScene with a clip input")
    parts = [f"no node {', '.join(pack)} (update the Podium pack there)"] if pack else []
    core = [c for c in unfit.classes if not c.startswith("Podium")]
    parts += [f"no node {', '.join(core)} (update ComfyUI)"] if core else []
    parts += [f"missing {', '.join(unfit.files)}"] if unfit.files else []
    if unfit.pulls:
        parts[-1] += (f"; on the server run: podium models pull {' '.join(dict.fromkeys(unfit.pulls))} "
                      "--comfyui-dir <its ComfyUI folder>")
    return f"{WORKFLOW}: " + "; ".join(parts)


def per_server(instances: list, graphs: dict[str, dict], registry, fallback: str,
               say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
               read: Callable = cinema.read_server, load: Callable = load_workflow) -> dict[str, dict]:
    """{server name: its graph}: `graphs[name]` (with its Scene node) plus the shot chain where
    that server can run it, fitted to its model files; else as it was (`fallback` names what
    the Scene node falls back to). One line per server says which."""
    stored = load(WORKFLOW)
    chain = shot_chain(stored)
    out = {}
    for instance in instances:
        graph = graphs[instance.name]
        try:
            offer = read(instance)
        except Exception as err:  # noqa: BLE001 - said, and the server keeps the in-process shots
            say(f"scenes: {instance.name} makes {fallback} (cannot read what it has: {type(err).__name__}: {err})")
            out[instance.name] = graph
            continue
        fitted, used, notes, unfit = cinema.fit_graph(WORKFLOW, chain, offer, registry)
        if fitted is None or _old_pack(offer):
            say(f"scenes: {instance.name} makes {fallback} ({_why(unfit, offer)})")
            out[instance.name] = graph
            continue
        out[instance.name] = with_shot_chain(graph, fitted, stored)
        extra = "; " + "; ".join(notes) if notes else ""
        say(f"scenes: {instance.name} makes the shots with {WORKFLOW} ({', '.join(used)}){extra}")
    return out
