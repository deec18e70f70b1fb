"""Workflow files: load a saved graph and set its inputs by node title or class.

Inputs are bound by what a person sees in the editor (a node's title, or its class when the
title is not unique) and the input's name, never by node id: ids change when graphs are edited.
"""
from __future__ import annotations

import copy
from pathlib import Path

from podium.errors import UsageError
from podium.jsonio import JsonInputError, read_json

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"


class WorkflowError(UsageError):
    """A workflow file that cannot be used as asked; the message says how to fix it."""


def load_workflow(name_or_path: str | Path) -> dict:
    """An API-format graph from a file, or by name from the project's workflows/ folder."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = WORKFLOWS_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise WorkflowError(f"workflow not found: {path}")
    try:
        graph = read_json(path)  # a file only, bounded in size and depth
    except JsonInputError as err:
        raise WorkflowError(f"cannot read workflow {path}: it {err}") from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise WorkflowError(
            f"{path} is a UI-format workflow (as the editor saves it); export it with "
            "'Export (API)' in ComfyUI, or give --server so Podium can convert it"
        )
    if not isinstance(graph, dict) or not all(
        isinstance(n, dict) and "class_type" in n for n in graph.values()
    ):
        raise WorkflowError(f"{path} is not an API-format ComfyUI workflow")
    return graph


def find_node(graph: dict, target: str) -> str:
    """The id of the one node whose title, else class_type, is `target`."""
    for key in ("title", "class_type"):
        hits = [node_id for node_id, node in graph.items()
                if (node.get("_meta", {}).get("title") if key == "title" else node["class_type"]) == target]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise WorkflowError(f"{len(hits)} nodes are called {target!r}; give them distinct titles")
    titles = sorted({n.get("_meta", {}).get("title", n["class_type"]) for n in graph.values()})
    raise WorkflowError(f"no node titled {target!r} in the workflow; it has: {', '.join(titles)}")


def bind(graph: dict, values: dict[tuple[str, str], object]) -> dict:
    """A copy of `graph` with `{(node title or class, input name): value}` set."""
    graph = copy.deepcopy(graph)
    for (target, input_name), value in values.items():
        graph[find_node(graph, target)]["inputs"][input_name] = value
    return graph
