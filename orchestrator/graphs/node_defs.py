"""Node definitions (what ComfyUI's /object_info says) without a server, to convert the stored
UI-format graphs to API format in this process.

Podium's own nodes come from the pack itself (INPUT_TYPES of NODE_CLASS_MAPPINGS; importing the
pack's node modules does not import torch), so a graph that no longer matches the nodes fails to
convert. ComfyUI core's nodes come from core_nodes.json, recorded from ComfyUI's /object_info
(0.3.64; WanInfiniteTalkToVideo from 0.38) for the classes the stored graphs use.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CORE_NODES = Path(__file__).resolve().parent / "core_nodes.json"


def pack_object_info() -> dict:
    """/object_info as ComfyUI builds it from the pack's V1 nodes."""
    from orchestrator.render.embedded import node_classes

    classes = node_classes()
    import podium

    info = {}
    for name, cls in classes.items():
        inputs = json.loads(json.dumps(cls.INPUT_TYPES()))
        outputs = list(cls.RETURN_TYPES)
        info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                      "output": outputs, "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs),
                      "output_node": getattr(cls, "OUTPUT_NODE", False), "name": name,
                      "display_name": podium.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)}
    return info


def core_object_info() -> dict:
    data = json.loads(CORE_NODES.read_text(encoding="utf-8"))
    return {name: info for name, info in data.items() if not name.startswith("_")}


@lru_cache(maxsize=1)
def stored_object_info() -> dict:
    """What converts the stored graphs: core's recorded nodes, then the pack's own."""
    return {**core_object_info(), **pack_object_info()}
