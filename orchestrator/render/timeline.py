"""The edit out: the finished video's timeline as OpenTimelineIO (.otio), and FCPXML / EDL through
OpenTimelineIO's adapters, with every piece it points at copied into a media folder beside it.

Tracks: the picture (one clip a segment, as rendered), the narration (the same segment files'
sound), the music (the file as given, or the generated bed, from 0) and one clip a sound effect at
its cue. Captions are markers on the picture track (their text as the name). Ducking is baked into
the video's mix, not into these clips: each music clip says so in its metadata, and the editor
sets its own levels. An EDL holds one picture track only: the adapter's own limits apply to it.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from podium.errors import UsageError
from podium.files import publish, temp_prefix

FORMATS = {".otio": "otio_json", ".fcpxml": "fcpx_xml", ".edl": "cmx_3600"}
MARKER = ".podium-timeline"  # in a media folder Podium wrote: only such a folder is ever replaced


@dataclass
class Piece:
    """A sound placed on the timeline: a file, where it starts, and how long it plays."""

    path: Path
    start: float
    duration: float
    name: str = ""


@dataclass
class Edit:
    """What the video is made of, in seconds from its start."""

    fps: float
    size: tuple[int, int]
    segments: list[Piece]  # picture and narration: each segment's rendered file
    music: list[Piece] = field(default_factory=list)
    effects: list[Piece] = field(default_factory=list)
    captions: list[tuple[float, float, str]] = field(default_factory=list)
    name: str = "Podium"


def check_target(path: str | Path, video: Path) -> Path:
    """The timeline's file, checked before any rendering: a known format, not the video itself,
    in a folder that exists and can be written."""
    path = Path(path).expanduser().absolute()
    if path == video.absolute():
        raise UsageError(f"--timeline {path.name} is the video itself: give the timeline its own name")
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--timeline {path.name}: write .otio, .fcpxml or .edl")
    if not path.parent.is_dir():
        raise UsageError(f"--timeline: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"--timeline: cannot write in {path.parent} (permission denied)")
    media = media_folder(path)
    if media.exists() and not (media / MARKER).is_file():
        raise UsageError(f"--timeline: {media} exists and Podium did not make it; move it away or "
                         "give the timeline another name (its media goes in NAME_media/)")
    return path


def media_folder(path: Path) -> Path:
    return path.with_name(path.stem + "_media")


def _time(seconds: float, fps: float):
    import opentimelineio as otio

    return otio.opentime.RationalTime(round(seconds * fps), fps)


def _range(start: float, duration: float, fps: float):
    import opentimelineio as otio

    return otio.opentime.TimeRange(_time(start, fps), _time(duration, fps))


def _clip(piece: Piece, media: Path, fps: float, source_start: float = 0.0):
    import opentimelineio as otio

    reference = otio.schema.ExternalReference(target_url=media.resolve().as_uri(),
                                              available_range=_range(0.0, piece.duration + source_start, fps))
    return otio.schema.Clip(name=piece.name or media.stem, media_reference=reference,
                            source_range=_range(source_start, piece.duration, fps))


def _laid_out(track, pieces: list[Piece], copies: dict[Path, Path], fps: float) -> None:
    """Pieces in time order with gaps between them (a track is a sequence, not a canvas)."""
    import opentimelineio as otio

    at = 0
    for piece in sorted(pieces, key=lambda p: p.start):
        start = round(piece.start * fps)
        if start > at:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, fps), otio.opentime.RationalTime(start - at, fps))))
            at = start
        clip = _clip(piece, copies[piece.path], fps)
        track.append(clip)
        at += round(piece.duration * fps)


def build(edit: Edit, copies: dict[Path, Path]):
    """The opentimelineio Timeline of `edit`, its media at `copies[original]`."""
    import opentimelineio as otio

    fps = edit.fps
    timeline = otio.schema.Timeline(name=edit.name, global_start_time=_time(0, fps))
    picture = otio.schema.Track(name="Picture", kind=otio.schema.TrackKind.Video)
    narration = otio.schema.Track(name="Narration", kind=otio.schema.TrackKind.Audio)
    for piece in edit.segments:
        picture.append(_clip(piece, copies[piece.path], fps))
        narration.append(_clip(piece, copies[piece.path], fps))
    for start, end, text in edit.captions:
        picture.markers.append(otio.schema.Marker(name=text, marked_range=_range(start, end - start, fps),
                                                  color=otio.schema.MarkerColor.YELLOW,
                                                  metadata={"podium": {"caption": text}}))
    timeline.tracks.append(picture)
    timeline.tracks.append(narration)
    if edit.music:
        music = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
        _laid_out(music, edit.music, copies, fps)
        for clip in music.find_clips():
            clip.metadata["podium"] = {"ducking": "baked into the video's mix; set levels in the editor"}
        timeline.tracks.append(music)
    if edit.effects:
        effects = otio.schema.Track(name="Sound effects", kind=otio.schema.TrackKind.Audio)
        _laid_out(effects, edit.effects, copies, fps)
        timeline.tracks.append(effects)
    timeline.metadata["podium"] = {"width": edit.size[0], "height": edit.size[1], "fps": fps}
    return timeline


def write(path: Path, edit: Edit) -> Path:
    """The timeline at `path` and its media in `<stem>_media/` beside it, both whole or neither
    (written under temporary names, then moved in)."""
    import opentimelineio as otio

    media = media_folder(path)
    work = path.parent / f".{temp_prefix('timeline')}{path.stem}"
    work.mkdir()
    try:
        staged = work / "media"
        staged.mkdir()
        (staged / MARKER).write_text("media of the timeline beside this folder, written by podium\n")
        copies, final = {}, {}
        pieces = [*edit.segments, *edit.music, *edit.effects]
        for index, piece in enumerate(pieces):
            if piece.path in copies:
                continue
            name = f"{index:03d}-{piece.path.name}"
            _place(piece.path, staged / name, link=index < len(edit.segments))
            copies[piece.path], final[piece.path] = staged / name, media / name
        timeline = build(edit, final)
        try:
            otio.adapters.write_to_file(timeline, str(work / path.name), adapter_name=FORMATS[path.suffix.lower()])
        except Exception as err:  # an adapter that cannot hold this edit (EDL: one track)
            raise UsageError(f"--timeline {path.name}: the {FORMATS[path.suffix.lower()]} format cannot "
                             f"hold this edit ({type(err).__name__}: {err}); write .otio instead") from None
        if media.exists():
            if not (media / MARKER).is_file():  # appeared while rendering: not ours to remove
                raise UsageError(f"--timeline: {media} appeared while rendering; nothing was written")
            shutil.rmtree(media)
        publish(staged, media)
        publish(work / path.name, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _place(source: Path, dest: Path, link: bool) -> None:
    """`source` at `dest`. A rendered segment (`link`) is hard-linked where the file system
    allows, so its bytes are not read and written again (the segment cache only ever renames
    whole entries in or out, never rewrites a clip, so the link keeps the clip as rendered);
    anything else, the user's own music included, is copied."""
    if link:
        try:
            os.link(source, dest)
            return
        except OSError:  # another file system, or links not allowed there
            pass
    shutil.copy2(source, dest)


def edit_of(clips, offsets: list[float], fps: float, size: tuple[int, int], mixer, subtitles: Path | None,
            name: str) -> Edit:
    """The Edit of a finished render: its segment clips at their offsets, what the mixer placed
    (music, sound effects) and the captions of the published subtitles."""
    segments = [Piece(c.path, float(o), c.duration, f"Segment {i + 1}")
                for i, (c, o) in enumerate(zip(clips, offsets))]
    pieces = getattr(mixer, "pieces", None)
    music = [Piece(Path(p), s, d, n) for p, s, d, n in (pieces.music if pieces else [])]
    effects = [Piece(Path(p), s, d, n) for p, s, d, n in (pieces.effects if pieces else [])]
    captions = []
    if subtitles is not None and subtitles.is_file():
        import srt

        captions = [(c.start.total_seconds(), c.end.total_seconds(), c.content.replace("\n", " "))
                    for c in srt.parse(subtitles.read_text(encoding="utf-8"))]
    return Edit(fps, size, segments, music, effects, captions, name)
