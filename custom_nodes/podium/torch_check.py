"""The one line a ComfyUI user sees at load time when their torch is older than Podium needs.

The pack never installs or pins torch (ComfyUI's torch, built for the user's CUDA, must win),
so an old one can only be reported: transformers (which every model stage but Piper and Wav2Lip
loads through) turns torch off below 2.6 in its current releases, and accelerate >= 1.16 asks
for 2.6 too (requirements.txt keeps accelerate under 1.16 so pip never replaces torch for it).
Read from the package metadata: no torch import at load time.
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import Optional

MIN_TORCH = (2, 6)
TESTED_TORCH = "2.9.1"


def _release(text: str) -> tuple[int, ...]:
    """(2, 4, 1) from '2.4.1+cu121' (the local build and pre-release tags ignored)."""
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def torch_warning(installed: Optional[str] = None) -> Optional[str]:
    """The line to print, or None when torch is recent enough (or absent: the draft path
    needs none, and ComfyUI itself would not start without it)."""
    if installed is None:
        try:
            installed = metadata.version("torch")
        except metadata.PackageNotFoundError:
            return None
    if _release(installed) >= MIN_TORCH:
        return None
    need = ".".join(map(str, MIN_TORCH))
    return (f"Podium: torch {installed} is older than the {need} its model stages need (transformers "
            f"turns older torch off; tested with {TESTED_TORCH}); the draft preset (Piper, Wav2Lip, "
            f"slides) still works. Upgrade torch for your CUDA, or see the pack README, 'torch'.")
