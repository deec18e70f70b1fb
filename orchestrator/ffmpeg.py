"""ffmpeg for the orchestrator (torch-free): run it, say what failed."""
from __future__ import annotations

import subprocess

from podium.engines.ffmpeg_exe import find_ffmpeg  # pure: no torch, no numpy
from podium.errors import PodiumError


class FFmpegError(PodiumError):
    """ffmpeg failed; the message carries the end of its log."""


def run_ffmpeg(args: list[str], stdout=None) -> subprocess.CompletedProcess:
    """Run ffmpeg quietly; raise FFmpegError with its last words if it fails."""
    result = subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                            stdout=stdout, stderr=subprocess.PIPE)
    if result.returncode:
        raise FFmpegError(f"ffmpeg failed: {result.stderr.decode(errors='replace')[-800:]}")
    return result
