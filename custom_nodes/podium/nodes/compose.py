"""Compose node: the presenter in a corner box over a background (slides, a deck, a scene)."""
import sys

from ..engines.compose import CORNERS, SHAPES, Pip, PipVisual


class PodiumCompose:
    """Picture-in-picture: the background fills the frame, the presenter sits in a corner box
    (moved to a free corner, or shrunk, where a slide has content under the asked one). Render
    the presenter at the box's size (`box` of this layout: height x size, square by default)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "background": ("PODIUM_VISUAL",),
                "presenter": ("PODIUM_VISUAL",),
                "position": (list(CORNERS), {"default": "top-right"}),
                "size": ("FLOAT", {"default": 0.25, "min": 0.05, "max": 0.6, "step": 0.01,
                                   "tooltip": "The box's height as a share of the frame's (Paper2Video: 1/6)."}),
                "shape": (list(SHAPES), {"default": "rounded"}),
            },
            "optional": {
                "border": ("INT", {"default": 0, "min": 0, "max": 20, "tooltip": "A light border, px."}),
                "margin": ("INT", {"default": 16, "min": 0, "max": 200, "tooltip": "Distance from the frame's edges, px."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "compose"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Presenter picture-in-picture over slides or a scene."

    def compose(self, background, presenter, position, size, shape, border=0, margin=16):
        say = lambda note: print(f"layout: {note}", file=sys.stderr)  # noqa: E731 - the run's log / terminal
        return (PipVisual(background, presenter, Pip(position, size, shape, border, margin), on_note=say),)
