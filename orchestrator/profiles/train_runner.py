"""The in-process bridge to the pack's LoRA trainer: the orchestrator stays torch-free at import
time, and the engine (torch, diffusers, peft) is imported only when a training runs here."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

from orchestrator.render import embedded


def train_identity_lora(base: Path, images: Sequence[Path], out: Path, work: Path, *, steps: int,
                        rank: int, token: str, size: int = 0, say: Callable[[str], None]) -> dict:
    """Face crops of `images`, then a LoRA trained (or resumed from `work`) into folder `out`;
    returns what lora.json records (token, caption, family, steps, ...)."""
    import json

    embedded.node_classes()  # puts the pack on the path when it is not installed
    from podium import progress
    from podium.engines.lora_images import face_crops
    from podium.engines.lora_train import INFO_FILE, SIZES, TrainConfig, train_lora
    from podium.engines.presenter_image import detect_family

    family = detect_family(base)
    config = TrainConfig(steps=steps, rank=rank, token=token, size=size)
    crops = face_crops(images, size or SIZES.get(family, 512), say=say)
    progress.set_hook(_bar if sys.stderr.isatty() else None)
    try:
        train_lora(base, crops, out, work, config, say)
    finally:
        progress.set_hook(None)
    return json.loads((out / INFO_FILE).read_text(encoding="utf-8"))


def _bar(value: float, total: float) -> None:
    """One line on a terminal, rewritten in place: `training: step 120/500 (24%)`."""
    end = "\n" if value >= total else ""
    print(f"\rtraining: step {int(value)}/{int(total)} ({100 * value / max(total, 1):.0f}%)", end=end,
          file=sys.stderr, flush=True)
