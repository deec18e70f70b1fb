"""`podium profile create`: portraits checked (one face each) and downscaled, the voice
sample checked, trimmed and transcribed, the consent recorded; all built in a temporary
folder and renamed into place (orchestrator/profiles/profile.py). Torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from orchestrator.profiles.profile import (
    FORMAT,
    MAX_SIDE,
    Profile,
    ProfileError,
    building,
    check_name,
    consent_record,
    load,
    publish,
    store,
    write_manifest,
)


def faces_in(rgb) -> int:
    """How many faces the pack's detector (YuNet when installed, else Haar) finds."""
    from podium.engines.faces import find_faces, installed_face_detector_model

    try:
        return len(find_faces(rgb, installed_face_detector_model()))
    except ValueError as err:
        raise ProfileError(str(err)) from None


def add_image(source: Path, dest: Path, say: Callable[[str], None]) -> Optional[str]:
    """The portrait at `source`, checked and saved as PNG at `dest`; a note when it was downscaled."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    from orchestrator.inputs import check_image_size

    if not source.is_file():
        raise ProfileError(f"image not found: {source}")
    check_image_size(source)  # a decompression bomb is refused from its header
    try:
        with Image.open(source) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ProfileError(f"image {source} cannot be read as a picture ({err}): give a PNG, JPEG or WebP") from None
    note = None
    if max(image.size) > MAX_SIDE:
        before = image.size
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)  # keeps the aspect
        note = f"{source.name} downscaled from {before[0]}x{before[1]} to {image.size[0]}x{image.size[1]}"
        say(f"note: {note}")
    count = faces_in(np.asarray(image))
    if count != 1:
        what = "no face" if not count else f"{count} faces"
        raise ProfileError(f"image {source} shows {what}: give a picture of one person, face to the camera")
    image.save(dest, "PNG")
    return note


def add_voice(source: Path, text: Optional[str], work: Path, say: Callable[[str], None]) -> dict:
    """The sample checked and trimmed into voice/sample.wav, its transcript in voice/transcript.txt."""
    from podium.engines.speech import write_wav

    from orchestrator.profiles import voice_sample

    source = Path(source).expanduser()
    if not source.is_file():
        raise ProfileError(f"voice sample not found: {source}")
    sample = voice_sample.read(source)
    (work / "voice").mkdir()
    write_wav(work / "voice" / "sample.wav", sample.samples, voice_sample.RATE)
    text = " ".join((text or "").split())
    if text:
        origin = "given"
    else:
        say("transcribing the voice sample ...")
        text, model = voice_sample.transcribe(work / "voice" / "sample.wav")
        origin = f"written by {model}: check it"
    (work / "voice" / "transcript.txt").write_text(text + "\n", encoding="utf-8")
    return {"sample": "voice/sample.wav", "transcript": "voice/transcript.txt", "transcript_source": origin,
            "seconds": round(sample.seconds, 3), "source_seconds": round(sample.source_s, 3),
            "start_seconds": round(sample.start_s, 3), "level_db": round(sample.level_db, 1),
            "source_name": source.name}


def create(name: str, images: list[str], consent: str, voice: Optional[str] = None,
           voice_text: Optional[str] = None, force: bool = False,
           say: Callable[[str], None] = print, account: Optional[str] = None) -> Profile:
    """Make profile `name`, whole or not at all (`account`: the service's user who sent it)."""
    check_name(name)
    record = consent_record(consent, account)
    if not images:
        raise ProfileError("a profile needs a portrait: --image FILE (repeat for more)")
    if (store() / name).exists() and not force:
        raise ProfileError(f"profile {name} already exists: pass --force to replace it, or choose another name")
    if voice_text and not voice:
        raise ProfileError("--voice-text goes with --voice SAMPLE: the words that sample says")
    if voice and not (voice_text or "").strip():
        from orchestrator.profiles.voice_sample import recogniser

        recogniser()  # without it and without the text: say so before any work
    with building() as work:
        (work / "images").mkdir()
        kept, notes = [], []
        for number, image in enumerate(images, 1):
            rel = f"images/{number:02d}.png"
            note = add_image(Path(image).expanduser(), work / rel, say)
            kept.append(rel)
            notes += [note] if note else []
        manifest = {"format": FORMAT, "name": name, "images": kept, "notes": notes,
                    "voice": add_voice(voice, voice_text, work, say) if voice else None,
                    "consent": record, "lora": None,  # lora/: the identity LoRA, when trained (later)
                    "licence": {"cloned_voice_commercial_use": False}, "flags": {}}
        write_manifest(work, manifest)
        publish(work, name, force)
    return load(name)
