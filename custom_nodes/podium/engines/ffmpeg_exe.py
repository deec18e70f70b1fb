"""Which ffmpeg to run (pure stdlib, so the torch-free orchestrator shares it)."""
from __future__ import annotations

import os
import shutil

from ..errors import PodiumError


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
