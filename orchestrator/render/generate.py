"""One `podium generate` job: choose the preset, bind the user's inputs, draw the presenter
once if needed, render the segments, stitch them.
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from podium.engines.script import parse_script  # pure: no torch, no numpy
from podium.engines.script_schema import ScriptFormatError
from podium.errors import PodiumError, UsageError
from podium.files import atomic_copy, temp_prefix
from podium.models import load_registry

from orchestrator.servers import cinema, scene_graphs
from orchestrator.render import outputs, presets, scenes, soundtrack, timeline
from orchestrator.servers.dispatch import render_all
from orchestrator.render import lecture
from orchestrator.profiles import likeness as profile_likeness
from orchestrator.render.lecture import Layout, page_script
from orchestrator.render.plan import build as build_plan, show as show_plan
from orchestrator.cli.progress_view import JobView
from orchestrator.inputs import MAX_IMAGE_PIXELS, check_image_size  # noqa: F401 - re-exported
from orchestrator.request import LONG_MINUTES, LONG_SEGMENTS, RenderRequest, too_long
from orchestrator.render.segments import SegmentCache, content_key, default_cache_dir, plan_per_server
from orchestrator.render.stitch import stitch
from orchestrator.graphs.workflow import bind, find_node, load_workflow

SUBTITLE_MODES = {"none": "none", "srt": "srt", "burn": "srt+burn"}
DEFAULT_PRESENTER = "a friendly presenter in a bright studio, looking at the camera"
IDLE_OFF = "off (procedural motion)"  # the Idle clip node's model choice for no clip (nodes/idle_motion.py OFF)


@dataclass
class Run:
    """How this process renders, beside what it renders (the request): the command line's own
    flags, which a request file does not carry."""

    force: bool = False  # --force: replace existing outputs
    yes: bool = False  # --yes: render a very long script without asking
    quiet: bool = False  # --quiet: no progress bars
    sink: object = None  # --progress-json: progress_json.JsonEvents
    config: str | None = None  # --config: an input file too, which no output may replace
    plan: bool = False  # --plan: print what would run and its cost as JSON, render nothing


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


def _inputs(request: RenderRequest, config: str | None = None) -> dict[str, Path]:
    """Every file the user named as an input, by option (to keep outputs off them)."""
    named = {"--script": request.script, "--image": request.image, "--voice-ref": request.voice_ref,
             "--config": config, "--workflow": request.workflow, "--deck": request.deck,
             "--notes": request.notes}
    if request.voice and str(request.voice).endswith(".onnx"):
        named["--voice"] = request.voice
    for pair in request.speaker_voice:
        voice = pair.partition("=")[2].strip()
        if voice.endswith(".onnx"):
            named[f"--speaker-voice {pair}"] = voice
    return {**{option: Path(value).expanduser() for option, value in named.items()
               if value and Path(value).expanduser().is_file()}, **soundtrack.input_files(request)}


def output_files(request: RenderRequest, target: Path) -> dict[str, Path]:
    """Every file this job writes, by what it is: the video and what goes beside it."""
    written = {"the video (--out)": target}
    if request.subtitles != "none":
        written["the subtitles"] = target.with_suffix(".srt")
        written["the captions (.ass)"] = target.with_suffix(".ass")
    if request.mode == "guided" and request.deck:
        written["the notes the LLM wrote"] = target.with_suffix(".notes.md")
    elif request.mode == "guided":
        written["the script (.json)"] = target.with_suffix(".json")
        written["the script (.md)"] = target.with_suffix(".md")
    if request.timeline:
        written["the timeline (--timeline)"] = Path(request.timeline).expanduser().absolute()
    return written


def check_length(script, yes: bool) -> None:
    """A very long render starts only when asked for (--yes): say how long it would be. (The
    API refuses such a text at submission, with the same limit: service/schemas.py.)"""
    what = too_long(script)
    if what is None:
        return
    if not yes:
        raise outputs.OutputError(f"this script is {what}, more than {LONG_MINUTES} min or "
                                  f"{LONG_SEGMENTS} segments, and takes long to render: pass --yes "
                                  "to render it anyway, or shorten it")
    print(f"note: rendering {what}", file=sys.stderr)


def check_crossfade(crossfade: float, script) -> None:
    """Refuse before rendering a cross-fade that no segment this short can hold. Speech is
    assumed slow (8 characters a second, plus a second) so only a sure misfit is refused here;
    stitching checks the real lengths."""
    if not crossfade:
        return
    for number, segment in enumerate(script.segments, 1):
        longest = len(" ".join(segment.sentences)) / 8 + 1
        if 2 * crossfade >= longest:
            raise outputs.OutputError(
                f"--crossfade {crossfade:g} is too long for segment {number} (about {longest:.1f} s "
                f"at most): a cross-fade must be under half of every segment; give a shorter one")


def _has(graph: dict, title: str) -> bool:
    return any(n.get("_meta", {}).get("title") == title for n in graph.values())


def bindings(request: RenderRequest, graph: dict, preset: str = "") -> tuple[dict, dict]:
    """(values, files) for the graph from the request, for the nodes it has."""
    values = {("Save video", "fps"): request.fps, ("Save video", "subtitle_mode"): SUBTITLE_MODES[request.subtitles]}
    if _has(graph, "Output fps"):  # one number feeds the Retime and Save nodes (cinema)
        values[("Output fps", "value")] = request.fps
        if isinstance(graph[find_node(graph, "Save video")]["inputs"].get("fps"), list):
            del values[("Save video", "fps")]  # it is linked to Output fps
    if _has(graph, "Presenter") or not _has(graph, "Portrait"):  # (a cinema graph has no Presenter)
        values[("Presenter", "width")], values[("Presenter", "height")] = request.size
    files = {}
    if graph[find_node(graph, "Save video")]["class_type"] == "PodiumSaveVideo":
        # Segments keep their audio lossless (PCM in a .mov): it is encoded once, when stitched.
        values[("Save video", "intermediate")] = True
    if _has(graph, "Subtitles"):  # only when asked: graphs rendered as before keep their cache keys
        if request.captions != "sentence":
            values[("Subtitles", "mode")] = request.captions
        if request.caption_style != "default":
            values[("Subtitles", "style")] = request.caption_style
    if _has(graph, "Lip sync"):
        values[("Lip sync", "fps")] = request.fps  # each frame takes the audio of its own time
    if _has(graph, "Upscale"):
        values[("Upscale", "width")], values[("Upscale", "height")] = request.size
    voice = graph[find_node(graph, "Voice")]["class_type"]
    reference = input_file(request.voice_ref, "reference audio (--voice-ref)") if request.voice_ref else None
    if voice == "PodiumPiperTTS":
        if reference is not None:
            _say_voice_ref_unused(request, preset)
        if request.voice.endswith(".onnx"):
            files[("Voice", "voice_path")] = input_file(request.voice, "voice")  # uploaded to a server
        else:
            values[("Voice", "voice")] = request.voice
        if request.speaker_voice:
            values[("Voice", "speaker_voices")] = speaker_voices(request.speaker_voice)
    elif reference is not None:
        files[("Voice", "reference_audio")] = reference
        values[("Voice", "ref_text")] = request.voice_ref_text or ""
        values[("Voice", "seed")] = request.seed
    if request.image:
        files[portrait_input(graph)] = input_file(request.image, "image")
        check_image_size(files[portrait_input(graph)])
    return values, files


def portrait_input(graph: dict) -> tuple[str, str]:
    """Where the portrait goes: a core LoadImage titled "Portrait" (cinema), else the Presenter."""
    return ("Portrait", "image") if _has(graph, "Portrait") else ("Presenter", "portrait_path")


def _say_voice_ref_unused(request: RenderRequest, preset: str) -> None:
    order, known = presets.load_presets()
    cloning = " or ".join(n for n in order if known[n].cloned_voice)
    who = f"the {preset} preset speaks" if preset and request.workflow is None else "this workflow speaks"
    what = f"profile {request.profile}'s voice sample" if request.profile else "--voice-ref"
    print(f"warning: {what} is not used: {who} with Piper; the {cloning} preset would clone "
          "it (--preset NAME says what it needs)", file=sys.stderr)


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
    if not _has(graph, "Idle clip") or portrait is None:
        return
    if graph[find_node(graph, "Idle clip")]["inputs"].get("model") == IDLE_OFF:
        return
    clip, note = make_idle_clip(portrait, request.size, request.seed, instance, cache, view)
    if clip is not None:
        files[("Idle clip", "clip_path")] = clip
    else:
        print(note, file=sys.stderr)
        values[("Idle clip", "model")] = IDLE_OFF


def check_commercial_voice(request: RenderRequest) -> None:
    """--commercial with a --voice whose license forbids it: say so before any work."""
    from podium.models import load_registry

    if not request.commercial or str(request.voice).endswith(".onnx"):
        return
    registry = load_registry()
    for voice in [request.voice, *(p.partition("=")[2].strip() for p in request.speaker_voice)]:
        if voice in registry and not registry.get(voice).commercial_use:
            usable = [e.id for e in registry.entries if e.kind == registry.get(voice).kind and e.commercial_use]
            raise UsageError(f"--commercial: the voice {voice} ({registry.get(voice).license}) is not "
                                      f"for commercial use; choose one that is: {', '.join(usable)}")


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


def read_script(request: RenderRequest, narration: str):
    """The parsed script; a `--script x.json` must be Podium's script JSON, and a problem in
    it names the file and the field (`--script x.json: segments[2].bullets: ...`)."""
    path = request.script
    try:
        return parse_script(narration, as_json=True if path and path.lower().endswith(".json") else None)
    except ScriptFormatError as err:
        raise (err.located(f"--script {path}") if path else err) from None


def say_preset(requested: str, choice: presets.Choice) -> None:
    """Why a preset asked for by name fell to another, and any substitution. With auto, the
    summary line names the preset used; `--preset NAME` says why NAME cannot run."""
    notes = choice.notes if requested != "auto" else [n for n in choice.notes if "Piper" in n]
    for note in notes:
        print(f"preset {note}", file=sys.stderr)
    for swap in choice.swaps:
        print(f"--commercial: {swap}", file=sys.stderr)
    if requested not in ("auto", choice.preset.name):
        print(f"preset: {choice.preset.name} - {choice.preset.summary}", file=sys.stderr)


def run(request: RenderRequest, how: Run, narration_for, instances: list, load_graph) -> Result:
    """Render the request (`how`: this process's own flags): `narration_for(target)` gives the
    script text, `load_graph(name_or_path)` reads a --workflow (API or UI format). A --profile
    is held (it cannot be deleted) while the render runs, and named in the video's metadata."""
    if request.profile is None:
        return _run(request, how, narration_for, instances, load_graph)
    from orchestrator.profiles import profile as profiles

    with profiles.using(request.profile) as profile:
        return _run(with_profile(request, profile), how, narration_for, instances, load_graph,
                    profile=profile)


def with_profile(request: RenderRequest, profile) -> RenderRequest:
    """The request with the profile's portrait, and its voice sample and transcript."""
    update = {"image": str(profile.portrait)}
    if profile.voice is not None:
        if request.voice_ref:
            raise UsageError(f"profile {profile.name} brings its voice sample: give --profile or "
                             "--voice-ref, not both")
        update |= {"voice_ref": str(profile.voice), "voice_ref_text": profile.voice_text}
    return request.model_copy(update=update)


def _run(request: RenderRequest, how: Run, narration_for, instances: list, load_graph,
         profile=None) -> Result:
    target = Path(request.out).expanduser().absolute()
    outputs.check_distinct(output_files(request, target), _inputs(request, how.config))  # even --force cannot allow it
    target = outputs.check_target(target, how.force)
    if request.subtitles != "none":
        outputs.check_target(target.with_suffix(".srt"), how.force)
        outputs.check_target(target.with_suffix(".ass"), how.force)
    cache = SegmentCache(request.cache_dir or default_cache_dir())
    cache.check_writable()
    narration = narration_for(target)
    if request.mode == "guided" and request.deck and not request.notes:  # the LLM narrates the slides
        request = request.model_copy(update={"notes": str(lecture.write_notes(request, target, how.force))})
    remote = not getattr(instances[0], "in_process", False)
    check_commercial_voice(request)
    picks, said, server_graphs = {}, [], {}

    def servers_run(preset) -> str | None:
        """Why no server can run this servers-only preset (None: `picks` has each server's graph).
        A --workflow is its only candidate graph."""
        say = (lambda line: print(line, file=sys.stderr)) if request.preset == preset.name else said.append
        graphs = [request.workflow] if request.workflow is not None else preset.graphs
        try:
            picks.update(cinema.plan_servers(instances, graphs, preset.sizes, request.size, load_registry(),
                                             say=say, load=load_graph))
        except cinema.CinemaUnavailable as err:
            return str(err)
        return None

    choice = presets.choose(request.preset, have_portrait=bool(request.image),
                            have_voice_ref=bool(request.voice_ref), check_models=not remote,
                            commercial=request.commercial,
                            servers=servers_run if remote else None)
    for line in said if picks and choice.preset.servers_only else ():
        print(line, file=sys.stderr)  # (auto: said only when the preset is used)
    graph = choice.graph if request.workflow is None else load_graph(request.workflow)
    if request.workflow is not None and request.commercial:
        graph, choice.swaps = presets.commercial_workflow(graph)
    every_server = list(instances)  # (--plan: those that can run nothing are listed with why)
    if picks:
        instances = [i for i in instances if i.name in picks]
        graph = picks[instances[0].name].graph
        if choice.preset.cloned_voice and not request.voice_ref and request.workflow is None:  # Piper on each server too
            picks = {name: replace(p, graph=presets.speak_with_piper(p.graph)) for name, p in picks.items()}
            graph = picks[instances[0].name].graph
    values, files = bindings(request, graph, choice.preset.name)  # checks the user's files before any work
    layout = Layout.of(request)  # the deck is read (and refused) here, before any work too
    graph = layout.shape(graph)
    values, files = layout.fit(graph, values, files)
    picks = {name: replace(p, graph=layout.shape(p.graph)) for name, p in picks.items()}
    sound = soundtrack.request_from_args(request)  # --music, --sfx: checked before any work too
    # an empty script is refused here, before any work too
    script = layout.talk.script if layout.talk else read_script(request, narration)
    if scenes.has_scenes(script):  # a Scene node shows the shots (cached with their segments)
        shots = scenes.generators(choice.preset)
        graph = scenes.scene_graph(graph, tuple(request.size), request.seed, *shots)
        picks = {name: replace(p, graph=scenes.scene_graph(p.graph, tuple(request.size), request.seed, *shots))
                 for name, p in picks.items()}
        if remote:  # each server: the core shot graph where it can run it, else the in-process fallbacks
            server_graphs = scene_graphs.per_server(
                instances, {i.name: picks[i.name].graph if picks else graph for i in instances},
                load_registry(), scenes.fallback_line(*shots), load=load_graph)
            picks = {name: replace(p, graph=server_graphs[name]) for name, p in picks.items()}
    edit_target = timeline.check_target(request.timeline, target) if request.timeline else None
    soundtrack.check_generators(sound, script, check_models=not remote)
    # the cues' times come from the segments' subtitles, made (not published) even with --subtitles none
    cue_timings = soundtrack.needs_timings(sound, script) and request.subtitles == "none"
    if cue_timings and _has(graph, "Subtitles"):
        values[("Save video", "subtitle_mode")] = "srt"
    check_length(script, how.yes)
    check_crossfade(request.crossfade, script)
    say_preset(request.preset, choice)
    likeness = None
    if profile is not None and portrait_input(graph) in files:  # the photo, or drawn with its LoRA
        likeness, line = profile_likeness.choose(profile, request.presenter_prompt, choice.preset, remote)
        print(line, file=sys.stderr)
    if how.plan:  # print what would run and its cost; render nothing
        show_plan(build_plan(script, choice.preset, graph, picks, every_server, request.size, load_registry(),
                             load_graph))
    started = time.perf_counter()
    view = JobView(graph, len(script.segments), enabled=not how.quiet, sink=how.sink)
    try:
        picture = None
        if likeness is not None:
            picture = draw_presenter(request, likeness.family, script.stage, instances[0], cache, view, likeness)
        elif "portrait" in choice.preset.needs and not request.image and choice.preset.image_model:
            picture = draw_presenter(request, choice.preset.image_model, script.stage, instances[0], cache, view)
        if picture is not None:
            files[portrait_input(graph)] = picture
        idle_motion(request, graph, values, files, instances[0], cache, view)
        if picks:  # every server its own graph; one cache key per segment whichever runs it
            per_server = {}
            for name, pick in picks.items():
                server_values, server_files = bindings(request, pick.graph, choice.preset.name)
                server_values, server_files = layout.fit(pick.graph, server_values, server_files)
                if cue_timings and _has(pick.graph, "Subtitles"):
                    server_values[("Save video", "subtitle_mode")] = "srt"
                if picture is not None:
                    server_files[portrait_input(pick.graph)] = picture
                per_server[name] = (pick.graph, server_values, server_files)
            jobs = plan_per_server(per_server, script, planner=layout.planner)
        elif server_graphs:  # one graph, each server with or without the core shot chain
            jobs = plan_per_server({name: (g, values, files) for name, g in server_graphs.items()}, script,
                                   planner=layout.planner)
        else:
            jobs = layout.planner(graph, script, values, files)
        reused = sum(1 for job in jobs if cache.get(job.key) is not None)
        clips = render_all(jobs, instances, cache, view)
        offsets = [sum(c.duration for c in clips[:i]) - request.crossfade * i for i in range(len(clips))]
        run_script = page_script(layout.talk) if layout.talk else script  # a section a run
        mixer = soundtrack.mixer_for(sound, run_script, clips, offsets, instances[0], cache, view)
    finally:
        view.close()
    shortest = min(c.duration for c in clips)
    if request.crossfade and 2 * request.crossfade >= shortest:
        raise outputs.OutputError(
            f"--crossfade {request.crossfade:g} is too long: the shortest segment lasts {shortest:.2f} s, "
            f"so a cross-fade must be under {shortest / 2:.2f} s; the segments are cached, so a "
            "rerun with a shorter one takes seconds")
    try:
        stitch(clips, target, crossfade_s=request.crossfade, replace=how.force, mixer=mixer,
               loudness=sound.settings.loudness_lufs, subtitles=request.subtitles != "none",
               metadata=profile.metadata() if profile is not None else None)
    except FileExistsError as err:
        raise outputs.OutputError(
            f"{err.filename} appeared while rendering and was left as it is: pass --force to "
            "replace it, or choose another --out (the segments are cached: a rerun takes seconds)") from None
    except OSError as err:  # a full or vanished output folder: nothing was published
        raise PodiumError(f"cannot write {target} (and its subtitles) in {target.parent}: "
                          f"{err.strerror or err}; nothing there was changed: free some space and "
                          "rerun (the segments are cached)") from None
    if edit_target is not None:  # the edit out: after the video, from the same pieces
        subtitles = target.with_suffix(".srt") if request.subtitles != "none" else None
        timeline.write(edit_target, timeline.edit_of(clips, offsets, request.fps, tuple(request.size),
                                                     mixer, subtitles, target.stem))
    duration = sum(c.duration for c in clips) - request.crossfade * (len(clips) - 1)
    return Result(target, duration, len(clips), reused, time.perf_counter() - started, choice.preset.name)
