"""Stitching: segment clips into one MP4 whose audio is exactly the sum of the segments'.

Video is concatenated without re-encoding (every segment comes from the same encoder preset);
the audio of each clip (lossless PCM in the orchestrator's segments, see PodiumSaveVideo's
`intermediate`) is decoded, cut or padded to exactly its video's length and joined sample by
sample, so there is no gap and no drift however many segments there are; then it is
loudness-normalised (EBU R128) once, over the whole narration, and encoded to AAC once: the
only lossy step the audio goes through. Cross-fades re-encode the video.

With a soundtrack (`mixer`), the joined narration goes to it as float samples and what comes
back (music ducked under the voice, sound effects, mastered to the loudness target by
podium.engines.soundtrack) is what that one AAC encode gets: still one lossy step.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pysubs2

from podium.files import publish_all, temp_path, temp_prefix

from podium.engines.ffmpeg_exe import run_ffmpeg  # pure: no torch, no numpy

RATE = 48000  # Hz: the rate every clip's audio is decoded to and the final AAC has
LOUDNESS = "loudnorm=I={lufs:g}:TP=-1.5:LRA=11"  # EBU R128; -16 LUFS suits spoken online video
Mixer = Callable[["object"], "object"]  # joined narration (float32 numpy, RATE) -> the final mix


@dataclass
class Clip:
    """One rendered segment: its MP4, its exact frame count and rate, its subtitles if any
    (.srt: sentence cues; .ass: the captions as drawn, words and karaoke included)."""

    path: Path
    frames: int
    fps: float
    srt_path: Optional[Path] = None
    ass_path: Optional[Path] = None

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _exact_audio(clip: Clip, dest: Path) -> None:
    """The clip's audio as raw float32 mono at RATE, exactly as long as its video (padded with
    silence or cut), written by ffmpeg straight to `dest` (memory flat in the clip's length)."""
    n = int(round(clip.duration * RATE))
    run_ffmpeg(["-i", str(clip.path), "-vn", "-ac", "1",
                "-af", f"aresample={RATE},apad=whole_len={n},atrim=end_sample={n}",
                "-f", "f32le", str(dest)])


SUBTITLE_FILES = {".srt": "srt_path", ".ass": "ass_path"}  # suffix -> the Clip's field


def merge_subtitles(clips: list[Clip], offsets: list[float], suffix: str = ".srt") -> Optional[str]:
    """All clips' subtitles of one kind (.srt or .ass, read and written by pysubs2) in one file,
    each event shifted to where its clip starts in the result (to the nearest millisecond; ASS
    keeps centiseconds). ASS keeps the first clip's styles (every segment has the same). None
    when no clip has any, or when some clip lacks its file while others have one (an older
    cache entry): a file with a segment's captions missing would mislead."""
    field = SUBTITLE_FILES[suffix]
    paths = [getattr(clip, field) for clip in clips]
    if suffix != ".srt" and any(p is None and c.srt_path is not None for p, c in zip(paths, clips)):
        return None
    merged = None
    for path, offset in zip(paths, offsets):
        if path is None:
            continue
        part = pysubs2.SSAFile.from_string(path.read_text(encoding="utf-8"), format_=suffix[1:])
        part.shift(ms=round(offset * 1000))
        if merged is None:
            merged = part
        else:
            merged.events += part.events
    return merged.to_string(suffix[1:]) if merged is not None and merged.events else None


def stitch(clips: list[Clip], out_path: Path, crossfade_s: float = 0.0,
           normalize: bool = True, video_args: tuple[str, ...] = ("-c:v", "libx264", "-preset",
                                                                   "superfast", "-crf", "23",
                                                                   "-pix_fmt", "yuv420p"),
           replace: bool = True, mixer: Optional[Mixer] = None, loudness: float = -16.0,
           subtitles: bool = True, metadata: Optional[dict[str, str]] = None) -> Path:
    """Join `clips` in order into `out_path` (and `out_path.srt`, `.ass` when they have subtitles and
    `subtitles`), written under temporary names and renamed when whole. `replace=False`:
    FileExistsError, and nothing published, if either name was taken meanwhile. `mixer`: the
    narration's samples in, the finished soundtrack out (it masters it itself). `metadata`: tags
    written into the MP4 (key: value, kept as they are named)."""
    if not clips:
        raise ValueError("nothing to stitch")
    fps = clips[0].fps
    if any(c.fps != fps for c in clips):
        raise ValueError("all clips must have the same frame rate to be stitched")
    if crossfade_s and any(c.duration <= 2 * crossfade_s for c in clips):
        raise ValueError(f"a {crossfade_s} s cross-fade is too long for a clip this short")
    out_path = Path(out_path)
    offsets, start = [], 0.0
    for clip in clips:
        offsets.append(start)
        start += clip.duration - crossfade_s
    tmp = temp_path(out_path.with_suffix(".mp4"))
    side_tmps = {suffix: temp_path(out_path.with_suffix(suffix)) for suffix in SUBTITLE_FILES}
    with tempfile.TemporaryDirectory(prefix=temp_prefix("stitch")) as work:
        work = Path(work)
        for i, clip in enumerate(clips):
            _exact_audio(clip, work / f"a{i}.f32")
        audio_filter = [LOUDNESS.format(lufs=loudness), f"aresample={RATE}"] if normalize else []
        if mixer is not None:
            args = _mixed_args(clips, work, crossfade_s, mixer, video_args)
        elif crossfade_s:
            args = _crossfade_args(clips, work, crossfade_s, audio_filter, video_args)
        else:
            _join(clips, work, work / "audio.f32")
            listing = work / "clips.txt"
            listing.write_text("".join(f"file '{_quote(c.path)}'\n" for c in clips))
            args = ["-f", "concat", "-safe", "0", "-i", str(listing),
                    "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", str(work / "audio.f32"),
                    "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                    *(["-af", ",".join(audio_filter)] if audio_filter else [])]
        try:
            tags = [a for key, value in (metadata or {}).items() for a in ("-metadata", f"{key}={value}")]
            run_ffmpeg([*args, "-c:a", "aac", "-b:a", "160k", "-ar", str(RATE), "-ac", "1", *tags,
                        "-movflags", "+faststart+use_metadata_tags" if tags else "+faststart",
                        "-f", "mp4", str(tmp)])
            published = [(tmp, out_path)]  # the video first: subtitles never stand beside an old one
            for suffix, side_tmp in side_tmps.items():
                merged = merge_subtitles(clips, offsets, suffix) if subtitles else None
                if merged is not None:
                    side_tmp.write_text(merged, encoding="utf-8")
                    published.append((side_tmp, out_path.with_suffix(suffix)))
            publish_all(published, replace=replace)
        finally:
            tmp.unlink(missing_ok=True)
            for side_tmp in side_tmps.values():
                side_tmp.unlink(missing_ok=True)
    return out_path


def _mixed_args(clips, work: Path, fade: float, mixer: Mixer, video_args) -> list[str]:
    """ffmpeg arguments for the video with the mixer's soundtrack: the narration is joined
    (cross-faded by ffmpeg into float samples, when asked: lossless), handed to the mixer, and
    its result is the audio input of the one encode."""
    import numpy as np

    voice = work / "voice.f32"
    if fade:
        inputs, chain, label = _audio_chain(clips, work, fade, first_input=0)
        run_ffmpeg([*inputs, "-filter_complex", ";".join(chain), "-map", label,
                    "-f", "f32le", "-ar", str(RATE), "-ac", "1", str(voice)])
    else:
        _join(clips, work, voice)
    mixed = np.asarray(mixer(np.fromfile(voice, np.float32)), np.float32)
    mixed.tofile(work / "audio.f32")
    audio = ["-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", str(work / "audio.f32")]
    if fade:
        inputs, chain, label = _video_chain(clips, fade)
        return [*inputs, *audio, "-filter_complex", ";".join(chain), "-map", label,
                "-map", f"{len(clips)}:a:0", *video_args, "-r", str(clips[0].fps)]
    listing = work / "clips.txt"
    listing.write_text("".join(f"file '{_quote(c.path)}'\n" for c in clips))
    return ["-f", "concat", "-safe", "0", "-i", str(listing), *audio,
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]


def _join(clips, work: Path, dest: Path) -> None:
    """The clips' exact audio files one after the other in `dest`."""
    with open(dest, "wb") as joined:
        for i in range(len(clips)):
            with open(work / f"a{i}.f32", "rb") as part:
                shutil.copyfileobj(part, joined)


def _video_chain(clips, fade: float) -> tuple[list[str], list[str], str]:
    """(inputs, filters, output label) that chain xfade over the clips' video."""
    inputs, chain, video, offset = [], [], "[0:v]", 0.0
    for clip in clips:
        inputs += ["-i", str(clip.path)]
    for i in range(1, len(clips)):
        offset += clips[i - 1].duration - fade
        chain.append(f"{video}[{i}:v]xfade=transition=fade:duration={fade}:offset={offset:.6f}[v{i}]")
        video = f"[v{i}]"
    if not chain:
        chain, video = ["[0:v]null[v0]"], "[v0]"
    return inputs, chain, video


def _audio_chain(clips, work: Path, fade: float, first_input: int) -> tuple[list[str], list[str], str]:
    """(inputs, filters, output label) that chain acrossfade over the clips' exact audio
    (inputs numbered from `first_input`)."""
    inputs, chain, audio = [], [], "[a0]"
    for i in range(len(clips)):
        inputs += ["-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", str(work / f"a{i}.f32")]
        chain.append(f"[{first_input + i}:a]anull[a{i}]")
    for i in range(1, len(clips)):
        chain.append(f"{audio}[a{i}]acrossfade=d={fade}:c1=tri:c2=tri[x{i}]")
        audio = f"[x{i}]"
    return inputs, chain, audio


def _crossfade_args(clips, work: Path, fade: float, audio_filter, video_args) -> list[str]:
    """ffmpeg arguments that chain xfade (video) and acrossfade (audio) over all clips."""
    video_inputs, chain, video = _video_chain(clips, fade)
    audio_inputs, audio_chain, audio = _audio_chain(clips, work, fade, first_input=len(clips))
    chain = [*chain, *audio_chain]
    if audio_filter:
        chain.append(f"{audio}{','.join(audio_filter)}[aout]")
        audio = "[aout]"
    return [*video_inputs, *audio_inputs, "-filter_complex", ";".join(chain), "-map", video,
            "-map", audio, *video_args, "-r", str(clips[0].fps)]


def _quote(path: Path) -> str:
    """A path for ffmpeg's concat list (single quotes escaped its way)."""
    return str(Path(path).absolute()).replace("'", "'\\''")
