"""Prometheus metrics of the service (prometheus_client), served at /metrics.

Names (scripts/grafana/podium.json plots them):
  podium_jobs{state}                      jobs in the store by state (gauge, read at scrape)
  podium_queue_depth                      jobs waiting for a worker
  podium_jobs_running                     jobs a worker of this server is rendering
  podium_jobs_submitted_total             jobs accepted by POST /api/jobs
  podium_jobs_finished_total{state}       runs that ended done / failed / cancelled
  podium_job_duration_seconds             wall time of a job that ended done (histogram)
  podium_stage_duration_seconds{stage}    one node (stage) of one segment (histogram)
  podium_segments_total{how}              segments rendered or taken from the cache
  podium_failovers_total{server}          segments moved off a server that vanished
  podium_comfyui_up{server}               1 when the server's /system_stats answers
  podium_comfyui_vram_total_bytes{server,device}, podium_comfyui_vram_free_bytes{server,device}
                                          GPU memory per ComfyUI server, from /system_stats
"""
from __future__ import annotations

import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlparse

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
STATS_TIMEOUT_S = 2.0
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXTRA_LABELS = 32  # label values per label beyond the known ones that get a series
OTHER = "other"  # every stage name past those


class _Live:
    """Gauges read when Prometheus scrapes: the store's counts, the queue, the servers."""

    def __init__(self, counts: Callable[[], dict], depth: Callable[[], int],
                 running: Callable[[], int], servers: list[str]):
        self.counts, self.depth, self.running, self.servers = counts, depth, running, servers

    def collect(self) -> Iterable:
        jobs = GaugeMetricFamily("podium_jobs", "Jobs in the store by state", labels=["state"])
        for state, n in self.counts().items():
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily("podium_queue_depth", "Jobs waiting for a worker", value=self.depth())
        yield GaugeMetricFamily("podium_jobs_running", "Jobs this server's workers are rendering",
                                value=self.running())
        up = GaugeMetricFamily("podium_comfyui_up", "1 when the ComfyUI server's /system_stats answers",
                               labels=["server"])
        total = GaugeMetricFamily("podium_comfyui_vram_total_bytes", "GPU memory of a ComfyUI server's device",
                                  labels=["server", "device"])
        free = GaugeMetricFamily("podium_comfyui_vram_free_bytes", "Free GPU memory of a ComfyUI server's device",
                                 labels=["server", "device"])
        if self.servers:
            with ThreadPoolExecutor(max_workers=min(len(self.servers), 8)) as pool:
                answers = list(pool.map(system_stats, self.servers))
            for url, stats in zip(self.servers, answers):
                up.add_metric([url], 1 if stats is not None else 0)
                for device in (stats or {}).get("devices", []):
                    name = str(device.get("name", device.get("index", "?")))
                    if isinstance(device.get("vram_total"), (int, float)):
                        total.add_metric([url, name], device["vram_total"])
                    if isinstance(device.get("vram_free"), (int, float)):
                        free.add_metric([url, name], device["vram_free"])
        yield up
        yield total
        yield free


def system_stats(url: str) -> dict | None:
    """A ComfyUI server's /system_stats, or None when it does not answer as ComfyUI does."""
    try:
        answer = requests.get(url.rstrip("/") + "/system_stats", timeout=STATS_TIMEOUT_S)
        stats = answer.json() if answer.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None
    return stats if isinstance(stats, dict) and isinstance(stats.get("devices"), list) else None


class Metrics:
    """One registry per server (tests start several)."""

    def __init__(self, counts: Callable[[], dict], depth: Callable[[], int],
                 running: Callable[[], int], servers: list[str]):
        self.registry = CollectorRegistry()
        self.servers = servers
        self.registry.register(_Live(counts, depth, running, servers))
        self.submitted = Counter("podium_jobs_submitted", "Jobs accepted by POST /api/jobs",
                                 registry=self.registry)
        self.finished = Counter("podium_jobs_finished", "Job runs that ended, by how",
                                ["state"], registry=self.registry)
        self.job_seconds = Histogram("podium_job_duration_seconds", "Wall time of a job that ended done",
                                     buckets=JOB_BUCKETS, registry=self.registry)
        self.stage_seconds = Histogram("podium_stage_duration_seconds", "One stage (node) of one segment",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.segments = Counter("podium_segments", "Segments by how they were made (rendered, cached)",
                                ["how"], registry=self.registry)
        self.failovers = Counter("podium_failovers", "Segments moved off a ComfyUI server that vanished",
                                 ["server"], registry=self.registry)
        for state in ("done", "failed", "cancelled"):
            self.finished.labels(state)  # every series exists from the start (rate() needs it)
        for how in ("rendered", "cached"):
            self.segments.labels(how)
        self._extra: dict[str, set[str]] = {"stage": set(), "server": set()}
        self._labels_lock = threading.Lock()

    def _bounded(self, kind: str, name: str, known) -> str:
        """A label value from a bounded set: the known ones (the shipped workflows' node titles,
        the configured servers), the first EXTRA_LABELS others (a --config workflow's stages, the
        workers' servers), then "other": a name a worker sends must not make a series for ever."""
        if name in known:
            return name
        with self._labels_lock:
            extra = self._extra[kind]
            if name in extra:
                return name
            if len(extra) < EXTRA_LABELS and len(name) <= 100:
                extra.add(name)
                return name
        return OTHER

    def observe(self, job_id: str, event: dict) -> None:
        """A Runner event (see orchestrator/render/progress_json.py)."""
        kind = event.get("event")
        if kind == "stage_end" and isinstance(event.get("seconds"), (int, float)):
            stage = self._bounded("stage", str(event.get("stage")), known_stages())
            self.stage_seconds.labels(stage).observe(event["seconds"])
        elif kind == "segment_done":
            self.segments.labels("rendered").inc()
        elif kind == "segment_cached":
            self.segments.labels("cached").inc()
        elif kind == "failover":
            server = self._bounded("server", self._server_url(str(event.get("instance"))), self.servers)
            self.failovers.labels(server).inc()

    def _server_url(self, instance: str) -> str:
        """The URL a server was given as (what the other server metrics say), from the
        instance name the renderer uses (host:port)."""
        for url in self.servers:
            if urlparse(url).netloc == instance:
                return url
        return instance

    def job_finished(self, state: str, seconds: float | None) -> None:
        if state in ("done", "failed", "cancelled"):
            self.finished.labels(state).inc()
        if state == "done" and seconds is not None:
            self.job_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@functools.lru_cache(maxsize=1)
def known_stages() -> frozenset[str]:
    """The node titles of the shipped workflows: the stages a render reports."""
    titles = set()
    for path in WORKFLOWS.glob("*.json"):
        try:
            graph = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(graph, dict):
            titles.update(str(node.get("_meta", {}).get("title")) for node in graph.values()
                          if isinstance(node, dict) and node.get("_meta", {}).get("title"))
    return frozenset(titles)
