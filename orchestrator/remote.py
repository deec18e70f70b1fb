"""A ComfyUI server as a place to render segments (see dispatch.Instance).

Limits: a server silent for PODIUM_SERVER_SILENCE_S seconds (default 10; its websocket and
its /queue polled every PODIUM_SERVER_HEARTBEAT_S, default 2, are the heartbeat) is gone; a
segment that has not finished after `segment_timeout` seconds (default: scaled by the graph,
see segment_deadline) is given up there. Either way the segment goes to another instance.
"""
from __future__ import annotations

import copy
import os
import threading
import uuid
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import requests

from .comfy_client import ComfyClient, PromptTimeout, ServerGone
from .dispatch import InstanceGone, output_files
from .workflow import find_node

SEGMENT_BASE_S, PER_NODE_S, PER_CHARACTER_S = 600.0, 60.0, 10.0


def segment_deadline(graph: dict) -> float:
    """Seconds a segment may take on a server, unless the user says otherwise: generous (10 min,
    + 1 min per node, + 10 s per character of its text inputs: a slow GPU's video model takes
    minutes per second of speech), so only a prompt that will never end reaches it."""
    characters = sum(len(value) for node in graph.values()
                     for value in (node.get("inputs") or {}).values() if isinstance(value, str))
    return SEGMENT_BASE_S + PER_NODE_S * len(graph) + PER_CHARACTER_S * characters


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class ComfyInstance:
    """Uploads input files once per server, runs graphs, downloads what they produce."""

    in_process = False

    def __init__(self, url: str, timeout: float = 10.0, segment_timeout: Optional[float] = None):
        self.client = ComfyClient(url, timeout=timeout,
                                  gone_after=_env_seconds("PODIUM_SERVER_SILENCE_S", 10.0),
                                  heartbeat=_env_seconds("PODIUM_SERVER_HEARTBEAT_S", 2.0))
        parsed = urlparse(url)
        self.name = parsed.netloc or url
        self.segment_timeout = segment_timeout
        self._uploaded: dict[Path, str] = {}
        self._prompt_id: Optional[str] = None
        self._cancelled = False
        self._lock = threading.Lock()

    def produce(self, graph: dict, files: dict, workdir: Path, on_event) -> dict[str, list[tuple[Path, dict]]]:
        limit = self.segment_timeout or segment_deadline(graph)
        try:
            graph = copy.deepcopy(graph)
            for (title, input_name), path in files.items():
                path = Path(path)
                if path not in self._uploaded:
                    self._uploaded[path] = self.client.upload(path, subfolder="podium")
                graph[find_node(graph, title)]["inputs"][input_name] = self._uploaded[path]
            with self._lock:  # our own id: cancel() knows it while the POST is on its way
                if self._cancelled:  # the job stopped meanwhile: queue nothing more
                    raise InstanceGone(f"{self.name}: cancelled")
                prompt_id = self._prompt_id = str(uuid.uuid4())
            self.client.queue(graph, prompt_id=prompt_id)
            if self._cancelled:  # cancel() came while the server was taking it
                self.client.cancel(prompt_id)
            try:
                outputs = self.client.follow(prompt_id, on_event, timeout_s=limit)
            except PromptTimeout:
                self.client.cancel(prompt_id)  # it may still run there: stop it (best effort)
                raise
            finally:
                self._prompt_id = None
            return output_files(outputs, lambda item: self.client.download(item, workdir / item["filename"]))
        except PromptTimeout as err:
            raise InstanceGone(f"{self.name}: the segment did not finish within {limit:.0f} s "
                               f"(allow more with --segment-timeout SECONDS): {err}") from err
        except (ServerGone, requests.ConnectionError, requests.Timeout) as err:
            raise InstanceGone(f"{self.name}: {err}") from err

    def cancel(self) -> None:
        """Stop what runs here for us, and take nothing more (Ctrl-C, or the job failed)."""
        with self._lock:
            self._cancelled = True
            prompt_id = self._prompt_id
        if prompt_id is not None:
            self.client.cancel(prompt_id)

    def healthy(self) -> bool:
        return self.client.health()
