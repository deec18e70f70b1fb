"""A ComfyUI server as a place to render segments (see dispatch.Instance)."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import requests

from podium.errors import one_line

from .comfy_client import ComfyClient, ComfyError, ServerGone
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
                graph[find_node(graph, title)]["inputs"][input_name] = self._upload(Path(path))
            self._prompt_id = self.client.queue(graph)
            outputs = self.client.follow(self._prompt_id, on_event)
            self._prompt_id = None
            return output_files(outputs, lambda item: self.client.download(item, workdir / item["filename"]))
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
            subfolder = f"podium/{_digest(path, *companions)}" if companions else "podium"
            for companion in companions:
                self.client.upload(companion, subfolder=subfolder, overwrite=True)
            self._uploaded[path] = self.client.upload(path, subfolder=subfolder, overwrite=bool(companions))
        return self._uploaded[path]

    def cancel(self) -> None:
        if self._prompt_id is not None:
            self.client.cancel(self._prompt_id)

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

def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
