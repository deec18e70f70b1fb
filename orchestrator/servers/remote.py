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

from podium.errors import one_line
from podium.files import sha256_file

from orchestrator.servers.comfy_client import ComfyClient, ComfyError, PromptTimeout, ServerGone
from orchestrator.servers.dispatch import InstanceGone, output_files
from orchestrator.graphs.workflow import find_node

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
                graph[find_node(graph, title)]["inputs"][input_name] = self._upload(Path(path))
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
        except (ValueError, KeyError, TypeError, IndexError) as err:  # JSON of the wrong shape
            raise ComfyError(f"{self.name} answered in a way ComfyUI does not ({type(err).__name__}: "
                             f"{one_line(err, 120)}): is it a ComfyUI server, and a recent one?") from err

    def _upload(self, path: Path) -> str:
        """The server's name for a local file, uploaded once. A file that needs a companion beside
        it under its own name (a Piper voice's .onnx.json) goes with it into a folder named by
        their content, so neither is renamed and no one else's file is overwritten."""
        if path not in self._uploaded:
            companions = [path.with_name(path.name + ".json")] if path.suffix == ".onnx" else []
            companions = [c for c in companions if c.is_file()]
            subfolder = f"podium/{sha256_file(path, *companions)[:16]}" if companions else "podium"
            for companion in companions:
                self.client.upload(companion, subfolder=subfolder, overwrite=True)
            self._uploaded[path] = self.client.upload(path, subfolder=subfolder, overwrite=bool(companions))
        return self._uploaded[path]

    def cancel(self) -> None:
        """Stop what runs here for us, and take nothing more (Ctrl-C, or the job failed)."""
        with self._lock:
            self._cancelled = True
            prompt_id = self._prompt_id
        if prompt_id is not None:
            self.client.cancel(prompt_id)

    def healthy(self) -> bool:
        return self.client.health()

    def problem(self) -> Optional[str]:
        """None when a ComfyUI answers at the URL, else what is wrong, in a few words (never
        the body of what answered: it may be a whole web page)."""
        try:
            r = self.client.session.get(self.client.base_url + "/system_stats",
                                        timeout=min(self.client.timeout, 5.0))
        except requests.RequestException as err:
            return f"does not answer ({type(err).__name__})"
        try:
            stats = r.json() if r.status_code == 200 else None
        except ValueError:
            stats = None
        if not (isinstance(stats, dict) and isinstance(stats.get("system"), dict)
                and isinstance(stats.get("devices"), list)):
            kind = r.headers.get("Content-Type", "?").split(";")[0]
            return (f"answers, but is not a ComfyUI server (GET /system_stats gave HTTP "
                    f"{r.status_code} {kind})")
        return None
