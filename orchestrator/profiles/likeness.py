"""A profile's identity LoRA on the drawn presenter (`podium generate --profile NAME
--presenter-prompt TEXT`).

A profile with a LoRA (`podium profile train`) and a --presenter-prompt has its presenter drawn
once with the LoRA, on the model it was trained on, the trained caption ("a photo of <token>
person") first in the prompt; otherwise the profile's photo is the presenter, as before. One
line says which. The LoRA file goes to the presenter graph as an input file, so a ComfyUI
server gets it the way it gets every input (uploaded to its input folder, where the pack's
Presenter image node reads a `lora_path`), and the drawing's cache key hashes its bytes (its
sha256) beside the scale bound in the graph. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BASES = ("sd15", "sdxl")  # models.yaml ids a LoRA is trained on (the --base of `profile train`)
LORA_SCALE = 1.0
NODE = "Presenter image"


@dataclass(frozen=True)
class Likeness:
    """What the presenter graph needs to draw the profile's person."""

    lora: Path  # the LoRA file in the profile
    caption: str  # as trained: "a photo of <token> person"
    family: str  # sd15 / sdxl
    base: str  # a models.yaml id, or the diffusers folder it was trained on
    scale: float = LORA_SCALE

    def prompt(self, wanted: str) -> str:
        return f"{self.caption}, {wanted}" if wanted.strip() else self.caption

    def values(self) -> dict:
        """The Presenter image node's inputs: the base (a folder wins over the id), the scale."""
        return {(NODE, "model"): self.family, (NODE, "model_folder"): "" if self.base in BASES else self.base,
                (NODE, "lora_scale"): self.scale}

    def files(self) -> dict:
        return {(NODE, "lora_path"): self.lora}


def of(profile) -> Optional[Likeness]:
    """The profile's LoRA, or None when it has none (or its file is gone)."""
    record = profile.manifest.get("lora")
    if not record:
        return None
    files = sorted((profile.folder / record.get("folder", "lora")).glob("*.safetensors"))
    if not files:
        return None
    token = record.get("token", "sks")
    return Likeness(files[0], record.get("caption") or f"a photo of {token} person",
                    record.get("family", "sd15"), str(record.get("base") or record.get("family", "sd15")))


def choose(profile, prompt: str, preset, remote: bool) -> tuple[Optional[Likeness], str]:
    """(the likeness to draw with, or None for the photo; the line that says which)."""
    likeness = of(profile)
    photo = f"profile {profile.name}: the presenter is its photo ({profile.portrait.name})"
    if likeness is None:
        return None, photo + (f"; --presenter-prompt is not used: the profile has no LoRA (`podium profile "
                              f"train {profile.name}` learns one)" if prompt.strip() else "")
    if not prompt.strip():
        return None, photo + "; --presenter-prompt TEXT draws one with its LoRA"
    if remote and likeness.base not in BASES:
        return None, (photo + f"; its LoRA was trained on a local folder ({likeness.base}), which a ComfyUI "
                      f"server cannot load: train it with --base {likeness.family} to draw with it there")
    line = (f"profile {profile.name}: the presenter is drawn with its LoRA on {likeness.family} "
            f"(\"{likeness.caption}, ...\")")
    wanted = getattr(preset, "image_model", None)
    if wanted and wanted != likeness.family:
        line += f", not the {preset.name} preset's {wanted}: the LoRA was trained on {likeness.family}"
    return likeness, line
