"""Workflow files: load a saved graph and set its inputs by node title or class.

Inputs are bound by what a person sees in the editor (a node's title, or its class when the
title is not unique) and the input's name, never by node id: ids change when graphs are edited.
"""
from __future__ import annotations

import copy
from pathlib import Path

from podium.errors import UsageError
from podium.jsonio import JsonInputError, read_json


class WorkflowError(UsageError):
    """A workflow file that cannot be used as asked; the message says how to fix it."""


def _stored_dir() -> Path:
    """workflows/ beside the orchestrator (a checkout), else the copy installed with the pack."""
    if (REPO_WORKFLOWS / "presets.yaml").is_file():
        return REPO_WORKFLOWS
    import importlib.util

    spec = importlib.util.find_spec("podium")
    for where in (spec.submodule_search_locations or []) if spec else []:
        if (Path(where) / "example_workflows" / "presets.yaml").is_file():
            return Path(where) / "example_workflows"
    return REPO_WORKFLOWS


REPO_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
WORKFLOWS_DIR = _stored_dir()


def link_templates(pack_dir: Path | None = None) -> Path | None:
    """Link workflows/ as <pack>/example_workflows, where ComfyUI lists a pack's templates when
    it runs with `--base-directory <repo>` (the pack is then custom_nodes/podium). Made when
    `podium comfy up` starts, never tracked: a pack under a ComfyUI custom-node policy must hold
    no symlinks, and a clone needs none (ComfyUI finds the clone's own workflows/)."""
    link = Path(pack_dir or REPO_WORKFLOWS.parent / "custom_nodes" / "podium") / "example_workflows"
    if link.is_symlink() or link.exists():
        return link if link.resolve() == WORKFLOWS_DIR.resolve() else None
    try:
        link.symlink_to(WORKFLOWS_DIR, target_is_directory=True)
    except OSError:  # no symlinks here (Windows without the privilege): the templates go unlisted
        return None
    return link


def read_graph(name_or_path: str | Path) -> tuple[Path, object]:
    """(path, parsed JSON) of a file, or of a name in workflows/."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = WORKFLOWS_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise WorkflowError(f"workflow not found: {path}")
    try:
        return path, read_json(path)  # a file only, bounded in size and depth
    except JsonInputError as err:
        raise WorkflowError(f"cannot read workflow {path}: it {err}") from None


def load_workflow(name_or_path: str | Path, object_info: dict | None = None) -> dict:
    """An API-format graph from a file, or by name from workflows/ (stored in the editor's
    format). A UI-format file is converted with `object_info` (a server's), else with the
    pack's own node definitions and core's recorded ones (orchestrator.graphs.node_defs)."""
    path, graph = read_graph(name_or_path)
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        from orchestrator.graphs.node_defs import stored_object_info
        from orchestrator.graphs.ui_format import ui_to_api

        try:
            return ui_to_api(graph, object_info if object_info is not None else stored_object_info())
        except WorkflowError as err:
            raise WorkflowError(f"{path}: {err}") from None
    if not isinstance(graph, dict) or not graph or not all(
        isinstance(n, dict) and "class_type" in n for n in graph.values()
    ):
        raise WorkflowError(f"{path} is not a ComfyUI workflow (neither the editor's format nor API format)")
    return graph


def has_node(graph: dict, title: str) -> bool:
    """Whether a node of the graph has this title."""
    return any(n.get("_meta", {}).get("title") == title for n in graph.values())


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
