"""The cinema preset: per server, the best audio-driven video graph it can run, and segments
short enough for one generation.

Each server is read once (`/object_info`, `/models/<folder>`, `/system_stats`). A graph is
runnable there when every class_type exists and every model-file input's value is among that
input's options. Where models.yaml lists variants of a file (same kind and folder: bf16, fp8,
...), the best one the server has and whose `vram_gb` fits its GPU is put in; the generation
size comes from presets.yaml's `sizes` by the same memory. The graphs are tried in the
preset's order (InfiniteTalk, S2V, HuMo); a server that can run none is left out, with why.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Optional

from podium.engines.chunks import EXPANDS_TO
from podium.errors import UsageError

from orchestrator.graphs.workflow import load_workflow

MODEL_SUFFIXES = (".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pth", ".bin")
VIDEO_NODES = ("WanInfiniteTalkToVideo", "WanSoundImageToVideo", "WanHuMoImageToVideo", "PodiumWanChain")
# InfiniteTalk at 720p: its patch was trained on the 480P base, which upstream runs at 720p with
# sample_shift 11 (7 at 480p): the base stays the 480P file (models.yaml), the shift follows the size.
INFINITETALK_720P_SHIFT = 11.0
P720_PIXELS = 1280 * 720
SLOW_CHARS_PER_S = 12.0  # a slow narrator (Piper and F5 speak about 14-16): lengths are upper bounds
SENTENCE_PAUSE_S = 0.3   # the voices' pause after each sentence
GB = 1024 ** 3


class CinemaUnavailable(UsageError):
    """No server can run a cinema graph; the message says what to start or pull."""


@dataclass
class ServerOffer:
    """What one ComfyUI server has: its node classes, model files by folder, GPU memory."""

    name: str
    object_info: dict
    models: dict[str, list[str]]
    vram_gb: float


@dataclass
class Pick:
    """The graph one server runs, fitted to its models and memory."""

    server: str
    workflow: str
    graph: dict
    size: tuple[int, int]
    files: list[str] = field(default_factory=list)  # the model files it loads
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = "; " + "; ".join(self.notes) if self.notes else ""
        return (f"cinema: {self.server} runs {self.workflow} at {self.size[0]}x{self.size[1]} "
                f"({', '.join(self.files) or 'no model files'}){extra}")


@dataclass
class Unfit:
    """Why a graph cannot run on a server: missing classes, missing files (with pull ids)."""

    workflow: str
    classes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    pulls: list[str] = field(default_factory=list)

    def reason(self) -> str:
        parts = []
        if self.classes:
            parts.append(f"no node {', '.join(self.classes)} (update ComfyUI)")
        if self.files:
            parts.append(f"missing {', '.join(self.files)}")
        return f"{self.workflow}: " + "; ".join(parts)


def input_options(object_info: dict, class_type: str, name: str) -> Optional[list]:
    """A COMBO input's options in either shape ComfyUI sends (V1 `[[...], {}]`, V3
    `["COMBO", {"options": [...]}]`); None when the input is not a combo."""
    spec = None
    inputs = (object_info.get(class_type) or {}).get("input") or {}
    for section in ("required", "optional"):
        spec = (inputs.get(section) or {}).get(name) or spec
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options") or [])
    return None


def model_inputs(graph: dict) -> list[tuple[str, str, str]]:
    """(node id, input name, file name) of every input that names a model file."""
    return [(node_id, name, value) for node_id, node in graph.items()
            for name, value in (node.get("inputs") or {}).items()
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)]


def read_server(instance) -> ServerOffer:
    """One server's offer, read over HTTP (ServerGone / ComfyError when it does not answer)."""
    client = instance.client
    info = client.object_info()
    models = {folder: client.models(folder) for folder in client.model_folders()}
    devices = (client.system_stats() or {}).get("devices") or [{}]
    vram = max(float(d.get("vram_total") or 0) for d in devices) / GB
    return ServerOffer(instance.name, info, models, vram)


def _variants(registry, file_name: str) -> list:
    """models.yaml entries interchangeable with the one holding `file_name` (same kind and
    folder), smallest memory first; [] when no entry has that file."""
    owner = next((e for e in registry if any(f.name == file_name for f in e.files)), None)
    if owner is None:
        return []
    same = [e for e in registry if e.kind == owner.kind and e.folder == owner.folder and e.files]
    return sorted(same, key=lambda e: e.vram_gb or 0)


# Full sampling without the distill LoRA: the S2V template's other variant (20 steps, cfg 6),
# InfiniteTalk's and HuMo's upstream defaults (40 / 30+ steps, cfg 5).
FULL_STEPS = {"infinitetalk": (40, 5.0), "s2v": (20, 6.0), "humo": (30, 5.0)}
DISTILL_TITLE = "Distill LoRA"


def full_steps(graph: dict) -> dict:
    """The graph without its distill LoRA, sampling at the model's full steps and guidance (the
    slow, reference-quality path)."""
    graph = copy.deepcopy(graph)
    lora_id = next((k for k, n in graph.items() if (n.get("_meta") or {}).get("title") == DISTILL_TITLE), None)
    if lora_id is None:
        return graph
    source = graph.pop(lora_id)["inputs"]["model"]
    for node in graph.values():
        for name, value in node["inputs"].items():
            if value == [lora_id, 0]:
                node["inputs"][name] = source
        if node["class_type"] == "PodiumWanChain":
            node["inputs"]["steps"], node["inputs"]["cfg"] = FULL_STEPS[node["inputs"]["kind"]]
    return graph


def _without_missing_lora(graph: dict, offer: ServerOffer, notes: list[str]) -> dict:
    """Full steps where the server lacks the distill LoRA (said in a note): slower, not unfit."""
    node = next((n for n in graph.values() if (n.get("_meta") or {}).get("title") == DISTILL_TITLE), None)
    if node is None:
        return graph
    options = input_options(offer.object_info, node["class_type"], "lora_name")
    if options is None or node["inputs"]["lora_name"] in options:
        return graph
    notes.append(f"no {node['inputs']['lora_name']} in its models/loras: full steps (several times "
                 "slower); podium models pull the lightx2v LoRA with --comfyui-dir for the fast path")
    return full_steps(graph)


def needed_classes(graph: dict) -> set[str]:
    """Every class the graph runs, with those its PodiumWanChain expands into at run time."""
    classes = {n["class_type"] for n in graph.values()}
    for node in graph.values():
        if node["class_type"] == "PodiumWanChain":
            classes.update(EXPANDS_TO.get(node["inputs"].get("kind"), ()))
    return classes


def fit_graph(workflow: str, graph: dict, offer: ServerOffer, registry) -> tuple[Optional[dict], list[str], list[str], Unfit]:
    """(the graph with the server's best-fitting model files, files used, notes, what is
    missing). The graph is None when something is missing."""
    unfit = Unfit(workflow)
    unfit.classes = sorted({c for c in needed_classes(graph) if c not in offer.object_info})
    if unfit.classes:
        return None, [], [], unfit
    used, notes = [], []
    graph = _without_missing_lora(copy.deepcopy(graph), offer, notes)
    for node_id, name, value in model_inputs(graph):
        class_type = graph[node_id]["class_type"]
        options = input_options(offer.object_info, class_type, name)
        if options is None:
            continue  # a free-text input naming a file: not a model list the server offers
        variants = _variants(registry, value)
        folder = variants[0].folder if variants else None
        have = set(options)  # what validation accepts; /models/<folder> says why a file is missing
        if not variants:
            if value in have:
                used.append(value)
            else:
                unfit.files.append(f"{value} ({class_type}.{name})")
            continue
        present = [e for e in variants if e.files[0].name in have]
        fitting = [e for e in present if (e.vram_gb or 0) <= offer.vram_gb]
        if fitting:
            chosen = fitting[-1]
        elif present:
            chosen = present[0]
            notes.append(f"{chosen.files[0].name} wants {chosen.vram_gb:g} GB, the server has "
                         f"{offer.vram_gb:.0f} GB: ComfyUI offloads, slowly")
        else:
            fits = [e for e in variants if (e.vram_gb or 0) <= offer.vram_gb] or variants[:1]
            known = not offer.models or folder in offer.models  # (an old ComfyUI lacks the folder)
            unfit.files.append(f"{value} (models/{folder}{'' if known else ', a folder this ComfyUI lacks: update it'})")
            unfit.pulls.append(fits[-1].id)
            continue
        graph[node_id]["inputs"][name] = chosen.files[0].name
        used.append(chosen.files[0].name)
    if unfit.files:
        return None, [], [], unfit
    return graph, used, notes, unfit


def generation_size(sizes: list[dict], vram_gb: float, out_size: tuple[int, int]) -> tuple[int, int]:
    """The size the video model draws at: as many pixels as the largest of `sizes`
    (presets.yaml: `{vram_gb, size: WxH}`) the server's memory allows, in the output's shape,
    never larger than the output; multiples of 16 (Wan's rule)."""
    tiers = sorted(sizes, key=lambda s: s["vram_gb"])
    tier = next((s for s in reversed(tiers) if s["vram_gb"] <= vram_gb), tiers[0])
    tier_w, tier_h = (int(v) for v in str(tier["size"]).lower().split("x"))
    out_w, out_h = out_size
    scale = min(1.0, (tier_w * tier_h / (out_w * out_h)) ** 0.5)
    return max(16, round(out_w * scale / 16) * 16), max(16, round(out_h * scale / 16) * 16)


def set_size(graph: dict, size: tuple[int, int]) -> dict:
    """The video model node's width and height (and any node titled 'Generation size')."""
    for node in graph.values():
        title = (node.get("_meta") or {}).get("title", "")
        inputs = node.get("inputs") or {}
        if (node["class_type"] in VIDEO_NODES or title.startswith("Generation size")) and \
                isinstance(inputs.get("width"), int) and isinstance(inputs.get("height"), int):
            inputs["width"], inputs["height"] = size
    return graph


def set_shift(graph: dict, size: tuple[int, int]) -> dict:
    """InfiniteTalk's sampling shift for the size: 11 at 720p (upstream's setting), else the graph's."""
    kinds = {n["inputs"].get("kind") for n in graph.values() if n["class_type"] == "PodiumWanChain"}
    if "infinitetalk" in kinds and size[0] * size[1] >= P720_PIXELS * 0.9:
        for node in graph.values():
            if node["class_type"] == "ModelSamplingSD3":
                node["inputs"]["shift"] = INFINITETALK_720P_SHIFT
    return graph


def choose_graph(workflows: list[tuple[str, dict]], offer: ServerOffer, registry,
                 sizes: list[dict], out_size: tuple[int, int]) -> tuple[Optional[Pick], list[Unfit]]:
    """The first workflow (best first) that `offer` can run, fitted; else None and why each fails."""
    unfits = []
    for workflow, graph in workflows:
        fitted, used, notes, unfit = fit_graph(workflow, graph, offer, registry)
        if fitted is None:
            unfits.append(unfit)
            continue
        size = generation_size(sizes, offer.vram_gb, out_size)
        return Pick(offer.name, workflow, set_shift(set_size(fitted, size), size), size, used, notes), unfits
    return None, unfits


def plan_servers(instances: list, workflows: list[str], sizes: list[dict], out_size: tuple[int, int],
                 registry, say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                 read: Callable = read_server, load: Callable = load_workflow) -> dict[str, Pick]:
    """{server name: Pick} for every server that can run a cinema graph (`workflows`: names
    or files, best first, read with `load`), each said in one line; a server that can run none
    is left out with its reason. None at all: CinemaUnavailable naming what to pull."""
    graphs = [(Path(name).stem, load(name)) for name in workflows]
    picks, all_unfits = {}, []
    for instance in instances:
        try:
            offer = read(instance)
        except Exception as err:  # noqa: BLE001 - a server that cannot be read is skipped, said why
            say(f"cinema: {instance.name} skipped: cannot read what it has ({type(err).__name__}: {err})")
            continue
        pick, unfits = choose_graph(graphs, offer, registry, sizes, out_size)
        if pick is None:
            all_unfits.append(unfits)
            say(f"cinema: {instance.name} skipped: " + " | ".join(u.reason() for u in unfits))
        else:
            picks[instance.name] = pick
            say(pick.line())
    if not picks:
        raise CinemaUnavailable(what_to_pull(all_unfits))
    return picks


def what_to_pull(per_server: list[list[Unfit]]) -> str:
    """One line: the models to pull for the graph closest to running (fewest missing files,
    preferring the better graph), or the ComfyUI update needed."""
    candidates = [u for unfits in per_server for u in unfits if not u.classes and u.pulls]
    if candidates:
        best = min(candidates, key=lambda u: len(u.files))
        ids = " ".join(dict.fromkeys(best.pulls))
        unknown = len(best.files) - len(best.pulls)
        tail = f" and put the other {unknown} file(s) it names in the server's models folders" if unknown else ""
        return (f"no ComfyUI server can run a cinema graph: {best.workflow} lacks "
                f"{', '.join(best.files)}; on the server run: podium models pull {ids} "
                f"--comfyui-dir <its ComfyUI folder>{tail}")
    if per_server and all(u.classes for unfits in per_server for u in unfits):
        missing = sorted({c for unfits in per_server for u in unfits for c in u.classes})
        return (f"no ComfyUI server can run a cinema graph: they lack the nodes {', '.join(missing)}; "
                "update ComfyUI (0.3.64 or newer has S2V and HuMo, current releases InfiniteTalk)")
    flat = [u.reason() for unfits in per_server for u in unfits]
    return ("no ComfyUI server can run a cinema graph" + (": " + " | ".join(flat) if flat else
            ": none could be read (start them with `podium comfy up`)"))


# ---- segments ----

def spoken_seconds(sentences: list[str]) -> float:
    """An upper estimate of how long a voice takes to say `sentences` (a slow narrator)."""
    return sum(len(s) / SLOW_CHARS_PER_S + SENTENCE_PAUSE_S for s in sentences)
