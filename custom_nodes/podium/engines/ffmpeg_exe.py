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
