"""Deck nodes: a PPTX or PDF as the script (its speaker notes) and as the background slides."""
from ..engines.deck import (DeckError, DeckPlan, DeckSlides, deck_script, parse_pages, read_deck,
                            read_notes, render_pages)
from ..errors import PodiumError
from ..paths import resolve_input, scratch_directory
from ..profiling import reported_stage


class PodiumDeck:
    """A slide deck: each page's speaker notes (or a notes file's section) become its narration,
    a page without notes stays up for `hold_seconds` in silence. `pages` picks some pages (one
    segment of a longer video: "3", "2-4"); empty takes them all."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "deck": ("STRING", {"default": "", "tooltip": "A .pptx or .pdf in the input folder."}),
                "width": ("INT", {"default": 1280, "min": 64, "max": 4096, "step": 2}),
                "height": ("INT", {"default": 720, "min": 64, "max": 4096, "step": 2}),
            },
            "optional": {
                "notes": ("STRING", {"default": "", "tooltip": "A notes file (one section per page, '---' between); empty: the deck's speaker notes."}),
                "pages": ("STRING", {"default": "", "tooltip": "Pages to use, e.g. 3 or 2-4,7; empty: all."}),
                "hold_seconds": ("FLOAT", {"default": 4.0, "min": 0.5, "max": 60.0, "step": 0.5,
                                           "tooltip": "How long a page without notes stays up."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SCRIPT", "PODIUM_DECK")
    RETURN_NAMES = ("script", "deck")
    FUNCTION = "load"
    CATEGORY = "Podium/script"
    DESCRIPTION = "A PPTX/PDF deck: its notes as the script, its pages as slides."

    @classmethod
    def IS_CHANGED(cls, deck, width, height, notes="", pages="", hold_seconds=4.0):
        from ..files import sha256_file

        try:
            files = [resolve_input(deck, "deck")] + ([resolve_input(notes, "notes")] if notes else [])
            return sha256_file(*files) + f"|{width}x{height}|{pages}|{hold_seconds}"
        except (PodiumError, OSError):
            return float("nan")  # validation says what is wrong

    @reported_stage("deck")
    def load(self, deck, width, height, notes="", pages="", hold_seconds=4.0):
        if width % 2 or height % 2:
            raise PodiumError(f"width and height must be even for H.264, got {width}x{height}")
        found = read_deck(resolve_input(deck, "deck"))
        texts = read_notes(resolve_input(notes, "notes"), len(found.pages)) if notes else None
        if found.kind == "pdf" and texts is None and not any(p.notes for p in found.pages):
            raise DeckError(f"{found.path.name} is a PDF: its narration comes from a notes file "
                            "(one section per page, '---' between) or from guided mode")
        script, segment_pages = deck_script(found, parse_pages(pages, len(found.pages)), texts, hold_seconds)
        rendered = render_pages(found, width, height, scratch_directory("decks"))
        return (script, DeckPlan(rendered, segment_pages))


class PodiumDeckSlides:
    """The deck's pages as the background, each for exactly its narration's span."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"deck": ("PODIUM_DECK",), "speech": ("PODIUM_SPEECH",),
                             "width": ("INT", {"default": 1280, "min": 64, "max": 4096, "step": 2}),
                             "height": ("INT", {"default": 720, "min": 64, "max": 4096, "step": 2})}}

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "slides"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Deck pages timed to the narration."

    def slides(self, deck, speech, width, height):
        if len(speech.segment_bounds) != len(deck.segment_pages):
            raise PodiumError(f"the speech has {len(speech.segment_bounds)} segments but the deck "
                              f"plan {len(deck.segment_pages)}: connect the deck's own script to the voice")
        return (DeckSlides(deck, speech, width, height),)
