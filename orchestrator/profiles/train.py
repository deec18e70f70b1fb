"""`podium profile train NAME [--base sd15|sdxl] [--steps N]`: an identity LoRA learnt from the
profile's portraits and stored in it (lora/), so the presenter image is drawn as that person.

Training runs in this process (orchestrator/profiles/train_runner.py is the one bridge to the pack).
Checkpoints live beside the store (<data>/training/NAME), not in the profile, so the profile
is never half-changed: it gets its lora/ folder by the store's copy-then-rename, whole or not.
Ctrl-C keeps the last step; the same command again resumes there.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

BASES = ("sd15", "sdxl")
HELP = """Learns your likeness from the profile's portraits (5-30 pictures, one face each: add more with
`podium profile create NAME --image ... --force`). Each face is cropped and centred; every picture is
captioned "a photo of <token> person". A GPU is used when there is one (SD1.5, 500 steps: minutes);
on a CPU it takes hours. Ctrl-C stops it keeping the last step; run the same command to resume.
"""


def add_parser(actions) -> None:
    train = actions.add_parser("train", help="learn an identity LoRA from the profile's portraits",
                               description=HELP)
    train.add_argument("name", metavar="NAME")
    train.add_argument("--base", default="sd15",
                       help="the model it is learnt for: sd15, sdxl (their models.yaml ids) or a diffusers folder")
    train.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    train.add_argument("--rank", type=int, default=16, help="the LoRA's rank (default 16)")
    train.add_argument("--size", type=int, default=0,
                       help="side of the training pictures in pixels (default: the model's own, 512 / 1024)")
    train.add_argument("--token", default="sks", help="the word that names you in prompts (default sks)")


def base_folder(base: str) -> tuple[Path, dict]:
    """(the diffusers folder, what the manifest records of it: id and licence)."""
    from podium.errors import UsageError
    from podium.models import load_registry

    folder = Path(base).expanduser()
    if base not in BASES and folder.is_dir():
        return folder, {"base": str(folder.resolve()), "base_license": "unknown (a local folder)"}
    if base not in BASES:
        raise UsageError(f"--base must be {' or '.join(BASES)} or a diffusers folder, not {base!r}")
    registry = load_registry()
    entry = registry.get(base)
    return registry.resolve(base).parent, {"base": base, "base_license": entry.license,
                                           "base_commercial_use": entry.commercial_use}


def train(name: str, base: str = "sd15", steps: int = 500, rank: int = 16, token: str = "sks",
          size: int = 0, say=lambda line: print(line, file=sys.stderr)):
    """Train (or resume) the LoRA of profile `name` and store it in the profile."""
    from podium.errors import UsageError

    from orchestrator.profiles import profile as profiles
    from orchestrator.profiles.train_runner import train_identity_lora

    if steps < 1 or rank < 1 or not (size == 0 or 64 <= size <= 2048 and size % 64 == 0):
        raise UsageError(f"--steps and --rank must be at least 1 and --size a multiple of 64 from 64 to 2048 "
                         f"(got {steps}, {rank}, {size})")
    if not token.isalnum():
        raise UsageError(f"--token must be one word of letters or digits, not {token!r}")
    profile = profiles.load(name)
    folder, licence = base_folder(base)
    work = profiles.data_dir() / "training" / name
    out = work / "lora"
    images = [profile.folder / rel for rel in profile.manifest["images"]]
    info = train_identity_lora(folder, images, out, work, steps=steps, rank=rank, token=token,
                               size=size, say=say)
    return store_lora(name, out, {**info, **licence})


def store_lora(name: str, lora: Path, record: dict):
    """Copy the profile, put `lora` in as lora/, record it in the manifest, swap the copy in."""
    from orchestrator.profiles import profile as profiles

    profile = profiles.load(name)
    profiles.check_not_used(name, "change")
    with profiles.building() as work:
        shutil.copytree(profile.folder, work, dirs_exist_ok=True)
        shutil.rmtree(work / "lora", ignore_errors=True)
        shutil.copytree(lora, work / "lora")
        manifest = dict(profile.manifest, lora={"folder": "lora", **record})
        profiles.write_manifest(work, manifest)
        profiles.publish(work, name, force=True)
    shutil.rmtree(lora.parent, ignore_errors=True)  # the checkpoints, now that the profile holds it
    return profiles.load(name)
