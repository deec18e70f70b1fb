"""Turn a ComfyUI POST /prompt error body into a message a person can act on.

The body is what ComfyUI 0.3.64 answers with status 400 (``{"error": {...}, "node_errors":
{...}}``) or, for a partly valid graph, the ``node_errors`` of its 200 answer. The in-process
runner (orchestrator.render.local) builds the same bodies, so this one formatter serves both.
Stdlib only; no imports beyond it.
"""
from __future__ import annotations

__all__ = ["describe_prompt_error", "node_label"]


def node_label(node_id: str, prompt: dict | None = None, class_type: str | None = None) -> str:
    """`node "Title" (#id, ClassType)`; the title is _meta.title, else the class type."""
    node = (prompt or {}).get(node_id)
    node = node if isinstance(node, dict) else {}
    class_type = node.get("class_type") or class_type or "?"
    meta = node.get("_meta")
    title = (meta.get("title") if isinstance(meta, dict) else None) or class_type
    return f'node "{title}" (#{node_id}, {class_type})'


def _input_type(err: dict) -> str:
    config = (err.get("extra_info") or {}).get("input_config")
    if isinstance(config, (list, tuple)) and config:
        return str(config[0])
    return "the declared"


def _missing_link(node_id: str, prompt: dict | None, details: str) -> str | None:
    """For a KeyError during validation: the input that links to a node not in the graph."""
    inputs = ((prompt or {}).get(node_id) or {}).get("inputs") or {}
    for name, value in inputs.items():
        if isinstance(value, list) and len(value) == 2 and value[0] not in prompt \
                and str(KeyError(value[0])) == details:
            return (f'input "{name}": links to node #{value[0]}, which is not in the graph; '
                    f'reconnect the input or add the node')
    return None


def _describe(err: dict, node_id: str, prompt: dict | None) -> str:
    """One error of one node, without the node label."""
    typ = err.get("type")
    msg = err.get("message", "")
    details = str(err.get("details", ""))
    extra = err.get("extra_info") or {}
    name = extra.get("input_name")
    where = f'input "{name}": ' if name is not None else ""
    value = extra.get("received_value")
    if typ == "required_input_missing":
        return f"{where}{msg}; connect a link to it or give it a value"
    if typ == "bad_linked_input":
        return f"{where}{msg}; got {value!r}"
    if typ == "return_type_mismatch":
        link = extra.get("linked_node") or ["?", "?"]
        want = _input_type(err)
        return (f"{where}{msg}: output {link[1]} of node #{link[0]} gives "
                f"{extra.get('received_type')} but the input takes {want}; "
                f"connect an output of type {want}")
    if typ == "invalid_input_type":
        return (f"{where}{msg}: {value!r} ({extra.get('exception_message', details)}); "
                f"give a {_input_type(err)} value")
    if typ == "value_smaller_than_min":
        limit = ((extra.get("input_config") or [None, {}])[1] or {}).get("min", "the minimum")
        return f"{where}{msg}; use a value of at least {limit}"
    if typ == "value_bigger_than_max":
        limit = ((extra.get("input_config") or [None, {}])[1] or {}).get("max", "the maximum")
        return f"{where}{msg}; use a value of at most {limit}"
    if typ == "value_not_in_list":
        options = details.split(" not in ", 1)[1] if " not in " in details else "the list"
        return f"{where}{msg}: {value!r} is not one of {options}; pick one of those"
    if typ == "custom_validation_failed":
        reason = details.split(" - ", 1)[1] if " - " in details else "the node rejected it"
        return f"{where}{msg}: {reason}"
    if typ == "exception_during_validation":
        if extra.get("exception_type") == "KeyError":
            hint = _missing_link(node_id, prompt, details)
            if hint:
                return hint
        return f"{msg}: {extra.get('exception_type', 'Exception')}: {details}"
    if typ == "exception_during_inner_validation":
        link = extra.get("linked_node") or ["?", "?"]
        return (f"{msg} (reached through input \"{name}\" of a node linked to #{link[0]}): "
                f"{extra.get('exception_type', 'Exception')}: {details}")
    return f"{where}{msg}" + (f": {details}" if details else "")


_TOP_HINTS = {
    "prompt_no_outputs": "the graph needs at least one output node (OUTPUT_NODE, e.g. a save node)",
    "no_prompt": "the request carried no graph",
}


def describe_prompt_error(body: dict, prompt: dict | None = None) -> str:
    """A human message for a ComfyUI /prompt error body, one line per problem.

    Each node problem reads `node "Title" (#id, Class): input "name": what is wrong; what to do`.
    `prompt`, when given, supplies node titles (_meta.title) and lets link errors be explained.
    """
    body = body or {}
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    lines = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        label = node_label(node_id, prompt, entry.get("class_type"))
        for err in entry.get("errors") or []:
            lines.append(f"{label}: {_describe(err, node_id, prompt)}")
    if lines:
        return "\n".join(lines)
    if error is None:
        return str(body.get("error") or "ComfyUI rejected the prompt")
    typ, msg, details = error.get("type"), error.get("message", ""), error.get("details", "")
    if typ == "invalid_prompt" and str(details).startswith("Node ID '#"):
        node_id = str(details)[len("Node ID '#"):-1]
        node = (prompt or {}).get(node_id) or {}
        what = ("add a class_type" if "class_type property" in msg else
                "install the node pack that provides it, or fix the class_type")
        label = node_label(node_id, prompt, node.get("class_type"))
        return f"{label}: {msg} ({what})"
    if typ in _TOP_HINTS:
        return f"{msg}: {_TOP_HINTS[typ]}"
    return f"{msg}: {details}" if details else msg
