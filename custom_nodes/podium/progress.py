"""Progress for long stages, wherever the pack runs.

Inside ComfyUI it drives comfy.utils.ProgressBar (the editor's bars, and the server's hook
that raises on Interrupt); in Podium's in-process runner it calls the hook the runner set.
"""
from __future__ import annotations

from typing import Callable, Optional

_hook: Optional[Callable[[int, int], None]] = None


def set_hook(hook: Optional[Callable[[int, int], None]]) -> None:
    """Route progress to `hook(value, total)` (the in-process runner); None to stop."""
    global _hook
    _hook = hook


class Progress:
    """Counts work units of one stage: `update()` after each."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)
        self.value = 0
        self._comfy_bar = None
        if _hook is None:
            try:
                import comfy.utils  # only inside ComfyUI
                self._comfy_bar = comfy.utils.ProgressBar(self.total)
            except ImportError:
                pass

    def update(self, n: int = 1) -> None:
        self.value = min(self.value + n, self.total)
        if _hook is not None:
            _hook(self.value, self.total)
        elif self._comfy_bar is not None:
            self._comfy_bar.update_absolute(self.value, self.total)
