"""A ComfyUI server as a place to render segments (see dispatch.Instance)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import requests

from .comfy_client import ComfyClient, ServerGone
from .dispatch import InstanceGone, output_files
from .workflow import find_node


class ComfyInstance:
    """Uploads input files once per server, runs graphs, downloads what they produce."""

    in_process = False

    def __init__(self, url: str, timeout: float = 10.0):
        self.client = ComfyClient(url, timeout=timeout)
        parsed = urlparse(url)
        self.name = parsed.netloc or url
        self._uploaded: dict[Path, str] = {}
        self._prompt_id: Optional[str] = None

    def produce(self, graph: dict, files: dict, workdir: Path, on_event) -> dict[str, list[tuple[Path, dict]]]:
        try:
            graph = copy.deepcopy(graph)
            for (title, input_name), path in files.items():
                path = Path(path)
                if path not in self._uploaded:
                    self._uploaded[path] = self.client.upload(path, subfolder="podium")
                graph[find_node(graph, title)]["inputs"][input_name] = self._uploaded[path]
            self._prompt_id = self.client.queue(graph)
            outputs = self.client.follow(self._prompt_id, on_event)
            self._prompt_id = None
            return output_files(outputs, lambda item: self.client.download(item, workdir / item["filename"]))
        except (ServerGone, requests.ConnectionError, requests.Timeout) as err:
            raise InstanceGone(f"{self.name}: {err}") from err

    def cancel(self) -> None:
        if self._prompt_id is not None:
            self.client.cancel(self._prompt_id)

    def healthy(self) -> bool:
        return self.client.health()
