"""Presets: pick the best one that can run here, or fall to the next, and say why.

The rules live in workflows/presets.yaml (data, like encoder presets); the models a preset
needs are read from its workflow: every input value that is a models.yaml id.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from podium.errors import PodiumError, UsageError
from podium.models import ModelMissingError, load_registry  # pure: PyYAML and pydantic only
from podium.validation import field_path, problem_of

from orchestrator.graphs.workflow import WORKFLOWS_DIR, find_node, load_workflow

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
    optional_models: list = field(default_factory=list)  # used when installed and fitting, else done without
    commercial: bool = False  # only models whose commercial_use is true, as with --commercial
    servers_only: bool = False  # ComfyUI-native graphs (cinema): never in-process
    graphs: list = field(default_factory=list)  # candidates, best first, chosen per server
    sizes: list = field(default_factory=list)  # [{vram_gb, size: WxH}]: generation size by GPU memory
    segment_s: float = 0  # narration per generation when the graph does not say (cinema)


@dataclass
class Choice:
    preset: Preset
    graph: dict
    notes: list[str]  # why presets above it were passed over, and what was substituted
    swaps: list[str] = field(default_factory=list)  # --commercial: which model replaced which


class _SizeTier(BaseModel):
    """A generation size and the GPU memory (GB) a server needs for it."""

    model_config = ConfigDict(extra="forbid")
    vram_gb: Annotated[float, Field(ge=0)]
    size: Annotated[str, Field(pattern=r"^\d+x\d+$")]


class _PresetSchema(BaseModel):
    """One preset as written in presets.yaml (its fields are documented there)."""

    model_config = ConfigDict(extra="forbid")
    workflow: str
    vram_gb: Annotated[float, Field(ge=0)] = 0
    needs: list[Literal["portrait"]] = Field(default_factory=list)
    image_model: Optional[str] = None
    cloned_voice: StrictBool = False
    extra_models: list[str] = Field(default_factory=list)
    summary: str = ""
    optional_models: list[str] = Field(default_factory=list)
    commercial: StrictBool = False
    servers_only: StrictBool = False
    graphs: list[str] = Field(default_factory=list)
    sizes: list[_SizeTier] = Field(default_factory=list)
    segment_s: Annotated[float, Field(ge=0)] = 0


class _PresetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order: Annotated[list[str], Field(min_length=1)]
    presets: dict[str, _PresetSchema]
    commercial_swaps: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _order_names_presets(self) -> "_PresetsFile":
        unknown = [name for name in self.order if name not in self.presets]
        if unknown:
            raise ValueError(f"order names {', '.join(unknown)}, not under presets")
        return self


def load_presets(path: Path = PRESETS_FILE) -> tuple[list[str], dict[str, Preset]]:
    """presets.yaml's order and presets; a problem names the file and the field."""
    order, presets, _ = _read_presets(path)
    return order, presets


def _read_presets(path: Path = PRESETS_FILE) -> tuple[list[str], dict[str, Preset], dict[str, str]]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        spec = _PresetsFile.model_validate(data)
    except OSError as err:
        raise PodiumError(f"cannot read the presets file {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PodiumError(f"cannot read the presets file {path}: not valid YAML "
                          f"({getattr(err, 'problem', None) or 'syntax error'}{at})") from None
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = field_path(first["loc"])
        problem = (problem_of(first, "a mapping") if where or first["type"] == "value_error"
                   else "must be a mapping with order: and presets:")
        raise PodiumError(f"{path}: {where + ': ' if where else ''}{problem}") from None
    return (spec.order, {name: Preset(name, **preset.model_dump()) for name, preset in spec.presets.items()},
            spec.commercial_swaps)


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


SERVERS_ONLY = ("it runs on ComfyUI servers only: start them with `podium comfy up`, then pass "
                "--server URL (or --config FILE)")


def choose(requested: str, *, have_portrait: bool, have_voice_ref: bool,
           vram_gb: Optional[float] = None, check_models: bool = True, commercial: bool = False,
           servers: Optional[Callable[[Preset], Optional[str]]] = None) -> Choice:
    """The preset to run for `requested` ("auto" or a name), with the reasons for any fall.

    `check_models=False` when rendering on servers: their model folders are not ours to see.
    `commercial`: only models whose models.yaml `commercial_use` is true (`--commercial`; a
    preset's own `commercial: true` asks the same), others swapped for permissive ones.
    `servers` (None: rendering in-process) says why the servers cannot run a servers-only
    preset, or None when they can; such a preset asked for by name that cannot run is an
    error, not a fall: what was asked for is a server render.
    """
    order, presets, swap_table = _read_presets()
    if requested != "auto" and requested not in presets:
        raise ValueError(f"unknown preset {requested!r}; choose auto or one of: {', '.join(order)}")
    registry = load_registry()
    known = {entry.id for entry in registry.entries}
    vram = free_vram_gb() if vram_gb is None else vram_gb
    notes: list[str] = []
    candidates = order if requested == "auto" else order[order.index(requested):]
    for name in candidates:
        preset = presets[name]
        if preset.servers_only and servers is None:  # (its graph is not even read)
            if name == requested:
                raise UsageError(f"the {name} preset cannot run here: {SERVERS_ONLY}")
            notes.append(f"{name}: not used, {SERVERS_ONLY}")
            continue
        graph = load_workflow(preset.workflow)
        why, swaps = [], []
        if preset.cloned_voice and not have_voice_ref:
            graph = speak_with_piper(graph)
            substitute = "no --voice-ref, so the Piper voice speaks instead of a cloned one"
        else:
            substitute = ""
        portrait_model = preset.image_model if not have_portrait else None
        if commercial or preset.commercial:
            graph, swaps, blocked = commercial_only(graph, registry, swap_table)
            blocked += [m for m in [portrait_model] if m and not registry.get(m).commercial_use]
            if blocked:
                why.append("--commercial: no commercially usable choice for " + ", ".join(
                    f"{m} ({registry.get(m).license})" for m in blocked))
        cloning = any(n["class_type"] == "PodiumF5VoiceClone" for n in graph.values())
        needed = [m for m in models_in(graph, known) if m not in preset.optional_models]
        needed += preset.extra_models if cloning and have_voice_ref else []
        if "portrait" in preset.needs and not have_portrait and not preset.image_model:
            why.append("it animates a face: give --image")
        if portrait_model:
            needed.append(portrait_model)
        missing = _missing(needed, registry) if check_models else []
        if missing:
            why.append("missing " + ", ".join(missing) + " (podium models pull " + " ".join(missing) + ")")
        if vram < preset.vram_gb:
            why.append(f"it wants {preset.vram_gb:g} GB of free GPU memory, {vram:.1f} GB found")
        if preset.servers_only and not why:
            problem = servers(preset)
            if problem and name == requested:
                raise UsageError(f"the {name} preset cannot run: {problem}")
            if problem:
                why = [problem]
        if why:
            notes.append(f"{name}: not used, " + "; ".join(why))
            continue
        if substitute:
            notes.append(f"{name}: {substitute}")
        for model_id in _missing(preset.optional_models, registry) if check_models else []:
            notes.append(f"{name}: {model_id} is not installed, so its stage is done without it "
                         f"(podium models pull {model_id})")
        return Choice(preset, graph, notes, swaps)
    raise AssertionError("the draft preset always runs")  # presets.yaml ends with draft


def commercial_only(graph: dict, registry, swap_table: dict[str, str]) -> tuple[dict, list[str], list[str]]:
    """(graph, swaps, blocked): the graph using only commercially usable models. A node whose
    model is not is given another model of the same kind that is; failing that, the node of the
    same title in the workflow `swap_table` names for its class (e.g. Wav2Lip's lip sync -> the
    MuseTalk one, F5-TTS's cloned voice -> CSM-1B's), its links taken from the node it replaces. `swaps`
    says which model replaced which; `blocked` lists the models nothing could replace."""
    graph = {k: {**v, "inputs": dict(v["inputs"])} for k, v in graph.items()}
    known = {e.id: e for e in registry.entries}
    swaps, blocked = [], []
    restricted = lambda node: [(k, v) for k, v in node["inputs"].items()
                               if isinstance(v, str) and v in known and not known[v].commercial_use]
    for node_id, node in list(graph.items()):
        for input_name, model_id in restricted(node):
            entry = known[model_id]
            same_kind = next((e for e in registry.entries if e.kind == entry.kind and e.commercial_use), None)
            if same_kind is not None:
                node["inputs"][input_name] = same_kind.id
                swaps.append(f"{model_id} ({entry.license}) -> {same_kind.id} ({same_kind.license})")
                continue
            replacement = _swap_node(node, swap_table)
            permissive = replacement is not None and not restricted(replacement)
            if not permissive:
                blocked.append(model_id)
                continue
            graph[node_id] = node = replacement
            new = [v for v in node["inputs"].values() if isinstance(v, str) and v in known] or [node["class_type"]]
            swaps.append(f"{model_id} ({entry.license}) -> {', '.join(new)} "
                         f"({', '.join(known[m].license for m in new if m in known) or 'no model'})")
            break
    return graph, swaps, blocked


def commercial_workflow(graph: dict) -> tuple[dict, list[str]]:
    """A user's own workflow (--workflow) under --commercial: (graph, swaps), or a UsageError
    naming the models nothing permissive replaces."""
    graph, swaps, blocked = commercial_only(graph, load_registry(), _read_presets()[2])
    if blocked:
        registry = load_registry()
        raise UsageError("--commercial: no commercially usable choice for " + ", ".join(
            f"{m} ({registry.get(m).license})" for m in blocked) + " in this workflow: change its model")
    return graph, swaps


def _swap_node(node: dict, swap_table: dict[str, str]) -> Optional[dict]:
    """The node that replaces `node` (same title, from the workflow its class swaps to), its
    links re-pointed to what `node` had under the same input names; None if there is none."""
    workflow = swap_table.get(node["class_type"])
    title = node.get("_meta", {}).get("title")
    if not workflow or not title:
        return None
    source = load_workflow(workflow)
    try:
        other = source[find_node(source, title)]
    except PodiumError:
        return None
    inputs = {}
    for name, value in other["inputs"].items():
        if isinstance(value, list):  # a link: to what the replaced node had there
            if not isinstance(node["inputs"].get(name), list):
                return None
            value = node["inputs"][name]
        inputs[name] = value
    return {**other, "inputs": inputs}


def speak_with_piper(graph: dict) -> dict:
    """The same graph with its Voice node turned into the Piper voice (same outputs)."""
    direct = load_workflow("direct")
    piper = direct[find_node(direct, "Voice")]
    graph = {k: dict(v) for k, v in graph.items()}
    voice_id = find_node(graph, "Voice")
    script_link = graph[voice_id]["inputs"]["script"]
    graph[voice_id] = {**piper, "inputs": {**piper["inputs"], "script": script_link}}
    return graph
