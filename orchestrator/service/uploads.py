"""Uploaded files: checked by their bytes (not by the name or type the client claims), limited
in size, and stored inside the job's folder under a name the server chooses."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

from podium.files import publish, temp_path

from orchestrator.service.schemas import RequestError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Kind:
    field: str
    what: str
    accepted: str  # said when a file is refused
    status: int = 415  # a file whose bytes are not a type the field takes


UPLOADS = {
    "image": Kind("image", "portrait", "a PNG, JPEG or WebP picture"),
    "voice_ref": Kind("voice_ref", "voice reference", "WAV, FLAC, MP3, Ogg or M4A audio"),
    "deck": Kind("deck", "slide deck", "a PowerPoint (.pptx) or PDF file (export other formats, "
                                       "Keynote's too, to one of them)", 422),
    "notes": Kind("notes", "notes file", "UTF-8 text: one section per slide, '---' lines between", 422),
}


def sniff(field: str, head: bytes) -> Optional[str]:
    """The file's real type as a suffix, from its first bytes; None if not one `field` takes."""
    if field == "deck":
        if head.startswith(b"%PDF-"):
            return ".pdf"
        return ".pptx" if head.startswith(b"PK\x03\x04") else None  # a zip: opened before it is taken
    if field == "notes":
        return ".md" if b"\x00" not in head else None  # all of it is read as UTF-8 (decks.py)
    if field == "image":
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return ".png"
        if head.startswith(b"\xff\xd8\xff"):
            return ".jpg"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return ".webp"
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head[4:8] == b"ftyp":
        return ".m4a"
    return None


def store_upload(field: str, source: BinaryIO, inputs: Path, limit_bytes: int) -> str:
    """Copy an upload into `inputs` as `<field><suffix>`; the name it got. The client's file
    name is never used. Too big: 413; empty: 422; not a type the field takes: 415 (a deck or
    notes: 422), each naming the field."""
    kind = UPLOADS[field]
    head = source.read(16)
    if not head and kind.status == 422:
        raise RequestError(field, f"the {kind.what} is empty (0 bytes): send the file itself", 422)
    suffix = sniff(field, head)
    if suffix is None:
        raise RequestError(field, f"the {kind.what} must be {kind.accepted} (its content is not)", kind.status)
    target = inputs / f"{field}{suffix}"
    part = temp_path(target)
    size = len(head)
    try:
        with open(part, "wb") as out:
            out.write(head)
            for block in iter(lambda: source.read(CHUNK), b""):
                size += len(block)
                if size > limit_bytes:
                    raise RequestError(field, f"the {kind.what} is larger than the "
                                              f"{limit_bytes / 1e6:g} MB allowed", 413)
                out.write(block)
        publish(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target.name


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
