"""Machine-readable progress (`podium generate --progress-json`): one JSON object a line on
stdout, for a program that runs the CLI as a child (`podium serve`'s runner).

Events: {"event": "plan", "segments": N, "stages": [titles]} first; then "segment_start",
"segment_done", "segment_cached" ({"segment": i}); "stage" (a node of segment i started),
"stage_end" (with its "seconds"), "progress" ("value" of "max" within the stage);
"failover" (an instance vanished, the segment goes elsewhere); "result" at the end.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Optional, TextIO


class JsonEvents:
    """A JobView sink: ComfyUI-style events, tagged with their instance, as JSON lines."""

    def __init__(self, stream: Optional[TextIO] = None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()  # workers of several instances report at once
        self._segment: dict[str, Optional[int]] = {}
        self._stage: dict[str, tuple[str, float]] = {}
        self.titles: dict[str, str] = {}

    def write(self, event: str, **data) -> None:
        line = json.dumps({"event": event, "t": round(time.time(), 3), **data}, ensure_ascii=False)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the reader went away: rendering goes on
                pass

    def plan(self, graph: dict, segments: int) -> None:
        self.titles = {k: v.get("_meta", {}).get("title", v["class_type"]) for k, v in graph.items()}
        self.write("plan", segments=segments, stages=list(dict.fromkeys(self.titles.values())))

    def __call__(self, instance: str, event: str, data: dict) -> None:
        segment = data.get("segment", self._segment.get(instance))
        if event in ("segment_start", "segment_done", "segment_cached"):
            if event == "segment_start":
                self._segment[instance] = data["segment"]
            self.write(event, segment=data["segment"], instance=instance)
        elif event == "instance_gone":
            self._end_stage(instance)
            self.write("failover", segment=data.get("segment"), instance=instance,
                       error=data.get("error"), retried=bool(data.get("retried")))
        elif event == "executing":
            self._end_stage(instance)
            if data.get("node") is not None:
                title = self.titles.get(data["node"], data["node"])
                self._stage[instance] = (title, time.perf_counter())
                self.write("stage", segment=segment, stage=title, instance=instance)
        elif event == "progress" and instance in self._stage:
            self.write("progress", segment=segment, stage=self._stage[instance][0],
                       value=data.get("value"), max=data.get("max"))
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            self._end_stage(instance)

    def _end_stage(self, instance: str) -> None:
        if instance in self._stage:
            title, started = self._stage.pop(instance)
            self.write("stage_end", segment=self._segment.get(instance), stage=title,
                       instance=instance, seconds=round(time.perf_counter() - started, 4))
