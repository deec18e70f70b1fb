"""profiling.py: each stage's wall time and peak memory, recorded even when the stage fails, and
the --report table."""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import pytest

from podium import profiling
from podium.profiling import StageReport, format_reports, reported_stage, stage

MB = 1024 * 1024


def test_stage_reports_time_and_peak_memory():
    kept: deque = deque()
    with stage("idle", into=kept) as idle:
        time.sleep(0.05)
    with stage("allocate", into=kept) as alloc:
        block = np.ones(50_000_000, np.float32)  # 200 MB, every page written
        time.sleep(0.1)
        del block
    assert list(kept) == [idle, alloc]
    assert all(isinstance(r, StageReport) and r.device == "cpu" for r in kept)
    assert idle.wall_s >= 0.05 and alloc.wall_s >= 0.1
    assert alloc.peak_bytes >= 150 * MB, alloc
    assert idle.peak_bytes < 50 * MB, idle
    table = format_reports(list(kept)).splitlines()
    assert table[0].split() == ["stage", "time", "peak", "device"]
    assert table[1].startswith("idle ") and table[2].startswith("allocate ")
    assert "MB" in table[2]
    assert len({line.index("cpu") for line in table[1:]}) == 1  # columns line up


def test_stage_report_is_recorded_when_the_stage_fails():
    kept: deque = deque()
    with pytest.raises(RuntimeError):
        with stage("broken", into=kept):
            raise RuntimeError("boom")
    assert [r.name for r in kept] == ["broken"]


def test_a_reported_node_function_lands_in_the_process_reports():
    @reported_stage("unit-test-stage")
    def work(x):
        return x * 2

    before = len(profiling.reports)
    assert work(21) == 42
    assert [r.name for r in list(profiling.reports)[before:]] == ["unit-test-stage"]
