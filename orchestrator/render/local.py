"""Run an API-format ComfyUI graph in this process, validated exactly as ComfyUI 0.3.64 does.

A graph is `{node_id: {"class_type", "inputs", "_meta": {"title"}}}`, a link `[node_id, index]`;
`node_classes` maps class_type to a V1 node class (like ComfyUI's NODE_CLASS_MAPPINGS).
Validation is a port of execution.validate_prompt / validate_inputs, so errors come as the same
JSON body ComfyUI answers on POST /prompt 400 (formatted by orchestrator.graphs.prompt_errors).
Execution sends the websocket message types ComfyUI sends, through `on_event(type, data)`.
Stdlib (and the pure podium.errors) only: the orchestrator never imports torch.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
import traceback
import uuid
from typing import Any, Callable, Mapping, NamedTuple

from podium.errors import PodiumError, UsageError, error_class  # pure: no torch

from orchestrator.graphs.prompt_errors import describe_prompt_error, node_label

__all__ = ["PromptError", "ExecutionError", "check_prompt", "validate", "run",
           "current_node", "emit_progress", "validate_node_input"]

log = logging.getLogger(__name__)
EventSink = Callable[[str, dict], None]


class PromptError(UsageError):
    """The graph failed validation; `.body` is ComfyUI's 400 body {"error", "node_errors"}."""

    def __init__(self, body: dict, prompt: dict | None = None):
        self.body = body
        super().__init__(describe_prompt_error(body, prompt))


class ExecutionError(PodiumError):
    """A node raised; attributes mirror ComfyUI's execution_error message, the exception is
    the __cause__ (in this process). A PodiumError inside is told to the user as itself."""

    def __init__(self, data: dict, prompt: dict):
        self.data = data
        self.prompt_id, self.node_id, self.node_type = data["prompt_id"], data["node_id"], data["node_type"]
        self.exception_message, self.exception_type = data["exception_message"], data["exception_type"]
        self.traceback = data["traceback"]
        label = node_label(self.node_id, prompt, self.node_type)
        super().__init__(f"{label} failed: {self.exception_type}: {self.exception_message.strip()}")

    @property
    def podium_error(self) -> type[PodiumError] | None:
        """The PodiumError class the node raised (here, or on a server), or None."""
        if isinstance(self.__cause__, PodiumError):
            return type(self.__cause__)
        return error_class(self.exception_type)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.podium_error.exit_code if self.podium_error else 1

    def user_message(self) -> str:
        """The node's own message when it is one for the user, else what failed where."""
        return self.exception_message.strip() if self.podium_error else str(self)


# ---- validation: a port of ComfyUI 0.3.64 execution.py / comfy_execution/validation.py ----

def validate_node_input(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """ComfyUI's type check: equal (via `!=`, so str subclasses overriding __ne__ can act as
    wildcards), or the comma-separated unions overlap (strict: received is a subset).
    A plain "*" is not a wildcard here, exactly as in ComfyUI."""
    if not received_type != input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    accepted = {t.strip() for t in input_type.split(",")}
    return received <= accepted if strict else bool(received & accepted)


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)))


def _input_info(class_inputs: dict, name: str) -> tuple:
    for category in ("required", "optional", "hidden"):
        if name in class_inputs.get(category, {}):
            info = class_inputs[category][name]
            if isinstance(info, str):  # hidden inputs are bare strings
                return info, category, {}
            return info[0], category, (info[1] if len(info) > 1 else {})
    return None, None, None


def _full_type_name(klass: type) -> str:
    return klass.__qualname__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"


def _err(typ: str, message: str, details: str, **extra: Any) -> dict:
    return {"type": typ, "message": message, "details": details, "extra_info": extra}


_HIDDEN = {"UNIQUE_ID", "PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}
_CONVERT = (("INT", int), ("FLOAT", float), ("STRING", str), ("BOOLEAN", bool))


def _input_data(inputs: dict, class_inputs: dict, node_id: str, outputs: dict | None,
                prompt: dict) -> dict:
    """ComfyUI's get_input_data for one call: linked values from `outputs` (None when absent or
    the index is out of range), declared widget values, and the known hidden inputs."""
    data = {}
    for name, value in inputs.items():
        _, category, info = _input_info(class_inputs, name)
        if _is_link(value) and not (info or {}).get("rawLink", False):
            out = (outputs or {}).get(value[0])
            data[name] = out[int(value[1])] if out is not None and value[1] < len(out) else None
        elif category is not None:
            data[name] = value
    for name, kind in class_inputs.get("hidden", {}).items():
        if kind in _HIDDEN:
            data[name] = node_id if kind == "UNIQUE_ID" else prompt if kind == "PROMPT" else None
    return data


def _validate_inputs(prompt: dict, classes: Mapping, node_id: str, validated: dict) -> tuple:
    if node_id in validated:
        return validated[node_id]
    inputs = prompt[node_id]["inputs"]
    cls = classes[prompt[node_id]["class_type"]]
    class_inputs = cls.INPUT_TYPES()
    # ComfyUI iterates a set (order varies with the hash seed); we keep declaration order.
    names = dict.fromkeys([*class_inputs.get("required", {}), *class_inputs.get("optional", {})])
    errors, valid, received_types = [], True, {}
    check = getattr(cls, "VALIDATE_INPUTS", None)
    spec = inspect.getfullargspec(check) if check is not None else None
    check_args = spec.args if spec else []  # includes "cls": getfullargspec keeps bound args
    check_kwargs = bool(spec and spec.varkw)

    for x in names:
        input_type, category, extra = _input_info(class_inputs, x)
        if x not in inputs:
            if category == "required":
                errors.append(_err("required_input_missing", "Required input is missing", x, input_name=x))
            continue
        val, info = inputs[x], (input_type, extra)
        if isinstance(val, list):
            if len(val) != 2:
                errors.append(_err("bad_linked_input", "Bad linked input, must be a length-2 list of "
                                   "[node_id, slot_index]", x, input_name=x, input_config=info, received_value=val))
                continue
            o_id = val[0]
            received = classes[prompt[o_id]["class_type"]].RETURN_TYPES[val[1]]  # KeyError/IndexError propagate
            received_types[x] = received
            if "input_types" not in check_args and not validate_node_input(received, input_type):
                errors.append(_err("return_type_mismatch", "Return type mismatch between linked nodes",
                                   f"{x}, received_type({received}) mismatch input_type({input_type})",
                                   input_name=x, input_config=info, received_type=received, linked_node=val))
                continue
            try:
                if _validate_inputs(prompt, classes, o_id, validated)[0] is False:
                    valid = False
            except Exception as ex:
                valid = False
                validated[o_id] = (False, [_err(
                    "exception_during_inner_validation", "Exception when validating inner node", str(ex),
                    input_name=x, input_config=info, exception_message=str(ex),
                    exception_type=_full_type_name(type(ex)),
                    traceback=traceback.format_tb(ex.__traceback__), linked_node=val)], o_id)
            continue
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = inputs[x] = val["__value__"]
            for name, convert in _CONVERT:
                if input_type == name:
                    val = inputs[x] = convert(val)
        except Exception as ex:
            errors.append(_err("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                               f"{x}, {val}, {ex}", input_name=x, input_config=info, received_value=val,
                               exception_message=str(ex)))
            continue
        if x in check_args or check_kwargs:
            continue  # the node's VALIDATE_INPUTS takes over range and list checks
        if "min" in extra and val < extra["min"]:
            errors.append(_err("value_smaller_than_min", f"Value {val} smaller than min of {extra['min']}",
                               x, input_name=x, input_config=info, received_value=val))
        elif "max" in extra and val > extra["max"]:
            errors.append(_err("value_bigger_than_max", f"Value {val} bigger than max of {extra['max']}",
                               x, input_name=x, input_config=info, received_value=val))
        elif isinstance(input_type, list) and val not in input_type:
            big = len(input_type) > 20
            listed = f"(list of length {len(input_type)})" if big else str(input_type)
            errors.append(_err("value_not_in_list", "Value not in list", f"{x}: '{val}' not in {listed}",
                               input_name=x, input_config=None if big else info, received_value=val))

    if check_args or check_kwargs:
        data = _input_data(inputs, class_inputs, node_id, None, {})  # links read as None here
        filtered = {k: v for k, v in data.items() if k in check_args or check_kwargs}
        if "input_types" in check_args:
            filtered["input_types"] = received_types
        ret = check(**filtered)
        if inspect.isawaitable(ret):
            ret = asyncio.run(ret)
        if ret is not True:  # one error per input passed (none when nothing was passed)
            for x in filtered:
                details = x if ret is False else f"{x} - {ret}"
                errors.append(_err("custom_validation_failed", "Custom validation failed for node",
                                   details, input_name=x))

    ret = (False, errors, node_id) if errors or valid is not True else (True, [], node_id)
    validated[node_id] = ret
    return ret


def _check(prompt: dict, classes: Mapping) -> tuple[list[str], dict, dict]:
    """validate_prompt: (outputs to run, node_errors of the dropped ones, converted graph)."""
    graph = {k: {**v, "inputs": dict(v["inputs"])} if isinstance(v, dict) and "inputs" in v else v
             for k, v in prompt.items()}  # validation converts widget values in place, as ComfyUI
    outputs = []
    for x, node in graph.items():
        missing = ("a node is missing the class_type property" if "class_type" not in node else
                   f"node {node['class_type']} does not exist" if node["class_type"] not in classes else None)
        if missing:
            raise PromptError({"error": _err("invalid_prompt", f"Cannot execute because {missing}.",
                                             f"Node ID '#{x}'"), "node_errors": {}}, prompt)
        if getattr(classes[node["class_type"]], "OUTPUT_NODE", False) is True:
            outputs.append(x)
    if not outputs:
        raise PromptError({"error": _err("prompt_no_outputs", "Prompt has no outputs", ""), "node_errors": {}}, prompt)

    good, failed, node_errors, validated = [], [], {}, {}
    for o in outputs:  # ComfyUI walks a set; we walk the graph's order
        try:
            valid, reasons, _ = _validate_inputs(graph, classes, o, validated)
        except Exception as ex:
            valid, reasons = False, [_err("exception_during_validation", "Exception when validating node",
                                          str(ex), exception_type=_full_type_name(type(ex)),
                                          traceback=traceback.format_tb(ex.__traceback__))]
            validated[o] = (False, reasons, o)
        if valid is True:
            good.append(o)
            continue
        failed += reasons
        for node_id, (ok, why, _) in validated.items():  # as ComfyUI: every failed node seen so far
            if ok is not True and why:
                node_errors.setdefault(node_id, {"errors": why, "dependent_outputs": [],
                                                 "class_type": graph[node_id]["class_type"]})
                node_errors[node_id]["dependent_outputs"].append(o)
    node_errors = json.loads(json.dumps(node_errors, default=str))  # the shape a client receives
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in failed)
        body = {"error": _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                "node_errors": node_errors}
        raise PromptError(body, prompt)
    return good, node_errors, graph


def check_prompt(prompt: dict, node_classes: Mapping[str, type]) -> tuple[list[str], dict]:
    """(output node ids that will run, node_errors of the outputs left out); raises PromptError
    when none can run. node_errors is what ComfyUI returns with a 200 for a partly valid graph."""
    good, node_errors, _ = _check(prompt, node_classes)
    return good, node_errors


def validate(prompt: dict, node_classes: Mapping[str, type]) -> list[str]:
    """The output node ids to run; raises PromptError shaped like ComfyUI's 400 body."""
    return check_prompt(prompt, node_classes)[0]


# ---- execution ----

class _Running(NamedTuple):
    prompt_id: str
    node_id: str
    emit: EventSink


_current: contextvars.ContextVar[_Running | None] = contextvars.ContextVar("podium_local_node", default=None)


def current_node() -> str | None:
    """The id of the node `run` is executing in this context, or None."""
    running = _current.get()
    return running.node_id if running else None


def emit_progress(value: float, max: float) -> None:  # noqa: A002 - ComfyUI's field name
    """Send a "progress" event for the executing node; a no-op when nothing runs here."""
    running = _current.get()
    if running is not None:
        running.emit("progress", {"value": value, "max": max, "prompt_id": running.prompt_id,
                                  "node": running.node_id})


class DependencyCycleError(Exception):
    """The graph's links form a loop."""


def _order(graph: dict, outputs: list[str]) -> tuple[list[str], str | None]:
    """Every node the outputs need, each once, dependencies first (all links, as ComfyUI);
    and a node on a dependency cycle, if there is one."""
    order, state = [], {}
    for root in outputs:
        stack = [(root, False)]
        while stack:
            node_id, done = stack.pop()
            if done:
                state[node_id] = "done"
                order.append(node_id)
                continue
            if state.get(node_id) == "done":
                continue
            if state.get(node_id) == "open":
                return order, node_id
            state[node_id] = "open"
            stack.append((node_id, True))
            deps = [v[0] for v in graph[node_id]["inputs"].values() if _is_link(v) and v[0] in graph]
            stack.extend((d, False) for d in reversed(deps) if state.get(d) != "done")
    return order, None


def _call(cls: type, kwargs: dict, running: _Running) -> tuple[tuple, dict]:
    """Run one node; (outputs, ui) as ComfyUI's get_output_from_returns makes them."""
    if getattr(cls, "INPUT_IS_LIST", False) or any(getattr(cls, "OUTPUT_IS_LIST", ()) or ()):
        raise NotImplementedError(f"{cls.__name__}: INPUT_IS_LIST / OUTPUT_IS_LIST nodes are not "
                                  "supported by the in-process runner; run this graph in ComfyUI")
    func = getattr(cls(), cls.FUNCTION)
    token = _current.set(running)
    try:
        ret = func(**kwargs)
        if inspect.isawaitable(ret):
            ret = asyncio.run(ret)
    finally:
        _current.reset(token)
    if not isinstance(ret, dict):
        return tuple(ret), {}
    if "expand" in ret:
        raise NotImplementedError(f"{cls.__name__}: graph expansion is not supported in-process")
    ui = {k: list(v) for k, v in ret["ui"].items()} if "ui" in ret else {}
    return (tuple(ret["result"]) if "result" in ret else ()), ui


def _format_value(x: Any) -> Any:
    return x if x is None or isinstance(x, (int, float, bool, str)) else str(x)


def run(prompt: dict, node_classes: Mapping[str, type], on_event: EventSink | None = None,
        prompt_id: str | None = None) -> dict[str, dict]:
    """Validate, then execute what the valid outputs need. Returns {node_id: ui} for the nodes
    that returned a non-empty "ui" (ComfyUI's history "outputs"). Raises PromptError,
    ExecutionError (cause: the node's exception); KeyboardInterrupt passes through."""
    outputs, node_errors, graph = _check(prompt, node_classes)
    if node_errors:
        log.warning("outputs left out, their graph is invalid:\n%s",
                    describe_prompt_error({"node_errors": node_errors}, prompt))
    prompt_id = prompt_id or str(uuid.uuid4())
    emit: EventSink = on_event or (lambda _type, _data: None)
    stamp = lambda: int(time.time() * 1000)  # noqa: E731
    emit("execution_start", {"prompt_id": prompt_id, "timestamp": stamp()})
    emit("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": stamp()})
    results, uis, executed, node_id, kwargs = {}, {}, [], None, None

    def failure(ex: Exception) -> ExecutionError:
        data = {"prompt_id": prompt_id, "node_id": node_id, "node_type": graph[node_id]["class_type"],
                "executed": list(executed), "exception_message": f"{ex}\n",
                "exception_type": _full_type_name(type(ex)), "traceback": traceback.format_tb(ex.__traceback__),
                "current_inputs": {k: [_format_value(v)] for k, v in (kwargs or {}).items()},
                "current_outputs": list(graph), "timestamp": stamp()}
        emit("execution_error", data)
        return ExecutionError(data, prompt)

    try:
        order, node_id = _order(graph, outputs)
        if node_id is not None:  # ComfyUI reports a cycle as an execution error too
            cycle = DependencyCycleError("Dependency cycle detected")
            raise failure(cycle) from cycle
        for node_id in order:
            node, cls = graph[node_id], node_classes[graph[node_id]["class_type"]]
            kwargs = None
            try:
                kwargs = _input_data(node["inputs"], cls.INPUT_TYPES(), node_id, results, graph)
                emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
                results[node_id], ui = _call(cls, kwargs, _Running(prompt_id, node_id, emit))
            except Exception as ex:
                raise failure(ex) from ex
            if ui:
                uis[node_id] = ui
                emit("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                  "prompt_id": prompt_id})
            executed.append(node_id)
        emit("execution_success", {"prompt_id": prompt_id, "timestamp": stamp()})
    except KeyboardInterrupt:
        emit("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                       "node_type": graph[node_id]["class_type"] if node_id else None,
                                       "executed": list(executed), "timestamp": stamp()})
        raise
    finally:
        emit("executing", {"node": None, "prompt_id": prompt_id})
    return uis
