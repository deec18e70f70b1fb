"""A job's slide deck and notes, read once at submission: a deck that cannot be rendered is
refused then (422, one line), not minutes later by the render, and the job knows its slides
(their count and titles) before any is drawn.

Reading is python-pptx / pypdfium2 (podium.engines.deck, what the render reads with): no
LibreOffice here, that runs in the render. A PPTX's zip is looked into first: python-pptx
unpacks it in memory, so one that would unpack to far more than it weighs is refused unread.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

from podium.engines.deck import DeckError, read_deck, read_notes

from orchestrator.service.schemas import RequestError

TITLE_CHARS = 80


def _said(err: DeckError, stored: Path, shown: str) -> str:
    """The reader's message with the server's file name replaced by the one the client knows."""
    return str(err).replace(str(stored), shown).replace(stored.name, shown)


def _shown(client_name: Optional[str], fallback: str) -> str:
    name = Path(client_name or "").name.strip()
    return f"'{name[:TITLE_CHARS]}'" if name and name.isprintable() else fallback


def _check_zip(path: Path, shown: str, unpacked_limit: int) -> None:
    """A PPTX is a zip that python-pptx unpacks in memory: one that is not a PowerPoint package,
    or that unpacks to more than `unpacked_limit` bytes (a zip bomb), is refused before."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise DeckError(f"{shown} cannot be opened as a PowerPoint deck: it is corrupt ({err}); "
                        "save it again from PowerPoint or LibreOffice") from None
    if "ppt/presentation.xml" not in {m.filename for m in members}:
        raise DeckError(f"{shown} is a zip but not a PowerPoint deck (no ppt/presentation.xml): "
                        "save it as .pptx or PDF")
    unpacked = sum(m.file_size for m in members)
    if unpacked > unpacked_limit:
        raise DeckError(f"{shown} unpacks to {unpacked / 1e6:.0f} MB, more than the {unpacked_limit / 1e6:g} MB "
                        "a deck may (compress its pictures, or split it)")


def check_deck(inputs: Path, stored: dict[str, str], names: dict[str, Optional[str]], mode: str,
               unpacked_limit: int) -> Optional[dict]:
    """The deck's summary ({"kind", "count", "titles"}) for the job's record, or None without a
    deck; a RequestError naming `deck` or `notes` for what cannot be used."""
    if "deck" not in stored:
        return None  # (notes without a deck: refused by JobRequest.check)
    path = inputs / stored["deck"]
    shown = _shown(names.get("deck"), "the deck")
    try:
        if path.suffix == ".pptx":
            _check_zip(path, shown, unpacked_limit)
        deck = read_deck(path)
    except DeckError as err:
        message = _said(err, path, shown)
        if Path(names.get("deck") or "").suffix.lower() == ".key":
            message = f"{shown} is a Keynote file: export it from Keynote as PowerPoint (.pptx) or PDF"
        raise RequestError("deck", message, 422) from None
    if "notes" in stored:
        notes = inputs / stored["notes"]
        try:
            read_notes(notes, len(deck.pages))
        except UnicodeDecodeError:
            raise RequestError("notes", "must be UTF-8 text (Markdown): save it as UTF-8", 422) from None
        except DeckError as err:
            raise RequestError("notes", _said(err, notes, _shown(names.get("notes"), "the notes")), 422) from None
    elif deck.kind == "pdf" and mode == "direct":
        raise RequestError("notes", f"{shown} is a PDF, whose pages carry no speaker notes: upload its "
                                    "narration as notes (one section per page, '---' between), or use mode "
                                    "guided to have it written", 422)
    titles = [" ".join(page.title.split())[:TITLE_CHARS] for page in deck.pages]
    return {"kind": deck.kind, "count": len(deck.pages), "titles": titles}
