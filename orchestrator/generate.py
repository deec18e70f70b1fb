"""One `podium generate` job: choose the preset, bind the user's inputs, draw the presenter
once if needed, render the segments, stitch them.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from podium.engines.script import parse_script  # pure: no torch, no numpy

from . import outputs, presets
from .dispatch import render_all
from .progress_view import JobView
from .segments import SegmentCache, content_key, default_cache_dir, plan
from .stitch import stitch
from .workflow import bind, find_node, load_workflow

SUBTITLE_MODES = {"none": "none", "srt": "srt", "burn": "srt+burn"}
DEFAULT_PRESENTER = "a friendly presenter in a bright studio, looking at the camera"


@dataclass
class Result:
    target: Path
    duration: float
    segments: int
    reused: int
    wall: float
    preset: str


def input_file(path: str, what: str) -> Path:
    """A file the user gave, checked before any work."""
    found = Path(path).expanduser().absolute()
    if not found.is_file():
        raise outputs.OutputError(f"{what} not found: {found}" + (" (it is a folder)" if found.is_dir() else ""))
    return found


def _has(graph: dict, title: str) -> bool:
    return any(n.get("_meta", {}).get("title") == title for n in graph.values())


def bindings(args, graph: dict) -> tuple[dict, dict]:
    """(values, files) for the graph from the command line, for the nodes it has."""
    values = {("Presenter", "width"): args.size[0], ("Presenter", "height"): args.size[1],
              ("Save video", "fps"): args.fps, ("Save video", "subtitle_mode"): SUBTITLE_MODES[args.subtitles]}
    files = {}
    if graph[find_node(graph, "Save video")]["class_type"] == "PodiumSaveVideo":
        # Segments keep their audio lossless (PCM in a .mov): it is encoded once, when stitched.
        values[("Save video", "intermediate")] = True
    if _has(graph, "Lip sync"):
        values[("Lip sync", "fps")] = args.fps  # each frame takes the audio of its own time
    if _has(graph, "Upscale"):
        values[("Upscale", "width")], values[("Upscale", "height")] = args.size
    voice = graph[find_node(graph, "Voice")]["class_type"]
    if voice == "PodiumPiperTTS":
        if args.voice.endswith(".onnx"):
            values[("Voice", "voice_path")] = str(input_file(args.voice, "voice"))
        else:
            values[("Voice", "voice")] = args.voice
        if args.speaker_voice:
            values[("Voice", "speaker_voices")] = speaker_voices(args.speaker_voice)
    elif args.voice_ref:
        files[("Voice", "reference_audio")] = input_file(args.voice_ref, "reference audio")
        values[("Voice", "ref_text")] = args.voice_ref_text or ""
        values[("Voice", "seed")] = args.seed
    if args.image:
        files[("Presenter", "portrait_path")] = input_file(args.image, "image")
    return values, files


def draw_presenter(args, model: str, stage: str, instance, cache: SegmentCache, view) -> Path:
    """The presenter picture, drawn once (and cached) so every segment shows the same person."""
    graph = bind(load_workflow("presenter_image"), {
        ("Presenter image", "model"): model,
        ("Presenter image", "prompt"): args.presenter_prompt or stage or DEFAULT_PRESENTER,
        ("Presenter image", "seed"): args.seed,
    })
    key = "presenter-" + content_key(graph, {})
    picture = cache.folder / key / "presenter.png"
    if not picture.exists():
        with tempfile.TemporaryDirectory(prefix="podium-presenter-") as work:
            made = instance.produce(graph, {}, Path(work), lambda t, d: view(instance.name, t, d))
            pngs = [p for p, _ in made.get("images", []) if p.suffix == ".png"]
            if not pngs:
                raise outputs.OutputError("the presenter image workflow made no picture")
            picture.parent.mkdir(parents=True, exist_ok=True)
            partial = picture.with_name(".presenter.png.part")
            shutil.copyfile(pngs[0], partial)
            os.replace(partial, picture)  # whole or not at all
    return picture


def speaker_voices(pairs: list[str]) -> str:
    """NAME=VOICE options as the Voice node's `speaker_voices` lines."""
    lines = []
    for pair in pairs:
        name, sep, voice = pair.partition("=")
        if not sep or not name.strip() or not voice.strip():
            raise outputs.OutputError(f"--speaker-voice takes NAME=VOICE, got {pair!r}")
        voice = voice.strip()
        if voice.endswith(".onnx"):
            voice = str(input_file(voice, "voice"))
        lines.append(f"{name.strip()}: {voice}")
    return "\n".join(lines)


def say_preset(requested: str, choice: presets.Choice) -> None:
    """Why a preset asked for by name fell to another, and any substitution. With auto, the
    summary line names the preset used; `--preset NAME` says why NAME cannot run."""
    notes = choice.notes if requested != "auto" else [n for n in choice.notes if "Piper" in n]
    for note in notes:
        print(f"preset {note}", file=sys.stderr)
    if requested not in ("auto", choice.preset.name):
        print(f"preset: {choice.preset.name} - {choice.preset.summary}", file=sys.stderr)


def run(args, narration_for, instances: list, load_graph) -> Result:
    """Everything after argument parsing: `narration_for(target)` gives the script text,
    `load_graph(name_or_path)` reads a --workflow (API or UI format)."""
    target = outputs.check_target(args.out, args.force)
    if args.subtitles != "none":
        outputs.check_target(target.with_suffix(".srt"), args.force)
    narration = narration_for(target)
    remote = not getattr(instances[0], "in_process", False)
    choice = presets.choose(args.preset, have_portrait=bool(args.image),
                            have_voice_ref=bool(args.voice_ref), check_models=not remote)
    graph = choice.graph if args.workflow is None else load_graph(args.workflow)
    values, files = bindings(args, graph)  # checks the user's files before any work
    script = parse_script(narration)  # an empty script is refused here, before any work too
    say_preset(args.preset, choice)
    cache = SegmentCache(args.cache_dir or default_cache_dir())
    started = time.perf_counter()
    view = JobView(graph, len(script.segments), enabled=not args.quiet)
    try:
        if "portrait" in choice.preset.needs and not args.image and choice.preset.image_model:
            picture = draw_presenter(args, choice.preset.image_model, script.stage, instances[0], cache, view)
            files[("Presenter", "portrait_path")] = picture
        jobs = plan(graph, script, values, files)
        reused = sum(1 for job in jobs if cache.get(job.key) is not None)
        clips = render_all(jobs, instances, cache, view)
    finally:
        view.close()
    stitch(clips, target, crossfade_s=args.crossfade)
    duration = sum(c.duration for c in clips) - args.crossfade * (len(clips) - 1)
    return Result(target, duration, len(clips), reused, time.perf_counter() - started, choice.preset.name)
