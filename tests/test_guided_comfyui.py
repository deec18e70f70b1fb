"""Guided mode inside a real ComfyUI: a graph may send its Ollama requests only to the hosts the
operator allows (PODIUM_OLLAMA_HOSTS; default Ollama on the server's own machine), and an
Ollama error body never reaches the graph's sender.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_guided_comfyui.py
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_ollama import SECRET_BODY, FakeOllama  # noqa: E402
from conftest import run_prompt  # noqa: E402
from test_comfyui_integration import REPO, comfy, pytestmark  # noqa: E402,F401

from podium.engines.ollama_hosts import HOSTS_ENV, NOT_ALLOWED  # noqa: E402
from orchestrator.graphs.workflow import bind, find_node, load_workflow  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def allowed():
    """The one Ollama the operator allows, set before ComfyUI starts (autouse: first)."""
    with FakeOllama() as fake:
        before = os.environ.get(HOSTS_ENV)
        os.environ[HOSTS_ENV] = fake.url
        try:
            yield fake
        finally:
            if before is None:
                os.environ.pop(HOSTS_ENV, None)
            else:
                os.environ[HOSTS_ENV] = before


def guided_graph(host: str, prefix: str) -> dict:
    """The stored guided graph, its nodes found by title (ids change when the graph is edited)."""
    return bind(load_workflow("guided"), {
        ("Script", "topic"): f"Plants ({prefix})", ("Script", "duration_s"): 10,  # not ComfyUI's cache
        ("Presenter", "width"): 160, ("Presenter", "height"): 90,
        ("Save video", "fps"): 12, ("Save video", "filename_prefix"): prefix,
        ("LLM", "host"): host, ("LLM", "timeout_s"): 30})


@pytest.mark.parametrize("host", ["{other}", "http://169.254.169.254/latest/meta-data",
                                  "127.0.0.1:8188", "http://localhost:11434"])
def test_a_host_the_operator_did_not_allow_is_refused_before_any_request(comfy, allowed, host):
    with FakeOllama() as other:
        graph = guided_graph(host.format(other=other.url), "podium/refused")
        answer = requests.post(comfy["url"] + "/prompt", json={"prompt": graph, "client_id": "t"})
        assert other.requests == []
    assert allowed.requests == []
    assert answer.status_code == 400
    errors = answer.json()["node_errors"][find_node(graph, "LLM")]["errors"]
    assert {e["type"] for e in errors} == {"custom_validation_failed"}
    # one neutral message, the same whatever the host (the input names are ComfyUI's prefix)
    assert {e["details"].split(" - ", 1)[1] for e in errors} == {NOT_ALLOWED}


def test_the_allowed_host_writes_the_script_and_the_video_is_made(comfy, allowed):
    graph = guided_graph(allowed.url, "podium/guided")
    history, messages = run_prompt(comfy, graph)
    assert history["status"]["status_str"] == "success", messages[-1]
    assert len(allowed.chats) == 1
    assert history["outputs"][find_node(graph, "Save video")]


def test_an_ollama_error_body_never_reaches_the_graphs_sender(comfy, allowed):
    allowed.plans = ["secret_500"]
    graph = guided_graph(allowed.url, "podium/secret")
    history, messages = run_prompt(comfy, graph)
    (error,) = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert error["node_id"] == find_node(graph, "Script")
    assert "failed running model 'llama3.2' (status 500)" in error["exception_message"]
    assert SECRET_BODY not in json.dumps(history) + json.dumps(messages)
