"""`podium generate --plan`: what a run would do and cost, as JSON, rendering nothing.

Segments (text, estimated seconds), per server the graph it runs and, for the cinema graphs,
the chunks each generation makes (engines/chunks.py, the arithmetic PodiumWanChain uses), and
the GPU time from the benchmark figures (orchestrator/render/bench_figures.json: seconds of compute per
second of video, written from scripts/bench/gpu.sh's table). Sizes come from an estimate of
the speech (a slow narrator, so upper bounds): the real chain is counted from the real audio
when it runs, so a slower voice adds chunks, never a failure.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from podium.engines.chunks import plan_chunks

from orchestrator.servers import cinema

FIGURES = Path(__file__).resolve().parent / "bench_figures.json"
CHAIN_CLASS = "PodiumWanChain"


def figures() -> dict:
    """{graph or preset name: seconds of GPU compute per second of video}, and their source."""
    try:
        return json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        return {"source": "none", "s_per_s": {}}


def chain_kind(graph: dict) -> Optional[str]:
    """The cinema model a graph chains (its PodiumWanChain's kind), None for other graphs."""
    kinds = [n["inputs"].get("kind") for n in graph.values() if n.get("class_type") == CHAIN_CLASS]
    return kinds[0] if kinds else None


def segment_entries(script) -> list[dict]:
    return [{"index": i, "text": " ".join(s.sentences), "speaker": s.speaker,
             "estimated_s": round(cinema.spoken_seconds(s.sentences), 2)} for i, s in enumerate(script.segments)]


def server_entry(name: str, workflow: str, graph: dict, segments: list[dict], size=None, notes=()) -> dict:
    """One server's plan: the graph, per segment the chunks (cinema) and the GPU estimate."""
    kind = chain_kind(graph)
    rates = figures()
    rate = rates.get("s_per_s", {}).get(workflow)
    entry = {"server": name, "workflow": workflow, "notes": list(notes)}
    if size:
        entry["size"] = f"{size[0]}x{size[1]}"
    generations = []
    for seg in segments:
        gen = {"segment": seg["index"]}
        if kind:
            gen.update(plan_chunks(kind, seg["estimated_s"]).to_dict())
        generations.append(gen)
    entry["generations"] = generations
    video_s = sum(s["estimated_s"] for s in segments)
    entry["gpu_s_per_video_s"] = rate
    entry["estimated_gpu_s_if_alone"] = round(rate * video_s, 1) if rate is not None else None
    return entry


def unfit_entry(instance, workflows: list[str], sizes, out_size, registry, load) -> dict:
    """A server that can run no cinema graph: why, and the `podium models pull` line."""
    try:
        offer = cinema.read_server(instance)
    except Exception as err:  # noqa: BLE001 - said in the plan
        return {"server": instance.name, "error": f"cannot read what it has ({type(err).__name__}: {err})"}
    graphs = [(Path(w).stem, load(w)) for w in workflows]
    _, unfits = cinema.choose_graph(graphs, offer, registry, sizes, out_size)
    return {"server": instance.name, "error": cinema.what_to_pull([unfits]),
            "reasons": [u.reason() for u in unfits]}


def build(script, preset, graph: dict, picks: dict, instances: list, out_size, registry=None,
          load=None) -> dict:
    """The whole plan. `picks`: {server: cinema.Pick} (cinema), else every instance runs `graph`."""
    segments = segment_entries(script)
    video_s = sum(s["estimated_s"] for s in segments)
    servers = []
    if picks:
        for name, pick in picks.items():
            servers.append(server_entry(name, pick.workflow, pick.graph, segments, pick.size, pick.notes))
        for instance in instances:
            if instance.name not in picks and registry is not None and load is not None:
                servers.append(unfit_entry(instance, preset.graphs, preset.sizes, out_size, registry, load))
    else:
        workflow = getattr(preset, "workflow", "") or ""
        for instance in instances:
            servers.append(server_entry(getattr(instance, "name", "in-process"), workflow, graph, segments))
    rates = [s["estimated_gpu_s_if_alone"] for s in servers if s.get("estimated_gpu_s_if_alone") is not None]
    parallel = len(rates) or 1
    return {"preset": preset.name, "segments": segments, "estimated_video_s": round(video_s, 2),
            "servers": servers, "figures_source": figures().get("source"),
            "estimated_gpu_s": round(min(rates) / parallel * 1.0, 1) if rates else None,
            "note": "estimated_gpu_s: the fastest server's rate with the segments spread over all "
                    f"{parallel} server(s); each segment (paragraph) is one take, so a take's chunks "
                    "run one after another on one server"}


def show(plan: dict) -> None:
    """Print the plan and end the command: nothing is rendered."""
    print(json.dumps(plan, indent=2, ensure_ascii=False))
    sys.stdout.flush()
    raise SystemExit(0)
