"""One progress view for a whole job: segments done, and what each instance is doing.

It is fed ComfyUI-style events (the in-process runner sends the same ones as a server's
websocket), tagged with the instance they come from.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class JobView:
    def __init__(self, graph: dict, segments: int, enabled: bool = True, sink=None):
        self.sink = sink  # also told every event (e.g. progress_json.JsonEvents)
        if sink is not None:
            sink.plan(graph, segments)
        self.titles = {k: v.get("_meta", {}).get("title", v["class_type"]) for k, v in graph.items()}
        self.stage_times: dict[str, float] = {}
        self._status: dict[str, str] = {}
        self._stage_start: dict[str, tuple[str, float]] = {}
        self.bar = tqdm(total=segments, desc="segments", unit="seg", file=sys.stderr,
                        dynamic_ncols=True, disable=None if enabled else True)

    def __call__(self, instance: str, event: str, data: dict) -> None:
        if self.sink is not None:
            self.sink(instance, event, data)
        if event in ("segment_done", "segment_cached"):
            self.bar.update(1)
            self._status[instance] = "cached" if event == "segment_cached" else "idle"
        elif event == "segment_start":
            self._status[instance] = f"segment {data['segment'] + 1}"
        elif event == "instance_gone":
            self._status[instance] = "gone"
            if data.get("retried"):  # said even with --quiet: the run goes on elsewhere
                tqdm.write(f"warning: {data.get('error') or instance}; segment "
                           f"{data['segment'] + 1} goes to another instance", file=sys.stderr)
        elif event == "executing":
            self._end_stage(instance)
            if data.get("node") is not None:
                node = str(data["node"])  # a node expanded at run time ("20.0.1.5") counts for its parent
                title = self.titles.get(node) or self.titles.get(node.split(".")[0], node)
                self._stage_start[instance] = (title, time.perf_counter())
                self._status[instance] = title
        elif event == "progress" and instance in self._stage_start:
            title = self._stage_start[instance][0]
            self._status[instance] = f"{title} {100 * data['value'] // max(data['max'], 1)}%"
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            self._end_stage(instance)
        else:
            return
        self.bar.set_postfix_str("  ".join(f"{k}: {v}" for k, v in self._status.items()), refresh=False)
        self.bar.refresh()

    def _end_stage(self, instance: str) -> None:
        if instance in self._stage_start:
            title, started = self._stage_start.pop(instance)
            self.stage_times[title] = self.stage_times.get(title, 0.0) + time.perf_counter() - started

    def close(self) -> None:
        self.bar.close()
