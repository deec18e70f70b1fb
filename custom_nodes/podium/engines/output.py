"""Encoding: frames streamed into ffmpeg with the narration, written atomically.

Frames go through a pipe one at a time (memory does not grow with length); the audio is padded
to exactly the video's length so both streams end on the same frame; the file appears under
its name only when it is whole.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from ..errors import PodiumError
from ..files import publish, temp_path, temp_prefix
from .ffmpeg_exe import find_ffmpeg
from .speech import write_wav

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def load_preset(name: str = "h264_aac") -> dict:
    path = PRESETS_DIR / f"{name}.json"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.json")))
        raise PodiumError(f"unknown encoder preset {name!r}; choose one of: {choices}")
    return json.loads(path.read_text())


def frames_for(duration_s: float, fps: float) -> int:
    """How many frames a clip of this audio length has: the nearest whole frame, at least 1."""
    return max(int(round(duration_s * fps)), 1)


def fit_audio(samples: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """Pad with silence (or trim) to exactly n_frames / fps seconds."""
    target = int(round(n_frames / fps * sample_rate))
    if len(samples) >= target:
        return samples[:target]
    return np.concatenate([samples, np.zeros(target - len(samples), samples.dtype)])


def encode_video(
    out_path: str | Path,
    render: Callable[[float], np.ndarray],
    size: tuple[int, int],
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    burn_srt: Optional[str] = None,
    preset: str = "h264_aac",
    on_frame: Optional[Callable[[], None]] = None,
    caption_margins: Optional[tuple[int, int]] = None,
    burn_ass: Optional[str] = None,
) -> Path:
    """Encode `render(t)` frames for the length of the audio into `out_path`, atomically.
    `caption_margins`: pixels on the left and right that burned captions keep clear of (a
    picture-in-picture box in a bottom corner). `burn_ass`: an ASS script drawn by libass as it
    is (captions.to_ass lays it out at this size, margins included); it wins over `burn_srt`.

    On any failure, or Ctrl-C, nothing is left behind and an existing file is untouched.
    """
    out_path = Path(out_path)
    width, height = size
    if width % 2 or height % 2:
        raise PodiumError(f"video size {width}x{height} must be even in both directions (H.264)")
    settings = load_preset(preset)
    n_frames = frames_for(len(samples) / sample_rate, fps)
    tmp = temp_path(out_path.with_suffix(f".{settings['extension']}"))
    with tempfile.TemporaryDirectory(prefix=temp_prefix("encode")) as work:
        write_wav(Path(work) / "audio.wav", fit_audio(samples, sample_rate, n_frames, fps),
                  sample_rate)
        filters = []
        if burn_ass is not None:
            (Path(work) / "subs.ass").write_text(burn_ass, encoding="utf-8")
            filters = ["-vf", "ass=subs.ass"]
        elif burn_srt is not None:
            (Path(work) / "subs.srt").write_text(burn_srt, encoding="utf-8")
            style = settings["subtitle_style"]
            if caption_margins:  # libass lays SRT out on a 384-wide script: margins in its units
                left, right = (round(px * 384 / width) for px in caption_margins)
                style += f",MarginL={left},MarginR={right}"
            filters = ["-vf", f"subtitles=subs.srt:force_style='{style}'"]
        command = [
            find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps),
            "-i", "pipe:0", "-i", "audio.wav", "-map", "0:v:0", "-map", "1:a:0",
            *filters, *settings["video"], *settings["audio"], *settings["container"],
            "-f", settings.get("format", "mp4"), str(tmp.absolute()),
        ]
        log = open(Path(work) / "ffmpeg.log", "w+b")
        # Own session: Ctrl-C reaches us, and we stop ffmpeg ourselves and clean up.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log, cwd=work,
                                   start_new_session=True)
        try:
            for i in range(n_frames):
                frame = render(i / fps)
                if frame.shape != (height, width, 3):
                    raise PodiumError(f"frame {i} is {frame.shape}, expected {(height, width, 3)}")
                # RGB -> YUV 4:2:0 here: OpenCV does it 10x faster than ffmpeg's swscale, and
                # half the bytes go through the pipe.
                process.stdin.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).data)
                if on_frame:
                    on_frame()
            process.stdin.close()
            if process.wait() != 0:
                log.seek(0)
                raise PodiumError(f"ffmpeg failed: {log.read().decode(errors='replace')[-800:]}")
            publish(tmp, out_path)
        except BrokenPipeError:
            process.wait()
            log.seek(0)
            raise PodiumError(f"ffmpeg stopped: {log.read().decode(errors='replace')[-800:]}") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            with contextlib.suppress(OSError):
                process.stdin.close()
            log.close()
            tmp.unlink(missing_ok=True)
    return out_path


AUDIO_FORMATS = {"flac": ("FLAC", "PCM_24", "audio/flac"), "wav": ("WAV", "FLOAT", "audio/wav")}


def write_audio(path: str | Path, channels: np.ndarray, sample_rate: int, fmt: str = "flac") -> Path:
    """(channels, samples) float audio to `path` as 24-bit FLAC or float WAV, whole or not at
    all (a temp name, renamed when written). FLAC clips to [-1, 1]; float WAV keeps the values."""
    import soundfile

    from ..files import writing

    if fmt not in AUDIO_FORMATS:
        raise PodiumError(f"audio format must be one of {', '.join(AUDIO_FORMATS)}, not {fmt!r}")
    container, subtype, _ = AUDIO_FORMATS[fmt]
    data = np.asarray(channels, np.float32)
    data = data.reshape(-1, data.shape[-1]).T  # soundfile wants (frames, channels)
    if not data.size:
        raise PodiumError("the audio is empty: nothing to save")
    if subtype != "FLOAT":
        data = np.clip(data, -1.0, 1.0)
    with writing(path) as tmp:
        soundfile.write(str(tmp), data, int(sample_rate), subtype=subtype, format=container)
    return Path(path)
