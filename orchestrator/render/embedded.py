"""Run Podium's graphs in this process, with the node pack imported directly.

This is the default when no ComfyUI server is given, so `podium generate` works on a fresh
machine. The pack (and so torch, where a node needs it) is imported only here, lazily.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

from orchestrator.render import local

PACK_PARENT = Path(__file__).resolve().parents[2] / "custom_nodes"


def node_classes() -> dict:
    try:
        import podium
    except ImportError:
        sys.path.insert(0, str(PACK_PARENT))
        import podium
    return podium.NODE_CLASS_MAPPINGS


def run_graph(graph: dict, output_dir: Path,
              on_event: Optional[Callable[[str, dict], None]] = None) -> dict:
    """Execute `graph` in-process, outputs written under `output_dir`; returns the outputs'
    `ui` dicts by node id, as ComfyUI's /history does."""
    classes = node_classes()
    from podium import paths, progress

    paths.set_output_directory(output_dir)
    progress.set_hook(local.emit_progress)
    try:
        return local.run(graph, classes, on_event=on_event)
    finally:
        progress.set_hook(None)
        paths.set_output_directory(None)


def reset_stage_reports() -> None:
    from podium import profiling

    profiling.reports.clear()


def stage_table() -> str:
    """Each stage's total time and highest peak memory over the runs since the last reset."""
    from podium import profiling

    totals: dict[str, profiling.StageReport] = {}
    for report in profiling.reports:
        total = totals.setdefault(report.name, profiling.StageReport(report.name, device=report.device))
        total.wall_s += report.wall_s
        total.peak_bytes = max(total.peak_bytes, report.peak_bytes)
    return profiling.format_reports(list(totals.values()))


def object_info() -> dict:
    """/object_info as ComfyUI builds it from the pack's V1 nodes (to convert UI-format files
    when no server is at hand)."""
    from orchestrator.graphs.node_defs import pack_object_info

    return pack_object_info()
