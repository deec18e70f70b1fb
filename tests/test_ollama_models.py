"""The editor's list of Ollama models (GET /podium/ollama/models on ComfyUI's server): the
models of the hosts the operator allows, asked over real HTTP (tests/fake_ollama.py), never a
host the request names that is not on the allow-list; and the torch line at pack load."""
from __future__ import annotations

import asyncio
import types

import pytest
from aiohttp import ClientSession, web

from fake_ollama import FakeOllama, closed_port
from podium.engines import ollama_hosts
from podium.nodes import ollama_models
from podium.torch_check import torch_warning


def serve_route(env: dict, queries: list[str]) -> list[tuple[int, dict]]:
    """Register the route on a stand-in PromptServer, serve it on loopback, GET each query."""
    async def main():
        server = types.SimpleNamespace(instance=types.SimpleNamespace(routes=web.RouteTableDef()))
        import sys

        sys.modules["server"] = types.SimpleNamespace(PromptServer=server)
        try:
            assert ollama_models.register_routes() and not ollama_models.register_routes()  # once
        finally:
            del sys.modules["server"]
        app = web.Application()
        app.add_routes(server.instance.routes)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        out = []
        try:
            async with ClientSession() as session:
                for query in queries:
                    async with session.get(f"http://127.0.0.1:{port}{ollama_models.ROUTE}{query}") as r:
                        out.append((r.status, await r.json()))
        finally:
            await runner.cleanup()
        return out

    return asyncio.run(main())


def test_the_route_lists_the_models_of_the_allowed_hosts_only(monkeypatch):
    with FakeOllama(models=("llama3.2:latest", "qwen3:8b")) as allowed, \
            FakeOllama(models=("secret-model:latest",)) as other:
        monkeypatch.setenv(ollama_hosts.HOSTS_ENV, f"{allowed.url},http://127.0.0.1:{closed_port()}")
        answers = serve_route({}, ["", f"?host={allowed.url}", f"?host={other.url}",
                                   "?host=http://169.254.169.254/latest"])
        assert not other.requests  # a host off the list is never asked, whatever the query says
    (ok, listed), (ok_one, one), (refused, body), (refused_meta, _) = answers
    assert ok == ok_one == 200 and listed["models"] == one["models"] == ["llama3.2:latest", "qwen3:8b"]
    assert listed["hosts"][allowed.url] == "ok"
    assert [v for k, v in listed["hosts"].items() if k != allowed.url][0].startswith("unreachable")
    assert refused == refused_meta == 403 and body["models"] == [] and "operator" in body["error"]
    assert other.url not in body["error"]


def test_with_any_host_allowed_the_route_still_asks_only_this_machine(monkeypatch):
    monkeypatch.setenv(ollama_hosts.HOSTS_ENV, "*")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert ollama_models.hosts_to_ask() == [ollama_hosts.normalize_host(ollama_hosts.DEFAULT_HOST)]
    with pytest.raises(Exception, match="operator"):
        ollama_models.hosts_to_ask("http://example.invalid:11434")


def test_the_settings_node_takes_any_typed_model_name():
    from podium.nodes.guided import PodiumOllamaSettings

    spec = PodiumOllamaSettings.INPUT_TYPES()["required"]["model"]
    assert spec[0] == "STRING"  # a combo would refuse names the list lacks; the editor's
    # list comes from the route, by the pack's web extension (web/podium.js)
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host="", model="my-own-finetune:q4") is True


@pytest.mark.parametrize("installed, warned", [("2.4.1+cu121", True), ("2.5.1", True), ("2.6.0", False),
                                               ("2.9.1+cpu", False), ("2.10.0.dev20260101", False)])
def test_an_old_torch_gets_one_line_at_load_time(installed, warned):
    line = torch_warning(installed)
    assert (line is not None) == warned
    if warned:
        assert "\n" not in line and installed in line and "2.6" in line
