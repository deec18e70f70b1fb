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

from .segments import SegmentJob, content_key
from .workflow import bind, find_node

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


def lecture_graph(graph: dict, layout: str, pip: Pip, size: tuple[int, int], hold_s: float) -> dict:
    """The preset's graph as a lecture (API format; the input is not changed)."""
    if layout not in LAYOUTS or layout == "full":
        raise UsageError(f"a deck is shown with --layout pip or slides, got '{layout}'")
    graph = copy.deepcopy(graph)
    script_id = find_node(graph, "Script")
    voice_id = find_node(graph, "Voice")
    graph[script_id] = {"class_type": "PodiumDeck", "_meta": {"title": DECK},
                        "inputs": {"deck": "", "width": size[0], "height": size[1], "notes": "",
                                   "pages": "", "hold_seconds": hold_s}}
    ids = [int(k) for k in graph if k.isdigit()]
    slides_id, layout_id = str(max(ids) + 1), str(max(ids) + 2)
    graph[slides_id] = {"class_type": "PodiumDeckSlides", "_meta": {"title": SLIDES},
                        "inputs": {"deck": [script_id, 1], "speech": [voice_id, 0],
                                   "width": size[0], "height": size[1]}}
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
