"""One `podium generate` job: choose the preset, bind the user's inputs, draw the presenter
once if needed, render the segments, stitch them.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from podium.engines.script import parse_script  # pure: no torch, no numpy
from podium.engines.script_schema import ScriptFormatError
from podium.errors import PodiumError, UsageError
from podium.models import load_registry

from orchestrator.servers import cinema, scene_graphs
from orchestrator.render import outputs, presets, scenes, soundtrack, timeline
from orchestrator.servers.dispatch import render_all
from orchestrator.render import lecture
from orchestrator.profiles import likeness as profile_likeness
from orchestrator.render.lecture import Layout, page_script
from orchestrator.render.presenter import draw_presenter, idle_motion
from orchestrator.render.plan import build as build_plan, show as show_plan
from orchestrator.cli.progress_view import JobView
from orchestrator.inputs import MAX_IMAGE_PIXELS, check_image_size  # noqa: F401 - re-exported
from orchestrator.request import LONG_MINUTES, LONG_SEGMENTS, RenderRequest, too_long
from orchestrator.render.segments import SegmentCache, default_cache_dir, plan_per_server
from orchestrator.render.stitch import stitch
from orchestrator.graphs.workflow import find_node, has_node

SUBTITLE_MODES = {"none": "none", "srt": "srt", "burn": "srt+burn"}


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


def bindings(request: RenderRequest, graph: dict, preset: str = "") -> tuple[dict, dict]:
    """(values, files) for the graph from the request, for the nodes it has."""
    values = {("Save video", "fps"): request.fps, ("Save video", "subtitle_mode"): SUBTITLE_MODES[request.subtitles]}
    if has_node(graph, "Output fps"):  # one number feeds the Retime and Save nodes (cinema)
        values[("Output fps", "value")] = request.fps
        if isinstance(graph[find_node(graph, "Save video")]["inputs"].get("fps"), list):
            del values[("Save video", "fps")]  # it is linked to Output fps
    if has_node(graph, "Presenter") or not has_node(graph, "Portrait"):  # (a cinema graph has no Presenter)
        values[("Presenter", "width")], values[("Presenter", "height")] = request.size
    files = {}
    if graph[find_node(graph, "Save video")]["class_type"] == "PodiumSaveVideo":
        # Segments keep their audio lossless (PCM in a .mov): it is encoded once, when stitched.
        values[("Save video", "intermediate")] = True
    if has_node(graph, "Subtitles"):  # only when asked: graphs rendered as before keep their cache keys
        if request.captions != "sentence":
            values[("Subtitles", "mode")] = request.captions
        if request.caption_style != "default":
            values[("Subtitles", "style")] = request.caption_style
    if has_node(graph, "Lip sync"):
        values[("Lip sync", "fps")] = request.fps  # each frame takes the audio of its own time
    if has_node(graph, "Upscale"):
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
    return ("Portrait", "image") if has_node(graph, "Portrait") else ("Presenter", "portrait_path")


def _say_voice_ref_unused(request: RenderRequest, preset: str) -> None:
    order, known = presets.load_presets()
    cloning = " or ".join(n for n in order if known[n].cloned_voice)
    who = f"the {preset} preset speaks" if preset and request.workflow is None else "this workflow speaks"
    what = f"profile {request.profile}'s voice sample" if request.profile else "--voice-ref"
    print(f"warning: {what} is not used: {who} with Piper; the {cloning} preset would clone "
          "it (--preset NAME says what it needs)", file=sys.stderr)


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


@dataclass
class Job:
    """What `_run` decided before any work: the preset and each server's graph, the bindings,
    the layout, the script and the soundtrack, all checked."""

    choice: presets.Choice
    graph: dict
    values: dict
    files: dict
    picks: dict  # server name -> its cinema pick (servers-only presets)
    server_graphs: dict  # server name -> graph with or without core scene shots (one graph, servers)
    layout: Layout
    script: object
    sound: object
    cue_timings: bool
    instances: list
    every_server: list


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
    job = _prepare(request, narration, instances, load_graph, remote)
    edit_target = timeline.check_target(request.timeline, target) if request.timeline else None
    check_length(job.script, how.yes)
    check_crossfade(request.crossfade, job.script)
    say_preset(request.preset, job.choice)
    likeness = None
    if profile is not None and portrait_input(job.graph) in job.files:  # the photo, or drawn with its LoRA
        likeness, line = profile_likeness.choose(profile, request.presenter_prompt, job.choice.preset, remote)
        print(line, file=sys.stderr)
    if how.plan:  # print what would run and its cost; render nothing
        show_plan(build_plan(job.script, job.choice.preset, job.graph, job.picks, job.every_server, request.size,
                             load_registry(), load_graph))
    started = time.perf_counter()
    instances = job.instances
    view = JobView(job.graph, len(job.script.segments), enabled=not how.quiet, sink=how.sink)
    try:
        picture = None
        if likeness is not None:
            picture = draw_presenter(request, likeness.family, job.script.stage, instances[0], cache, view, likeness)
        elif "portrait" in job.choice.preset.needs and not request.image and job.choice.preset.image_model:
            picture = draw_presenter(request, job.choice.preset.image_model, job.script.stage, instances[0], cache,
                                     view)
        if picture is not None:
            job.files[portrait_input(job.graph)] = picture
        idle_motion(request, job.graph, job.values, job.files, instances[0], cache, view)
        jobs = _segment_jobs(request, job, picture)
        reused = sum(1 for segment in jobs if cache.get(segment.key) is not None)
        clips = render_all(jobs, instances, cache, view)
        offsets = [sum(c.duration for c in clips[:i]) - request.crossfade * i for i in range(len(clips))]
        run_script = page_script(job.layout.talk) if job.layout.talk else job.script  # a section a run
        mixer = soundtrack.mixer_for(job.sound, run_script, clips, offsets, instances[0], cache, view)
    finally:
        view.close()
    _publish(request, how, target, clips, mixer, job.sound, profile)
    if edit_target is not None:  # the edit out: after the video, from the same pieces
        subtitles = target.with_suffix(".srt") if request.subtitles != "none" else None
        timeline.write(edit_target, timeline.edit_of(clips, offsets, request.fps, tuple(request.size),
                                                     mixer, subtitles, target.stem))
    duration = sum(c.duration for c in clips) - request.crossfade * (len(clips) - 1)
    return Result(target, duration, len(clips), reused, time.perf_counter() - started, job.choice.preset.name)


def _prepare(request: RenderRequest, narration: str, instances: list, load_graph, remote: bool) -> Job:
    """The preset (and each server's graph), the user's files bound, the layout, the script and
    the soundtrack: everything that can refuse the request, before any work."""
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
    soundtrack.check_generators(sound, script, check_models=not remote)
    # the cues' times come from the segments' subtitles, made (not published) even with --subtitles none
    cue_timings = soundtrack.needs_timings(sound, script) and request.subtitles == "none"
    if cue_timings and has_node(graph, "Subtitles"):
        values[("Save video", "subtitle_mode")] = "srt"
    return Job(choice, graph, values, files, picks, server_graphs, layout, script, sound, cue_timings,
               instances, every_server)


def _segment_jobs(request: RenderRequest, job: Job, picture: Path | None) -> list:
    """The segment runs: one graph, or every server its own graph with one cache key per
    segment whichever runs it."""
    if job.picks:
        per_server = {}
        for name, pick in job.picks.items():
            server_values, server_files = bindings(request, pick.graph, job.choice.preset.name)
            server_values, server_files = job.layout.fit(pick.graph, server_values, server_files)
            if job.cue_timings and has_node(pick.graph, "Subtitles"):
                server_values[("Save video", "subtitle_mode")] = "srt"
            if picture is not None:
                server_files[portrait_input(pick.graph)] = picture
            per_server[name] = (pick.graph, server_values, server_files)
        return plan_per_server(per_server, job.script, planner=job.layout.planner)
    if job.server_graphs:  # one graph, each server with or without the core shot chain
        return plan_per_server({name: (g, job.values, job.files) for name, g in job.server_graphs.items()},
                               job.script, planner=job.layout.planner)
    return job.layout.planner(job.graph, job.script, job.values, job.files)


def _publish(request: RenderRequest, how: Run, target: Path, clips: list, mixer, sound, profile) -> None:
    """The clips stitched into the video at `target` (temp name, then rename), with a message
    that says what to do when that cannot be."""
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
