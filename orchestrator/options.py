"""Parsing every command line shares: picture sizes, the servers of --server/--config, and
argparse options made from a pydantic model's fields (so an option is written once, as a field).

`orchestrator/cli/main.py` (generate, demo) and `orchestrator/service/cli.py` (serve, worker) both
use it; neither imports the other.
"""
from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional



MAX_SIDE = 4096  # the Presenter node's limit
GROUPS = ("main", "source", "guided", "render", "layout", "soundtrack")  # the order options are shown in


def parse_size(value: str) -> tuple[int, int]:
    """"1280x720" as (1280, 720): each side 64-4096 and even (H.264 needs it)."""
    try:
        width, height = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise ValueError(f"must look like 1280x720, got {value!r}") from None
    if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE):
        raise ValueError(f"each side of {value} must be from 64 to {MAX_SIDE} pixels")
    if width % 2 or height % 2:
        raise ValueError(f"both sides of {value} must be even (H.264 needs it)")
    return width, height


def servers(urls: Optional[list[str]], config: Optional[str]) -> list[str]:
    """--server URLs, then those of --config (YAML: `servers: [http://host:8188, ...]`, read
    bounded and without aliases: orchestrator/inputs.py)."""
    from orchestrator.inputs import config_servers

    return list(urls or []) + (config_servers(config) if config else [])


# ---- argparse options from a model's fields ----

@dataclass(frozen=True)
class Cli:
    """How a model field looks on the command line (annotated beside its pydantic Field):
    its argparse group, metavar, a unit for range messages, choices known only at run time,
    and whether `podium demo` takes it too."""

    group: str = "render"
    metavar: Optional[str] = None
    unit: str = ""
    choices: Optional[Callable[[], tuple]] = None
    demo: bool = True


def cli_of(info) -> Optional[Cli]:
    return next((m for m in info.metadata if isinstance(m, Cli)), None)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_model_options(parser: argparse.ArgumentParser, model: type, groups: dict,
                      demo: bool = False) -> None:
    """An option per field of `model` that has a `Cli` marker, in the argparse group its marker
    names (`groups`: name -> a group of `parser`; a missing name is the parser itself). Given
    values stay strings and absent ones absent (SUPPRESS): the model converts, checks and fills
    in its defaults, so help, defaults and bounds are the field's."""
    fields = sorted(model.model_fields.items(),
                    key=lambda item: GROUPS.index(cli_of(item[1]).group) if cli_of(item[1]) else 0)
    for name, info in fields:
        cli = cli_of(info)
        if cli is None or (demo and not cli.demo):
            continue
        where = groups.get(cli.group, parser)
        kind = _plain(info.annotation)
        extra: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _help(info)}
        if kind is bool:
            extra["action"] = "store_true"
        else:
            extra["metavar"] = cli.metavar
            if typing.get_origin(kind) is list:
                extra["action"] = "append"
            choices = _choices(cli) if cli.choices else _literal(kind)
            if choices:
                extra["choices"] = choices
                extra.pop("metavar")
        where.add_argument(flag(name), dest=name, **extra)


def given(args: argparse.Namespace, model: type) -> dict:
    """The model's fields the command line gave (the rest: the model's defaults)."""
    return {name: value for name, value in vars(args).items() if name in model.model_fields}


def problem(error: dict, model: type) -> str:
    """One pydantic error as the command line says it: `--fps must be from 1 to 120, got 500`."""
    from podium.validation import problem_of

    loc = [p for p in error.get("loc", ()) if isinstance(p, str)]
    name = loc[0] if loc else ""
    info = model.model_fields.get(name)
    kind, got = error.get("type", ""), error.get("input")
    unit = (" " + cli_of(info).unit) if info is not None and cli_of(info) and cli_of(info).unit else ""
    bounds = _bounds(info) if info is not None else {}
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than") and bounds:
        if "le" not in bounds:
            said = problem_of(error) + f"{unit}, got {got}"
        else:
            low = (f"from {_num(bounds['ge'])} to" if "ge" in bounds else f"more than {_num(bounds['gt'])} "
                   "and at most") if ("ge" in bounds or "gt" in bounds) else "at most"
            said = f"must be {low} {_num(bounds['le'])}{unit}, got {got}"
    elif kind == "finite_number":
        said = f"must be a number, got {got}"
    elif kind == "missing":
        said = "is required" + (f": {info.description}" if info is not None and info.description else "")
    else:
        said = problem_of(error)
    if not name:
        return said
    return f"{flag(name)} {said}" if said.startswith(("must", "is ")) else f"{flag(name)}: {said}"


def _num(value) -> str:
    """5.0 as 5, 0.5 as 0.5."""
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else str(int(value))


def _bounds(info) -> dict:
    found = {}
    for item in info.metadata:
        for key in ("ge", "gt", "le"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return found


def _plain(annotation):
    """Optional[X] -> X (a CLI option is absent or X)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _plain(args[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    return annotation


def _choices(cli: Cli) -> Optional[tuple]:
    """Choices read at run time (presets.yaml); unreadable: none here, the model says why."""
    from podium.errors import PodiumError

    try:
        return cli.choices()
    except PodiumError:
        return None


def _literal(kind) -> Optional[list]:
    return list(typing.get_args(kind)) if typing.get_origin(kind) is typing.Literal else None


def _help(info) -> str:
    """The field's description, then its bounds and its default where the description does
    not say them: `frames per second (1 to 120; default 25)`."""
    text, default, said = info.description or "", info.default, []
    bounds, cli = _bounds(info), cli_of(info)
    unit = f" {cli.unit}" if cli and cli.unit else ""
    if "le" in bounds and ("ge" in bounds or "gt" in bounds):
        low = _num(bounds["ge"]) + " to" if "ge" in bounds else f"more than {_num(bounds['gt'])}, at most"
        said.append(f"{low} {_num(bounds['le'])}{unit}")
    plain = default is None or default is False or default in ("", [])
    if "default" not in text and not info.is_required() and not plain:
        shown = f"{default[0]}x{default[1]}" if isinstance(default, tuple) else _num(default) \
            if isinstance(default, (int, float)) else str(default)
        said.append(f"default {shown}")
    return f"{text} ({'; '.join(said)})" if said else text
