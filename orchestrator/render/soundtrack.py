"""The video's soundtrack on the orchestrator's side: which music and sound effects, where the
cues fall in the stitched video, and the mixer stitch hands the narration to.

The mixing itself is podium.engines.soundtrack (numpy and soxr, no torch), the same code the
PodiumMix node runs. `--music auto` and unfiled sound cues run the music / sound-effect graphs
(workflows/music.json, workflows/sfx.json) once per video on the same instance that draws the
presenter, in-process or on a ComfyUI server, and their results are cached like segments.
"""
from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import srt

from podium.engines import soundtrack as engine
from podium.errors import UsageError
from podium.files import atomic_copy, temp_prefix

from orchestrator.render.segments import SegmentCache, content_key
from orchestrator.render.stitch import RATE, Clip
from orchestrator.graphs.workflow import bind, find_node, load_workflow

AUTO = "auto"
AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a")
MAX_GENERATED_S = 120.0  # a generated track longer than this is looped, not generated longer
SFX_SECONDS = 2.5  # how long a generated sound effect is
# Sound effects: Stable Audio Open (made for effects and short sounds, up to 47 s) when installed
# where the effect is made and the video is not --commercial (its licence is non-commercial);
# else the sfx graph's own model (ACE-Step, a music model for 10 s and longer).
SFX_MODEL_PREFERRED = "stable-audio-open-1.0"
SECTION_CROSSFADE_S = 1.5  # between the tracks of sections with their own music
LEAD_S = 0.25  # the silence the voice stages put before and after a segment's speech


@dataclass
class Request:
    """The soundtrack the command line asked for."""

    music: Optional[str] = None  # a file, AUTO, or None
    prompt: str = ""  # --music-prompt: overrides the script's
    sfx_files: dict = field(default_factory=dict)  # sound name -> file
    sfx_auto: bool = False
    settings: engine.MixSettings = field(default_factory=engine.MixSettings)
    seed: int = 0
    commercial: bool = False

    @property
    def wanted(self) -> bool:
        return bool(self.music or self.sfx_files or self.sfx_auto)


def request_from_args(render) -> Request:
    """The render request's --music, --sfx, --music-volume, --duck, --loudness, checked (a
    file that is missing or not audio: one line, before any work)."""
    settings = engine.MixSettings(music_volume_db=render.music_volume, duck_db=render.duck,
                                  loudness_lufs=render.loudness).check()
    request = Request(settings=settings, prompt=(render.music_prompt or "").strip(), seed=render.seed,
                      commercial=bool(render.commercial))
    if render.music:
        request.music = AUTO if render.music == AUTO else str(_audio_file(render.music, "--music"))
    for pair in render.sfx:
        if pair.strip() == AUTO:
            request.sfx_auto = True
            continue
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UsageError(f"--sfx takes NAME=FILE (or auto), got {pair!r}")
        request.sfx_files[sound_key(name)] = _audio_file(path.strip(), f"--sfx {name.strip()}")
    return request


def _audio_file(path: str, option: str) -> Path:
    found = Path(path).expanduser().absolute()
    if not found.is_file():
        raise UsageError(f"{option}: {found} not found" + (" (it is a folder)" if found.is_dir() else "")
                         + ": give an audio file (WAV, FLAC, MP3, OGG, M4A)")
    engine.decode(found, 8000, max_seconds=0.5, what=f"{option}:")  # it must decode: fail now
    return found


def sound_key(name: str) -> str:
    """How cue names are compared: `[sfx: Applause]` is `--sfx applause=...`."""
    return " ".join(name.lower().split())


def input_files(render) -> dict[str, Path]:
    """The render request's audio files by option (so no output is written over one)."""
    files = {}
    if render.music and render.music != AUTO:
        files["--music"] = Path(render.music).expanduser()
    for pair in render.sfx:
        name, sep, path = pair.partition("=")
        if sep and path.strip():
            files[f"--sfx {pair}"] = Path(path.strip()).expanduser()
    return {k: v for k, v in files.items() if v.is_file()}


def check_unused_sfx(request: Request, script) -> None:
    """A --sfx NAME=FILE for a sound the script never marks would be dropped without a word
    (a typo, or the wrong script): refuse it, naming the marks the script has."""
    marked = {sound_key(c.sound): c.sound for seg in script.segments for c in seg.cues}
    unused = [name for name in request.sfx_files if name not in marked]
    if unused:
        has = (f"its marks are {', '.join(f'[sfx: {m}]' for m in sorted(marked.values()))}" if marked
               else "it has no [sfx: NAME] mark")
        raise UsageError(f"--sfx {', '.join(unused)}: the script never plays this sound ({has}); "
                         "fix the name, mark the place with [sfx: NAME], or leave the option out")


def check_generators(request: Request, script, check_models: bool) -> None:
    """Before any work: every --sfx NAME is marked in the script, and the music / sound-effect
    graphs that will run exist and, when they run here, their models are installed (else one
    line naming the pull command)."""
    check_unused_sfx(request, script)
    wanted = []
    if request.music == AUTO:
        wanted.append(("music", "--music auto"))
    if request.sfx_auto and any(sound_key(c.sound) not in request.sfx_files
                                for seg in script.segments for c in seg.cues):
        wanted.append(("sfx", "--sfx auto"))
    for workflow, option in wanted:
        graph = load_workflow(workflow)
        if not check_models:
            continue
        from podium.models import load_registry

        from orchestrator.render.presets import _missing, models_in

        registry = load_registry()
        missing = _missing(models_in(graph, {e.id for e in registry.entries}), registry)
        if missing:
            raise UsageError(f"{option} needs the model {', '.join(missing)}: podium models pull "
                             f"{' '.join(missing)} (or give --{'music FILE' if workflow == 'music' else 'sfx NAME=FILE'})")


def needs_timings(request: Request, script) -> bool:
    """Whether the segments must bring subtitles (sentence times) for the sound cues."""
    return any(seg.cues for seg in script.segments) and (bool(request.sfx_files) or request.sfx_auto)


# --- where the sentences are ----------------------------------------------------------------

def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def sentence_spans(clip: Clip, sentences: list[str]) -> list[tuple[float, float]]:
    """Each sentence's (start, end) in the clip, from its subtitles (a sentence is one or more
    cues, in order); without subtitles that fit, shared out over the speech by length."""
    if clip.srt_path is not None:
        try:
            cues = list(srt.parse(clip.srt_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, srt.SRTParseError):
            cues = []
        spans, i = [], 0
        for sentence in sentences:
            want, said, start = _norm(sentence), "", None
            while i < len(cues) and len(said) < len(want):
                start = cues[i].start.total_seconds() if start is None else start
                said = (said + " " + _norm(cues[i].content)).strip()
                i += 1
            if said != want or start is None:
                spans = None
                break
            spans.append((start, cues[i - 1].end.total_seconds()))
        if spans:
            return spans
    speech = max(clip.duration - 2 * LEAD_S, 0.0)
    total = sum(len(s) for s in sentences) or 1
    spans, at = [], LEAD_S
    for sentence in sentences:
        length = speech * len(sentence) / total
        spans.append((at, at + length))
        at += length
    return spans


def cue_times(script, clips: list[Clip], offsets: list[float]) -> list[tuple[str, float]]:
    """(sound name, seconds into the video) of every [sfx: ...] cue."""
    times = []
    for segment, clip, offset in zip(script.segments, clips, offsets):
        if not segment.cues:
            continue
        spans = sentence_spans(clip, segment.sentences)
        for cue in segment.cues:
            start, end = spans[min(cue.sentence, len(spans) - 1)]
            times.append((cue.sound, offset + start + cue.at * (end - start)))
    return times


# --- generating ---------------------------------------------------------------------------

def sfx_model(instance, commercial: bool) -> str:
    """The model that makes sound effects on `instance`: Stable Audio Open when it is installed
    in this process's models and the video is not --commercial; else the sfx graph's own.
    (A ComfyUI server runs the graph's own: which models it holds is not known here.)"""
    graph = load_workflow("sfx")
    default = graph[find_node(graph, "Sound effect")]["inputs"]["model"]
    if commercial or not getattr(instance, "in_process", False):
        return default
    from podium.models import load_registry

    from orchestrator.render.presets import _missing

    return default if _missing([SFX_MODEL_PREFERRED], load_registry()) else SFX_MODEL_PREFERRED


def generate_audio(workflow: str, title: str, prompt: str, seconds: float, seed: int,
                   instance, cache: SegmentCache, view, extra: Optional[dict] = None) -> Path:
    """Run the music or sound-effect graph once (cached by its bound content); the file."""
    graph = bind(load_workflow(workflow), {(title, "prompt"): prompt, (title, "seconds"): round(seconds, 2),
                                           (title, "seed"): seed, **(extra or {})})
    key = f"{workflow}-" + content_key(graph, {})
    folder = cache.folder / key
    found = [p for p in folder.glob("audio.*")] if folder.is_dir() else []
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix=temp_prefix(workflow)) as work:
        made = instance.produce(graph, {}, Path(work), lambda t, d: view(instance.name, t, d))
        audio = [p for items in made.values() for p, _ in items if p.suffix.lower() in AUDIO_SUFFIXES]
        if not audio:
            raise UsageError(f"the {workflow} workflow made no audio file: does it end in a save "
                             "audio node?")
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_copy(audio[0], folder / f"audio{audio[0].suffix.lower()}")


def _prompt(request: Request, script, segment=None) -> str:
    if request.prompt:
        return request.prompt
    if segment is not None and segment.music:
        return segment.music
    return script.music or f"calm, unobtrusive instrumental background music for a video about {script.title}"


# --- the mixer ----------------------------------------------------------------------------

def mixer_for(request: Request, script, clips: list[Clip], offsets: list[float], instance,
              cache: SegmentCache, view):
    """The function stitch gives the narration to, or None when there is nothing to add."""
    if not request.wanted:
        return None
    duration = offsets[-1] + clips[-1].duration
    music, pieces = None, Pieces()
    if request.music == AUTO:
        music = _auto_music(request, script, clips, offsets, duration, instance, cache, view, pieces)
    elif request.music:
        music = engine.decode(request.music, RATE, max_seconds=duration + 1.0, what="music file")
        pieces.music.append((Path(request.music).expanduser(), 0.0, duration, "Music"))
    cues = []
    missing = set()
    model = sfx_model(instance, request.commercial) if request.sfx_auto else None
    for name, time in cue_times(script, clips, offsets):
        path = request.sfx_files.get(sound_key(name))
        if path is None and request.sfx_auto:
            path = generate_audio("sfx", "Sound effect", name, SFX_SECONDS, request.seed, instance, cache, view,
                                  {("Sound effect", "model"): model})
            print(f"sound effect [{name}] at {time:.1f} s: made by {model}", file=sys.stderr)
        if path is None:
            missing.add(name)
            continue
        cue = engine.decode(path, RATE, max_seconds=30.0, what="sound effect")
        cues.append(engine.SoundCue(cue, time))
        pieces.effects.append((Path(path), time, len(cue) / RATE, name))
    if missing:
        print(f"warning: no sound for {', '.join(sorted(missing))}: give --sfx NAME=FILE, or "
              "--sfx auto to generate them; those cues are silent", file=sys.stderr)
    if music is None and not cues:
        return None
    fitted = isinstance(music, tuple)

    def mix(voice):
        bed = music[0] if fitted else music
        return engine.mix(voice, RATE, bed, cues, request.settings, fitted=fitted)

    mix.pieces = pieces  # what went where, for the timeline (--timeline)
    return mix


@dataclass
class Pieces:
    """The files the mix placed: (file, start s, seconds, name) each, for the edit out."""

    music: list = field(default_factory=list)
    effects: list = field(default_factory=list)


def _auto_music(request: Request, script, clips, offsets, duration, instance, cache, view, pieces=None):
    """One generated track for the video; sections that ask for other music get their own,
    cross-faded at their boundaries. (samples, True) when already laid out to the video."""
    spans: list[tuple[str, float, float]] = []  # prompt, start, end
    for segment, clip, offset in zip(script.segments, clips, offsets):
        prompt = _prompt(request, script, segment)
        if spans and spans[-1][0] == prompt:
            spans[-1] = (prompt, spans[-1][1], offset + clip.duration)
        else:
            spans.append((prompt, offset, offset + clip.duration))
    tracks, paths = {}, {}
    for prompt, start, end in spans:
        if prompt not in tracks:
            seconds = min(max(end - start for p, start, end in spans if p == prompt) + 1.0, MAX_GENERATED_S)
            path = generate_audio("music", "Music", prompt, seconds, request.seed, instance, cache, view)
            tracks[prompt] = engine.decode(path, RATE, what="generated music")
            paths[prompt] = path
    for prompt, start, end in spans:
        if pieces is not None:
            pieces.music.append((paths[prompt], start, min(end - start, len(tracks[prompt]) / RATE), "Music"))
    if len(spans) == 1:
        return tracks[spans[0][0]]
    length = int(round(duration * RATE))
    layout = [(tracks[p], int(round(s * RATE)), int(round(e * RATE))) for p, s, e in spans]
    return engine.sections_bed(layout, RATE, length, request.settings.loop_crossfade_s,
                               SECTION_CROSSFADE_S), True
