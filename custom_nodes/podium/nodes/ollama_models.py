"""The Ollama models the guided node can use, for the editor's model list: a route on ComfyUI's
server, GET /podium/ollama/models[?host=URL].

It asks only the hosts the operator allows a graph to use (ollama_hosts.allowed_hosts, the same
allow-list the guided node obeys), never a URL from the request: with ?host= the host must be on
that list (with "*", any host allowed, only this machine's Ollama is on it).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys

from ..engines import ollama_hosts
from ..errors import PodiumError

log = logging.getLogger("podium.ollama_models")
ROUTE = "/podium/ollama/models"
TIMEOUT_S = 3.0  # the editor waits for this list: a dead host must not hold it long


def hosts_to_ask(host: str = "") -> list[str]:
    """The base URLs to list models from: `host` if the operator allows it (one neutral
    PodiumError if not), else every allowed host. Where any host is allowed ("*"), only this
    machine's Ollama (and $OLLAMA_HOST): the route never asks a URL it was merely given."""
    allowed = ollama_hosts.allowed_hosts()
    if allowed is None:
        allowed = {ollama_hosts.normalize_host(h) for h in
                   (ollama_hosts.DEFAULT_HOST, os.environ.get("OLLAMA_HOST", "").strip())}
    if not host.strip():
        return sorted(allowed)
    url = ollama_hosts.check_host(host)
    if url not in allowed:
        raise PodiumError(ollama_hosts.NOT_ALLOWED)
    return [url]


def list_models(urls: list[str], timeout_s: float = TIMEOUT_S) -> dict:
    """{"models": the names every reachable host has, sorted, once each; "hosts": for each
    host "ok" or why not (a short reason, never the host's own answer body)}."""
    import ollama

    names, hosts = set(), {}
    for url in urls:
        try:
            listed = ollama.Client(host=url, timeout=timeout_s).list()
            names.update(m.model for m in listed.models if m.model)
            hosts[url] = "ok"
        except ollama.ResponseError as err:
            hosts[url] = f"answered {err.status_code}"
        except Exception as err:  # refused, timed out, not Ollama: the list just lacks it
            hosts[url] = f"unreachable ({type(err).__name__})"
    return {"models": sorted(names), "hosts": hosts}


def register_routes() -> bool:
    """Add the route to ComfyUI's server (inside ComfyUI, once); False where there is none."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or getattr(instance, "_podium_routes", False):
        return False
    from aiohttp import web

    @instance.routes.get(ROUTE)
    async def ollama_models(request):
        try:
            urls = hosts_to_ask(request.query.get("host", ""))
        except PodiumError as err:
            return web.json_response({"error": str(err), "models": []}, status=403)
        body = await asyncio.get_running_loop().run_in_executor(None, list_models, urls)
        return web.json_response(body)

    instance._podium_routes = True
    return True
