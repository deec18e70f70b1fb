"""Which ffmpeg to run and how to run it once (pure stdlib: the torch-free orchestrator and the
pack share this one runner)."""
from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import PodiumError


class FFmpegError(PodiumError):
    """ffmpeg failed; the message carries the end of its log."""


def find_ffmpeg() -> str:
    """ffmpeg from PODIUM_FFMPEG, the PATH, or the static build imageio-ffmpeg ships."""
    found = os.environ.get("PODIUM_FFMPEG") or shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise PodiumError("ffmpeg not found: install it (apt-get install ffmpeg) or "
                          "pip install imageio-ffmpeg") from None


def run_ffmpeg(args: list[str], stdout=None) -> subprocess.CompletedProcess:
    """Run ffmpeg quietly to the end; raise FFmpegError with its last words if it fails."""
    result = subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                            stdout=stdout, stderr=subprocess.PIPE)
    if result.returncode:
        raise FFmpegError(f"ffmpeg failed: {result.stderr.decode(errors='replace')[-800:]}")
    return result


def audio_to_wav(src, dst, rate: int, what: str = "the reference audio") -> None:
    """Any audio ffmpeg reads (mp3, m4a, a video's track) as mono 16-bit WAV at `rate`; one
    line naming the file when it cannot be read."""
    from pathlib import Path

    src, dst = Path(src), Path(dst)
    done = subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-vn", "-ac", "1",
                           "-ar", str(rate), "-c:a", "pcm_s16le", str(dst)], capture_output=True, text=True)
    if done.returncode != 0 or not dst.is_file():
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise PodiumError(f"could not read {what} {src.name}: {reason}")
