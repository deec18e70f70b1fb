"""The presenter made once per video: the picture drawn (with a profile's LoRA when it has one)
and the idle clip, each cached by content so every segment shows the same person."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from podium.files import atomic_copy, temp_prefix

from orchestrator.graphs.workflow import bind, find_node, has_node, load_workflow
from orchestrator.render import outputs
from orchestrator.render.segments import SegmentCache, content_key
from orchestrator.request import RenderRequest

DEFAULT_PRESENTER = "a friendly presenter in a bright studio, looking at the camera"
IDLE_OFF = "off (procedural motion)"  # the Idle clip node's model choice for no clip (nodes/idle_motion.py OFF)


def presenter_graph(request: RenderRequest, model: str, stage: str, likeness=None) -> tuple[dict, dict]:
    """(graph, files) that draw the presenter; with a profile's `likeness` (profiles/likeness.py)
    its LoRA file, its base model and its trained caption before the prompt."""
    prompt = request.presenter_prompt or stage or DEFAULT_PRESENTER
    values = {("Presenter image", "model"): model, ("Presenter image", "prompt"): prompt,
              ("Presenter image", "seed"): request.seed,
              ("Presenter image", "aspect"): round(request.size[0] / request.size[1], 4)}  # native size, the video's shape
    if likeness is None:
        return bind(load_workflow("presenter_image"), values), {}
    values |= {**likeness.values(), ("Presenter image", "prompt"): likeness.prompt(prompt)}
    return bind(load_workflow("presenter_image"), values), likeness.files()


def draw_presenter(request: RenderRequest, model: str, stage: str, instance, cache: SegmentCache, view,
                   likeness=None) -> Path:
    """The presenter picture, drawn once (and cached) so every segment shows the same person.
    The cache key hashes the graph and the bytes of its files (a LoRA's: its sha256)."""
    graph, files = presenter_graph(request, model, stage, likeness)
    key = "presenter-" + content_key(graph, files)
    picture = cache.folder / key / "presenter.png"
    if not picture.exists():
        with tempfile.TemporaryDirectory(prefix=temp_prefix("presenter")) as work:
            made = instance.produce(graph, files, Path(work), lambda t, d: view(instance.name, t, d))
            pngs = [p for p, _ in made.get("images", []) if p.suffix == ".png"]
            if not pngs:
                raise outputs.OutputError("the presenter image workflow made no picture")
            picture.parent.mkdir(parents=True, exist_ok=True)
            atomic_copy(pngs[0], picture)  # whole or not at all
    return picture


def make_idle_clip(portrait: Path, size: tuple[int, int], seed: int, instance, cache: SegmentCache, view,
                   extra: dict | None = None) -> tuple[Path | None, str | None]:
    """(the idle clip, None), made once per portrait and size (and cached) so every segment
    plays the same one; or (None, why not) when the model is missing or the GPU too small."""
    graph = bind(load_workflow("idle_clip"), {
        ("Idle clip", "width"): size[0], ("Idle clip", "height"): size[1], ("Idle clip", "seed"): seed,
        **(extra or {})})
    files = {("Idle clip", "portrait_path"): portrait}
    clip = cache.folder / ("idle-" + content_key(graph, files)) / "idle.mkv"
    if clip.exists():
        return clip, None
    with tempfile.TemporaryDirectory(prefix=temp_prefix("idle")) as work:
        made = [p for p, _ in instance.produce(graph, files, Path(work),
                                               lambda t, d: view(instance.name, t, d)).get("images", [])]
        videos = [p for p in made if p.suffix == ".mkv"]
        if videos:
            clip.parent.mkdir(parents=True, exist_ok=True)
            atomic_copy(videos[0], clip)  # whole or not at all
            return clip, None
        notes = [p for p in made if p.suffix == ".txt"]
        if not notes:
            raise outputs.OutputError("the idle clip workflow made neither a clip nor a note")
        return None, notes[0].read_text(encoding="utf-8").strip()


def idle_motion(request: RenderRequest, graph: dict, values: dict, files: dict, instance, cache: SegmentCache, view) -> None:
    """Bind the graph's Idle clip node to the clip made once for the video, or turn it off (the
    procedural motion stays) with the one line saying why."""
    portrait = files.get(("Presenter", "portrait_path"))
    if not has_node(graph, "Idle clip") or portrait is None:
        return
    if graph[find_node(graph, "Idle clip")]["inputs"].get("model") == IDLE_OFF:
        return
    clip, note = make_idle_clip(portrait, request.size, request.seed, instance, cache, view)
    if clip is not None:
        files[("Idle clip", "clip_path")] = clip
    else:
        print(note, file=sys.stderr)
        values[("Idle clip", "model")] = IDLE_OFF
