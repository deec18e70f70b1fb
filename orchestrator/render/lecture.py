"""Lectures: a deck's pages as the background, its notes as the narration, the presenter (any
preset's) in a corner box over it.

Any preset's graph becomes a lecture graph by the same few edits, made here in API format: the
Script node becomes a Deck node (same title, so the Voice's link holds), Deck Slides draw the
pages for exactly their narration, and a Compose node puts what the preset showed full frame (the
portrait, the lip-synced face) in its box; the presenter's stages render at the box's size. With
no presenter (`slides`), the pages alone are the picture. One graph run a page: the page is the
unit that is cached and spread over servers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from podium.engines.compose import LAYOUTS, Pip
from podium.engines.deck import Deck, deck_script, read_deck, read_notes
from podium.engines.script import Script
from podium.errors import UsageError

from orchestrator.render.segments import SegmentJob, content_key
from orchestrator.graphs.workflow import bind, find_node

DECK, SLIDES, LAYOUT = "Script", "Deck slides", "Layout"  # node titles (the deck keeps Script's)
SIZED = ("Presenter", "Lip sync", "Upscale")  # stages that draw the presenter: at the box's size


@dataclass
class Lecture:
    deck: Deck
    script: Script
    segment_pages: list[int]  # the page each segment of `script` shows
    pages: list[int]  # the pages in order, each one graph run
    notes: Path | None


def read_lecture(deck_path: Path, notes_path: Path | None, hold_s: float) -> Lecture:
    """The deck, its narration (speaker notes, or the notes file) and the run per page."""
    deck = read_deck(deck_path)
    notes = read_notes(notes_path, len(deck.pages)) if notes_path else None
    if deck.kind == "pdf" and notes is None:
        raise UsageError(f"{deck_path.name} is a PDF: give its narration with --notes NOTES.md (one "
                         "section per page, '---' between) or write it with --mode guided")
    pages = list(range(len(deck.pages)))
    script, segment_pages = deck_script(deck, pages, notes, hold_s)
    return Lecture(deck, script, segment_pages, pages, notes_path)


def _visual_source(graph: dict) -> list:
    save = graph[find_node(graph, "Save video")]
    return save["inputs"]["visual"]


def _drop_unused(graph: dict) -> None:
    """Remove nodes nothing reads any more (the presenter chain of a `slides` lecture)."""
    while True:
        read = {v[0] for node in graph.values() for v in node["inputs"].values()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)}
        unused = [k for k, n in graph.items() if k not in read and n["class_type"] not in
                  ("PodiumSaveVideo", "PodiumSaveAudio", "PodiumSaveImage")]
        if not unused:
            return
        for key in unused:
            del graph[key]


def layout_graph(graph: dict, layout: str, pip: Pip, size: tuple[int, int], hold_s: float,
                 deck: bool) -> dict:
    """The preset's graph in this layout (API format; the input is not changed). With a deck
    the pages are the background; without one, the script's own slides (a Presenter node with
    no portrait draws them)."""
    if layout not in LAYOUTS:
        raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}, got '{layout}'")
    if layout == "full":
        if deck:
            raise UsageError("a deck is shown with --layout pip or slides, not full")
        return graph
    graph = copy.deepcopy(graph)
    script_id = find_node(graph, "Script")
    voice_id = find_node(graph, "Voice")
    ids = [int(k) for k in graph if k.isdigit()]
    slides_id, layout_id = str(max(ids) + 1), str(max(ids) + 2)
    if deck:
        graph[script_id] = {"class_type": "PodiumDeck", "_meta": {"title": DECK},
                            "inputs": {"deck": "", "width": size[0], "height": size[1], "notes": "",
                                       "pages": "", "hold_seconds": hold_s}}
        graph[slides_id] = {"class_type": "PodiumDeckSlides", "_meta": {"title": SLIDES},
                            "inputs": {"deck": [script_id, 1], "speech": [voice_id, 0],
                                       "width": size[0], "height": size[1]}}
    else:
        graph[slides_id] = {"class_type": "PodiumPresenter", "_meta": {"title": SLIDES},
                            "inputs": {"script": [script_id, 0], "speech": [voice_id, 0],
                                       "width": size[0], "height": size[1], "motion": 0.0,
                                       "portrait_path": ""}}
    save = graph[find_node(graph, "Save video")]
    if layout == "slides":
        save["inputs"]["visual"] = [slides_id, 0]
        _drop_unused(graph)
        return graph
    box = pip.box_size(*size)
    graph[layout_id] = {"class_type": "PodiumCompose", "_meta": {"title": LAYOUT},
                        "inputs": {"background": [slides_id, 0], "presenter": _visual_source(graph),
                                   "position": pip.position, "size": pip.size, "shape": pip.shape,
                                   "border": pip.border, "margin": pip.margin}}
    save["inputs"]["visual"] = [layout_id, 0]
    for node in graph.values():
        if node.get("_meta", {}).get("title") in SIZED and "width" in node["inputs"]:
            node["inputs"]["width"], node["inputs"]["height"] = box
    return graph


def lecture_graph(graph: dict, layout: str, pip: Pip, size: tuple[int, int], hold_s: float) -> dict:
    """The preset's graph as a deck lecture."""
    return layout_graph(graph, layout, pip, size, hold_s, deck=True)


def fit_bindings(graph: dict, values: dict, files: dict, layout: str, pip: Pip,
                 size: tuple[int, int]) -> tuple[dict, dict]:
    """The preset's bindings for the graph in its layout: none for nodes the layout removed,
    the box's size for the stages that draw the presenter."""
    titles = {n.get("_meta", {}).get("title") for n in graph.values()}
    values = {k: v for k, v in values.items() if k[0] in titles}
    files = {k: v for k, v in files.items() if k[0] in titles}
    if layout == "pip":
        box = pip.box_size(*size)
        for title in SIZED:
            if (title, "width") in values:
                values[(title, "width")], values[(title, "height")] = box
    return values, files


def page_script(talk: Lecture) -> Script:
    """The lecture's script with one segment a page (what one run renders): for the soundtrack,
    whose sections and cues are placed by run."""
    from podium.engines.script import Segment

    merged: list[Segment] = []
    for page in talk.pages:
        steps = [s for s, p in zip(talk.script.segments, talk.segment_pages) if p == page]
        merged.append(Segment(sentences=[x for s in steps for x in s.sentences], title=steps[0].title,
                              cues=[c for s in steps for c in s.cues]))
    return Script(title=talk.script.title, segments=merged, stage=talk.script.stage)


def plan_pages(graph: dict, lecture: Lecture, values: dict, files: dict) -> list[SegmentJob]:
    """One job a page: the Deck node picks its page (its `[next]` steps stay in one run)."""
    files = {**files, (DECK, "deck"): lecture.deck.path}
    if lecture.notes is not None:
        files[(DECK, "notes")] = lecture.notes
    jobs = []
    for index, page in enumerate(lecture.pages):
        bound = bind(graph, {**values, (DECK, "pages"): str(page + 1)})
        jobs.append(SegmentJob(index, bound, content_key(bound, files), files))
    return jobs


@dataclass
class Layout:
    """The request's layout, resolved once: its name, the box, and the deck read (when given)."""

    name: str
    pip: Pip
    size: tuple[int, int]
    hold: float
    talk: Lecture | None = None

    @classmethod
    def of(cls, request) -> "Layout":
        pip = Pip(request.pip_position, request.pip_size, request.pip_shape, request.pip_border,
                  request.pip_margin)
        talk = None
        if request.deck:
            notes = Path(request.notes).expanduser().absolute() if request.notes else None
            talk = read_lecture(Path(request.deck).expanduser().absolute(), notes, request.hold)
        return cls(request.chosen_layout(), pip, tuple(request.size), request.hold, talk)

    def shape(self, graph: dict) -> dict:
        """The graph in this layout (the presenter in its box, over the deck or the scene)."""
        if self.name == "full":
            return graph
        return layout_graph(graph, self.name, self.pip, self.size, self.hold, deck=self.talk is not None)

    def fit(self, graph: dict, values: dict, files: dict) -> tuple[dict, dict]:
        """A shaped graph's bindings in this layout: the presenter drawn at its box's size."""
        if self.name == "full":
            return values, files
        return fit_bindings(graph, values, files, self.name, self.pip, self.size)

    def planner(self, graph: dict, script: Script, values: dict, files: dict) -> list[SegmentJob]:
        """The runs: a page each for a deck, else a segment each."""
        if self.talk is None:
            from orchestrator.render.segments import plan

            return plan(graph, script, values, files)
        return plan_pages(graph, self.talk, values, files)


# ---- guided lectures: the LLM narrates the slides that have no notes ----

SLIDE_TEXT_CHARS = 600  # of a slide's own words in the prompt (and 200 of each neighbour's)


def _slide_topic(deck: Deck, index: int) -> str:
    """What one slide's narration is about: its words, with its neighbours' for context."""
    def words(i: int, limit: int) -> str:
        page = deck.pages[i]
        return " ".join((page.text or page.title or "(a picture, no text)").split())[:limit]

    parts = [f"narrate slide {index + 1} of {len(deck.pages)} of the lecture '{deck.path.stem}' "
             f"for a viewer who sees it; speak to what the slide shows. The slide says: {words(index, SLIDE_TEXT_CHARS)}"]
    if index > 0:
        parts.append(f"The slide before said: {words(index - 1, 200)}")
    if index + 1 < len(deck.pages):
        parts.append(f"The next slide says: {words(index + 1, 200)}")
    return ". ".join(parts)


def write_notes(request, target: Path, replace: bool) -> Path:
    """Narration for every slide without notes, written by the LLM (a PPTX's own notes are kept),
    saved as NAME.notes.md beside the video: the user can edit it and rerun with --notes."""
    from podium.engines.guided import write_script
    from podium.engines.ollama_chat import OllamaSettings
    from podium.files import atomic_write_text

    import sys

    deck = read_deck(Path(request.deck).expanduser().absolute())
    notes_path = target.with_suffix(".notes.md")
    settings = OllamaSettings(host=request.ollama_host, model=request.llm_model,
                              timeout_s=request.llm_timeout, cli=True)
    per_slide = max(request.duration / len(deck.pages), 6.0)
    sections = []
    for index, page in enumerate(deck.pages):
        if page.notes.strip():
            sections.append(page.notes.strip())
            continue
        print(f"writing the narration of slide {index + 1}/{len(deck.pages)} with {request.llm_model} ...",
              file=sys.stderr)
        script = write_script(_slide_topic(deck, index), settings, duration_s=per_slide,
                              language=request.language, audience=request.audience, tone=request.tone)
        sections.append(" ".join(segment.text for segment in script.segments))
    if notes_path.exists() and not replace:
        raise UsageError(f"{notes_path} exists: pass --force to replace it, or rerun with --notes "
                         f"{notes_path.name} to use it")
    atomic_write_text(notes_path, "\n\n---\n\n".join(sections) + "\n")
    print(f"notes: {notes_path} (edit them, then rerun with --notes {notes_path.name})", file=sys.stderr)
    return notes_path
