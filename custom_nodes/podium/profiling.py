"""What each stage costs: wall time and peak memory, kept for the CLI's --report table and
logged to ComfyUI's console.

Separate from memory.py (which decides where models live): measuring never moves a model.
torch is looked up, never imported: the CPU draft path does not pay for it.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar

log = logging.getLogger("podium.profiling")
T = TypeVar("T")
SAMPLE_INTERVAL_S = 0.02

__all__ = ["StageReport", "stage", "reported_stage", "reports", "format_reports", "fmt_bytes"]


@dataclass
class StageReport:
    """Wall time and peak memory of one stage (CUDA: peak allocated; CPU: peak RSS growth)."""

    name: str
    wall_s: float = 0.0
    peak_bytes: int = 0
    device: str = "cpu"


# Every stage run in this process, oldest first; bounded: ComfyUI runs for days.
reports: "deque[StageReport]" = deque(maxlen=1000)


def _rss_bytes() -> Optional[int]:
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _cuda_ready() -> bool:
    """CUDA usable; asked only if something else already imported torch."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available()


class _PeakRss:
    """Samples RSS in a thread: a stage's peak is gone by the time the stage returns."""

    # Readable however far __enter__/__exit__ got: a Ctrl-C landing inside them must stay a
    # KeyboardInterrupt, not become an AttributeError in the stage's `finally`.
    start = peak = growth = 0

    def __enter__(self):
        self.start = self.peak = _rss_bytes() or 0  # 0 without psutil or /proc: growth unknown
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="podium-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, _rss_bytes() or 0)

    def __exit__(self, *exc):
        self._stop.set()
        try:
            self._thread.join()
        finally:
            self.peak = max(self.peak, _rss_bytes() or 0)
            self.growth = self.peak - self.start if self.start else 0


@contextmanager
def stage(name: str, into: Optional["deque[StageReport]"] = None) -> Iterator[StageReport]:
    """Time a stage and record its peak memory in `reports` (or `into`); the report is yielded
    and recorded even when the stage fails."""
    report, torch = StageReport(name), sys.modules.get("torch")
    if _cuda_ready() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rss = _PeakRss()
    try:
        with rss:
            yield report
    finally:
        report.wall_s = time.perf_counter() - start
        torch = sys.modules.get("torch")  # the stage may have imported it
        if _cuda_ready() and torch.cuda.is_initialized():
            report.peak_bytes = int(torch.cuda.max_memory_allocated())
            report.device = f"cuda:{torch.cuda.current_device()}"
        else:
            report.peak_bytes = max(0, int(rss.growth))
        (reports if into is None else into).append(report)


def reported_stage(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a node's function so each call is a stage: timed, peak memory measured, logged
    (ComfyUI's console) and kept in `reports` (the CLI's --report table)."""
    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with stage(name) as report:
                result = func(*args, **kwargs)
            log.info("stage %s: %.2f s, peak %s on %s", name, report.wall_s,
                     fmt_bytes(report.peak_bytes), report.device)
            return result
        return wrapper
    return decorate


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def format_reports(rows_of: "list[StageReport]") -> str:
    """A small aligned table: stage, time, peak memory, device."""
    rows = [("stage", "time", "peak", "device")]
    rows += [(r.name, f"{r.wall_s:.2f} s", fmt_bytes(r.peak_bytes), r.device) for r in rows_of]
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows)
