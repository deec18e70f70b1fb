"""Presets: pick the best one that can run here, or fall to the next, and say why.

The rules live in workflows/presets.yaml (data, like encoder presets); the models a preset
needs are read from its workflow: every input value that is a models.yaml id.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from podium.models import ModelMissingError, load_registry  # pure: PyYAML only

from .workflow import WORKFLOWS_DIR, find_node, load_workflow

PRESETS_FILE = WORKFLOWS_DIR / "presets.yaml"


@dataclass
class Preset:
    name: str
    workflow: str
    vram_gb: float = 0
    needs: list = field(default_factory=list)
    image_model: Optional[str] = None
    cloned_voice: bool = False
    extra_models: list = field(default_factory=list)  # used without being named in the graph
    summary: str = ""


@dataclass
class Choice:
    preset: Preset
    graph: dict
    notes: list[str]  # why presets above it were passed over, and what was substituted


def load_presets(path: Path = PRESETS_FILE) -> tuple[list[str], dict[str, Preset]]:
    data = yaml.safe_load(Path(path).read_text())
    return data["order"], {name: Preset(name, **spec) for name, spec in data["presets"].items()}


def models_in(graph: dict, known: set[str]) -> list[str]:
    """Registry ids a graph uses: its string inputs that are models.yaml ids."""
    return sorted({v for node in graph.values() for v in node["inputs"].values()
                   if isinstance(v, str) and v in known})


def free_vram_gb() -> float:
    """Free memory of the emptiest local NVIDIA GPU, from nvidia-smi (no torch); 0 without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return max(float(v) for v in out.split()) / 1024
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0.0


def _missing(model_ids, registry) -> list[str]:
    missing = []
    for model_id in model_ids:
        try:
            registry.resolve(model_id)
        except ModelMissingError:
            missing.append(model_id)
    return missing


def choose(requested: str, *, have_portrait: bool, have_voice_ref: bool,
           vram_gb: Optional[float] = None, check_models: bool = True) -> Choice:
    """The preset to run for `requested` ("auto" or a name), with the reasons for any fall.

    `check_models=False` when rendering on servers: their model folders are not ours to see.
    """
    order, presets = load_presets()
    if requested != "auto" and requested not in presets:
        raise ValueError(f"unknown preset {requested!r}; choose auto or one of: {', '.join(order)}")
    registry = load_registry()
    known = {entry.id for entry in registry.entries}
    vram = free_vram_gb() if vram_gb is None else vram_gb
    notes: list[str] = []
    candidates = order if requested == "auto" else order[order.index(requested):]
    for name in candidates:
        preset = presets[name]
        graph = load_workflow(preset.workflow)
        why = []
        if preset.cloned_voice and not have_voice_ref:
            graph = speak_with_piper(graph)
            substitute = "no --voice-ref, so the Piper voice speaks instead of a cloned one"
        else:
            substitute = ""
        needed = models_in(graph, known) + (preset.extra_models if preset.cloned_voice and have_voice_ref else [])
        portrait_model = preset.image_model if not have_portrait else None
        if "portrait" in preset.needs and not have_portrait and not preset.image_model:
            why.append("it animates a face: give --image")
        if portrait_model:
            needed.append(portrait_model)
        missing = _missing(needed, registry) if check_models else []
        if missing:
            why.append("missing " + ", ".join(missing) + " (podium models pull " + " ".join(missing) + ")")
        if vram < preset.vram_gb:
            why.append(f"it wants {preset.vram_gb:g} GB of free GPU memory, {vram:.1f} GB found")
        if why:
            notes.append(f"{name}: not used, " + "; ".join(why))
            continue
        if substitute:
            notes.append(f"{name}: {substitute}")
        return Choice(preset, graph, notes)
    raise AssertionError("the draft preset always runs")  # presets.yaml ends with draft


def speak_with_piper(graph: dict) -> dict:
    """The same graph with its Voice node turned into the Piper voice (same outputs)."""
    direct = load_workflow("direct")
    piper = direct[find_node(direct, "Voice")]
    graph = {k: dict(v) for k, v in graph.items()}
    voice_id = find_node(graph, "Voice")
    script_link = graph[voice_id]["inputs"]["script"]
    graph[voice_id] = {**piper, "inputs": {**piper["inputs"], "script": script_link}}
    return graph
