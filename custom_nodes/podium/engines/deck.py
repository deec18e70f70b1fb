"""Slide decks in: a PPTX, a PDF or Markdown becomes pages (pictures at the video's size) and
per-page narration.

PPTX pages are drawn by LibreOffice headless (one start per deck: the whole deck goes to one PDF),
its speaker notes read with python-pptx; PDF pages are drawn with pypdfium2, whose text layer also
gives each page's words (for the LLM in guided mode, and to know where a page holds content).
Rendered pages are kept in a cache folder by the deck's content hash and size, so every segment of
a video (one graph run each) reuses them instead of starting LibreOffice again.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError
from ..files import publish, sha256_file

MAX_PAGES = 300  # a 500-page PDF is a book, not a talk: refused with this number in the message
MAX_DECK_BYTES = 512 * 1024 * 1024
NEXT_MARK = re.compile(r"\[next\]", re.IGNORECASE)
KINDS = {".pptx": "pptx", ".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".txt": "markdown"}


class DeckError(UsageError):
    """A deck that cannot be used: the message names the file and what to do."""


@dataclass(frozen=True)
class Page:
    """One slide: the words on it (text layer / shapes) and its speaker notes ('' when none)."""

    text: str = ""
    notes: str = ""
    title: str = ""


@dataclass
class Deck:
    path: Path
    kind: str  # "pptx" | "pdf"
    pages: list[Page] = field(default_factory=list)
    sha256: str = ""


def deck_kind(path: str | Path) -> str:
    kind = KINDS.get(Path(path).suffix.lower())
    if kind is None:
        raise DeckError(f"{Path(path).name}: a deck must be .pptx, .pdf or .md "
                        f"(got '{Path(path).suffix or 'no extension'}'); export other formats to PDF")
    return kind


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DeckError(f"deck not found or not a regular file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise DeckError(f"{path.name} is empty (0 bytes): export the deck again")
    if size > MAX_DECK_BYTES:
        raise DeckError(f"{path.name} is {size / 2**20:.0f} MB; decks up to "
                        f"{MAX_DECK_BYTES // 2**20} MB are read (compress its pictures)")


def read_deck(path: str | Path) -> Deck:
    """The deck's pages with their words and notes; a clear DeckError for what cannot be read
    (missing, empty, corrupt, password-protected, no pages, too many pages). A lecture's every
    page run reads the same deck: it is parsed once per file and content (its sha256)."""
    path = Path(path)
    kind = deck_kind(path)
    if kind == "markdown":
        raise DeckError(f"{path.name} is Markdown: give it as the script (--script), its "
                        "'## Heading' sections become slides")
    _check_file(path)
    digest = sha256_file(path)
    parsed = _parsed(digest, kind, path)
    return replace(parsed, path=path, pages=list(parsed.pages))


@functools.lru_cache(maxsize=8)
def _parsed(digest: str, kind: str, path: Path) -> Deck:
    """The deck of this file with this content (a deck saved again is read afresh)."""
    pages = _pptx_pages(path) if kind == "pptx" else _pdf_pages(path)
    if not pages:
        raise DeckError(f"{path.name} has no slides")
    if len(pages) > MAX_PAGES:
        raise DeckError(f"{path.name} has {len(pages)} pages; a deck may have at most {MAX_PAGES} "
                        "(split it into several videos)")
    return Deck(path, kind, pages, digest)


def _pptx_pages(path: Path) -> list[Page]:
    from pptx import Presentation

    try:
        presentation = Presentation(str(path))
    except Exception as err:  # not a zip, a broken zip or XML, an encrypted (OLE) file
        raise DeckError(f"{path.name} cannot be opened as a PowerPoint deck: it is corrupt or "
                        f"password-protected ({type(err).__name__}); save it again from PowerPoint "
                        "or LibreOffice without a password") from None
    pages = []
    for slide in presentation.slides:
        texts = [shape.text_frame.text.strip() for shape in slide.shapes
                 if shape.has_text_frame and shape.text_frame.text.strip()]
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        notes = ""
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
        pages.append(Page("\n".join(texts), notes, title or (texts[0].splitlines()[0] if texts else "")))
    return pages


def _open_pdf(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as err:
        reason = "password-protected" if "password" in str(err).lower() else "corrupt"
        raise DeckError(f"{path.name} cannot be opened: it is {reason} ({err}); "
                        "save it again without a password") from None


def _pdf_pages(path: Path) -> list[Page]:
    document = _open_pdf(path)
    try:
        pages = []
        for index in range(min(len(document), MAX_PAGES + 1)):
            text = document[index].get_textpage().get_text_range().replace("\r", "").strip()
            pages.append(Page(text, "", text.splitlines()[0].strip() if text else ""))
        return pages
    finally:
        document.close()


def read_notes(path: str | Path, pages: int) -> list[str]:
    """Narration per page from a notes file: one section per page, `---` lines between them."""
    path = Path(path)
    if not path.is_file():
        raise DeckError(f"notes file not found: {path}")
    sections = [s.strip() for s in re.split(r"^\s*---+\s*$", path.read_text(encoding="utf-8"),
                                            flags=re.MULTILINE)]
    if len(sections) > pages:
        raise DeckError(f"{path.name} has {len(sections)} sections but the deck has {pages} pages: "
                        "one section per page, '---' between them")
    return sections + [""] * (pages - len(sections))


# ---- rendering ----

def render_pages(deck: Deck, width: int, height: int, cache_dir: str | Path,
                 timeout_s: float = 120.0) -> list[Path]:
    """PNG files of every page at width x height (letterboxed on the page's own background),
    cached by the deck's hash and the size: the second call costs a directory listing."""
    folder = Path(cache_dir) / f"deck-{deck.sha256[:20]}-{width}x{height}"
    names = [folder / f"page-{i:04d}.png" for i in range(len(deck.pages))]
    if folder.is_dir() and all(n.is_file() for n in names):
        return names
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".deck-", dir=cache_dir))
    try:
        pdf = deck.path if deck.kind == "pdf" else _pptx_to_pdf(deck.path, work, timeout_s)
        document = _open_pdf(pdf)
        try:
            if len(document) != len(deck.pages):
                raise DeckError(f"{deck.path.name}: LibreOffice drew {len(document)} pages for "
                                f"{len(deck.pages)} slides (hidden slides?); unhide or delete them")
            for index in range(len(document)):
                image = _fit(_draw_page(document[index], width, height), width, height)
                image.save(work / names[index].name, optimize=False, compress_level=1)
        finally:
            document.close()
        if pdf != deck.path:
            pdf.unlink()
        try:
            publish(work, folder, replace=False)
        except FileExistsError:  # another segment's run rendered it first: theirs is the same
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return names


def _draw_page(page, width: int, height: int) -> Image.Image:
    w_pt, h_pt = page.get_size()
    scale = min(width / w_pt, height / h_pt)
    return page.render(scale=scale, draw_annots=True).to_pil().convert("RGB")


def _fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """The page whole and centred; the bars take the colour of its own corners."""
    if image.size == (width, height):
        return image
    pixels = np.asarray(image)
    corners = np.stack([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]])
    colour = tuple(int(c) for c in np.median(corners, axis=0))
    canvas = Image.new("RGB", (width, height), colour)
    fit = min(width / image.width, height / image.height, 1.0)
    if fit < 1.0:
        image = image.resize((max(round(image.width * fit), 1), max(round(image.height * fit), 1)),
                             Image.LANCZOS)
    canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
    return canvas


def _pptx_to_pdf(path: Path, work: Path, timeout_s: float) -> Path:
    """The whole deck to one PDF with LibreOffice headless, in a private profile (two runs at
    once must not share one), killed with its children past `timeout_s`."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        raise DeckError("rendering a PPTX needs LibreOffice: apt-get install libreoffice-impress "
                        "(scripts/setup.sh installs it), or export the deck to PDF")
    profile = work / "profile"
    command = [office, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
               "--convert-to", "pdf", "--outdir", str(work), str(path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "HOME": str(work)})
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise DeckError(f"LibreOffice did not finish {path.name} within {timeout_s:.0f} s; "
                        "export the deck to PDF yourself and give that") from None
    pdf = work / (path.stem + ".pdf")
    if process.returncode != 0 or not pdf.is_file():
        said = output.decode(errors="replace").strip().splitlines()
        raise DeckError(f"LibreOffice could not convert {path.name}"
                        f"{': ' + said[-1] if said else ''}; export it to PDF yourself and give that")
    return pdf


def load_page(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def narration(deck: Deck, notes: list[str] | None = None) -> list[list[str]]:
    """Each page's narration split at `[next]` marks (build steps): a list of steps per page,
    [] for a page with nothing to say (shown for the default hold time)."""
    texts = notes if notes is not None else [p.notes for p in deck.pages]
    out = []
    for text in texts:
        steps = [s.strip() for s in NEXT_MARK.split(text or "")]
        out.append([s for s in steps if s])
    return out


# ---- the deck as a script and a background ----

def parse_pages(spec: str, count: int) -> list[int]:
    """Page numbers as people write them ("", "3", "2-4,7"; 1-based) -> 0-based indices."""
    if not spec.strip():
        return list(range(count))
    chosen: list[int] = []
    for part in spec.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        try:
            a, b = int(first), int(last or first)
        except ValueError:
            raise DeckError(f"pages '{spec}': write page numbers like 3 or 2-4,7") from None
        if not 1 <= a <= b <= count:
            raise DeckError(f"pages '{spec}': the deck has pages 1 to {count}")
        chosen.extend(range(a - 1, b))
    return chosen


@dataclass
class DeckPlan:
    """Which page each segment of the deck's script shows (segments follow the pages in order;
    a page with `[next]` steps has one segment per step)."""

    pages: list[Path]  # rendered PNGs, every page of the deck
    segment_pages: list[int]


def deck_script(deck: Deck, chosen: list[int], notes: list[str] | None, hold_s: float):
    """A Script with one segment per narrated step of each chosen page (its sentences from the
    notes) and a silent segment of `hold_s` seconds for a page with nothing to say."""
    from .script import Script, Segment, split_sentences

    steps = narration(deck, notes)
    segments, pages = [], []
    for index in chosen:
        page = deck.pages[index]
        title = page.title or f"Slide {index + 1}"
        for step in steps[index] or [""]:
            sentences = split_sentences(step) if step else []
            segments.append(Segment(sentences=sentences, title=title, hold=0.0 if sentences else hold_s))
            pages.append(index)
    return Script(title=deck.pages[0].title or deck.path.stem, segments=segments), pages


class DeckSlides:
    """The deck as a visual: each segment's page, for exactly that segment's span of the speech."""

    def __init__(self, plan: DeckPlan, speech, width: int, height: int):
        self.plan, self.speech = plan, speech
        self.width, self.height = width, height
        self._starts = [start for start, _ in speech.segment_bounds]
        self._loaded: dict[int, np.ndarray] = {}

    def page_key(self, t: float) -> int:
        import bisect

        segment = max(bisect.bisect_right(self._starts, t) - 1, 0)
        return self.plan.segment_pages[min(segment, len(self.plan.segment_pages) - 1)]

    def render(self, t: float) -> np.ndarray:
        page = self.page_key(t)
        if page not in self._loaded:
            if len(self._loaded) >= 4:  # memory stays flat however long the deck
                self._loaded.pop(next(iter(self._loaded)))
            frame = load_page(self.plan.pages[page])
            if frame.shape[:2] != (self.height, self.width):
                frame = np.asarray(_fit(Image.fromarray(frame), self.width, self.height))
            self._loaded[page] = frame
        return self._loaded[page]
