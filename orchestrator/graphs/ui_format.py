"""UI-format workflows (what the ComfyUI editor saves) to API format, as the editor does it.

A port of the frontend's graphToPrompt (ComfyUI_frontend 1.27, executionUtil.ts and litegraph's
ExecutableNodeDTO), driven by the server's /object_info instead of live widgets:
- widget order: required, then optional inputs that have a widget (INT, FLOAT, STRING, BOOLEAN,
  COMBO in its V1 `[[options], {...}]` and V3 `["COMBO", {"options": [...]}]` shapes, and any
  input the file itself marks as a widget); `widgets_values` follows that order, with the
  unsent `control_after_generate` value after seed-like INTs (and COMBOs that ask for it, plus
  their filter string), and the upload button's value after the required widgets;
- a link into an input wins over the widget's value (a widget converted to an input);
- muted nodes (mode 2) are left out, with the links that came from them; bypassed nodes
  (mode 4) pass on their input of the matching type; Reroute passes its one input on;
  Note / MarkdownNote (and other frontend-only nodes) make no API node; PrimitiveNode gives
  its value to the widgets it feeds;
- each node's title goes to `_meta.title` (the class's display name when the node has none).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from podium.jsonio import JsonInputError, read_json

from orchestrator.graphs.workflow import WORKFLOWS_DIR, WorkflowError, load_workflow

__all__ = ["ui_to_api", "is_ui_format", "load_any_workflow", "widget_names"]

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize", "increment-wrap"}
UPLOAD_FLAGS = ("image_upload", "audio_upload", "video_upload", "animated_image_upload")
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # current ComfyUI; its widget's value: the chosen option's key
FRONTEND_ONLY = {"Reroute", "Note", "MarkdownNote", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4


def is_ui_format(data: Any) -> bool:
    return isinstance(data, dict) and "nodes" in data and "links" in data


def _spec(spec: Any) -> tuple[Any, dict]:
    spec = spec if isinstance(spec, (list, tuple)) else [spec]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0], opts


def widget_names(info: dict, marked: set[str] = frozenset()) -> list[tuple[str, Any, dict, int]]:
    """[(input name, type, options, values after it that are never sent)] in widgets_values
    order; a name of None is the upload button. `marked`: inputs the file shows as widgets."""
    slots, inputs = [], info.get("input") or {}
    for category in ("required", "optional"):
        for name, spec in (inputs.get(category) or {}).items():
            typ, opts = _spec(spec)
            is_combo = isinstance(typ, list) or typ in ("COMBO", DYNAMIC_COMBO)
            if not ((is_combo or typ in WIDGET_TYPES) and not opts.get("forceInput") or name in marked):
                continue
            control = opts.get("control_after_generate", typ == "INT" and name in ("seed", "noise_seed"))
            extra = (2 if is_combo else 1) if control and (typ == "INT" or is_combo) else 0
            slots.append((name, typ, opts, extra))
        if category == "required":
            for flag in UPLOAD_FLAGS:
                if any(_spec(s)[1].get(flag) for s in (inputs.get("required") or {}).values()):
                    slots.append((None, "UPLOAD", {}, 0))  # the upload button's value
                    break
    return slots


def _default(typ: Any, opts: dict) -> Any:
    if "default" in opts:
        return opts["default"]
    options = typ if isinstance(typ, list) else opts.get("options")
    if typ == DYNAMIC_COMBO and options:
        return options[0]["key"]
    if options or not isinstance(typ, str):
        return options[0] if options else None
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(typ)


def _widget_values(node: dict, info: dict) -> dict[str, Any]:
    marked = {i["name"] for i in node.get("inputs") or [] if i.get("widget")}
    values, out, i = node.get("widgets_values"), {}, 0
    for name, typ, opts, extra in widget_names(info, marked):
        if isinstance(values, dict):  # some packs save {name: value}
            value = values.get(name, _default(typ, opts))
        else:
            values = values or []
            value = values[i] if i < len(values) else _default(typ, opts)
            i += 1
            if extra and i < len(values) and values[i] in CONTROL_VALUES:
                i += extra  # control_after_generate (and a combo's filter): editor-only
        if name is not None:
            out[name] = {"__value__": value} if isinstance(value, list) else value
    return out


def _valid(a: Any, b: Any) -> bool:
    """litegraph's isValidConnection: equal, "*" or empty, or comma-separated lists that meet."""
    a, b = (0 if t in ("", "*") else t for t in (a, b))
    if not a or not b or a == b:
        return True
    a, b = str(a).lower(), str(b).lower()
    return bool(set(a.split(",")) & set(b.split(","))) if "," in a + b else a == b


class _Graph:
    def __init__(self, ui: dict):
        self.nodes = {str(n["id"]): n for n in ui["nodes"]}
        self.links = {}
        for link in ui.get("links") or []:
            if isinstance(link, dict):
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"]]
            self.links[link[0]] = (str(link[1]), int(link[2]))

    def resolve(self, link_id: Any, want: Any, seen: frozenset = frozenset()) -> tuple | None:
        """("link", node id, slot) | ("value", v) | None (the input is left unset)."""
        if link_id is None or link_id not in self.links or link_id in seen:
            return None
        origin_id, slot = self.links[link_id]
        node, seen = self.nodes.get(origin_id), seen | {link_id}
        if node is None:
            return None
        inputs = node.get("inputs") or []
        if node.get("mode") == BYPASSED:
            outputs = node.get("outputs") or []
            out_type = outputs[slot].get("type") if slot < len(outputs) else None
            if want in ("*", ""):
                index = slot if len(inputs) > slot else 0
            elif slot < len(inputs) and _valid(inputs[slot].get("type"), out_type) \
                    and _valid(inputs[slot].get("type"), want):
                index = slot
            else:
                index = next((k for k, i in enumerate(inputs) if i.get("type") == want),
                             next((k for k, i in enumerate(inputs) if _valid(i.get("type"), out_type)
                                   and _valid(i.get("type"), want)), None))
            if index is None or index >= len(inputs):
                return None
            return self.resolve(inputs[index].get("link"), inputs[index].get("type"), seen)
        if node["type"] == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if node["type"] in FRONTEND_ONLY:  # Reroute: same input index as the output
            return self.resolve(inputs[slot].get("link"), want, seen) if slot < len(inputs) else None
        return ("link", origin_id, slot)


def ui_to_api(ui_workflow: dict, object_info: dict) -> dict:
    """The API-format graph the editor would queue for this UI-format workflow."""
    if (ui_workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowError("this workflow has subgraphs; unpack them in the editor (or export "
                            "it with 'Export (API)') before running it with Podium")
    graph, api = _Graph(ui_workflow), {}
    for node_id, node in graph.nodes.items():
        cls = node.get("type")
        if cls in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = object_info.get(cls)
        if info is None:
            raise WorkflowError(f'node "{node.get("title") or cls}" (#{node_id}): no node class {cls!r} '
                                'here; install the node pack that provides it, or give --server to '
                                "convert with that server's nodes")
        inputs = _widget_values(node, info)
        for slot in node.get("inputs") or []:
            resolved = graph.resolve(slot.get("link"), slot.get("type"))
            if resolved is not None:
                value = resolved[1] if resolved[0] == "value" else [resolved[1], resolved[2]]
                inputs[slot["name"]] = {"__value__": value} if resolved[0] == "value" and \
                    isinstance(value, list) else value
        title = node.get("title") or info.get("display_name") or cls
        api[node_id] = {"inputs": inputs, "class_type": cls, "_meta": {"title": title}}
    for node in api.values():  # links from nodes left out go too, as in the editor
        for name, value in list(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in api:
                del node["inputs"][name]
    return api


def load_any_workflow(path: str | Path, object_info_provider: Callable[[], dict] | dict) -> dict:
    """An API-format graph from an API- or UI-format file, or a stored graph by name. A user's
    UI-format file is converted with /object_info (a dict, or a callable such as
    ComfyClient.object_info, only asked for then); the stored graphs (workflows/<name>) with
    the pack's own node definitions, the same everywhere."""
    p = Path(path)
    try:
        data = read_json(p) if p.is_file() else None
    except JsonInputError:  # load_workflow says what is wrong with it
        data = None
    if not is_ui_format(data) or p.resolve().parent == WORKFLOWS_DIR.resolve():
        return load_workflow(path)  # API format, or a stored graph; it reports errors
    info = object_info_provider() if callable(object_info_provider) else object_info_provider
    return load_workflow(p, info)
