"""One progress bar per stage, fed by ComfyUI-style events (local or from a server)."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class ProgressView:
    """Shows which node runs and how far it is; remembers each stage's wall time."""

    def __init__(self, graph: dict, enabled: bool = True):
        self.titles = {k: v.get("_meta", {}).get("title", v["class_type"]) for k, v in graph.items()}
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.stage_times: dict[str, float] = {}
        self._current: str | None = None
        self._started = 0.0

    def _finish_stage(self) -> None:
        if self._current is not None:
            self.stage_times[self.titles.get(self._current, self._current)] = time.perf_counter() - self._started
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._current = None

    def __call__(self, event: str, data: dict) -> None:
        if event == "executing":
            self._finish_stage()
            node = data.get("node")
            if node is not None:
                self._current, self._started = node, time.perf_counter()
                if self.enabled:
                    self.bar = tqdm(desc=f"{self.titles.get(node, node):<12}", total=None, unit="step",
                                    file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
        elif event == "progress" and self.bar is not None:
            self.bar.total = data["max"]
            self.bar.update(data["value"] - self.bar.n)  # tqdm throttles the redraws
        elif event in ("execution_error", "execution_interrupted", "execution_success"):
            self._finish_stage()

    def close(self) -> None:
        self._finish_stage()
