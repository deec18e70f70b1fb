"""What a pydantic ValidationError says, as a user reads it: the field, then a few words.

`segments[2].bullets: must be a list of strings`, `presets.fast.vram_gb: must be a number`;
used for scripts, models.yaml and presets.yaml alike.
"""
from __future__ import annotations

_LIST_OF = {"bullets": "a list of strings", "segments": "a list of segments", "presets": "a list of names",
            "files": "a list of files", "models": "a list of models", "needs": "a list of names",
            "extra_models": "a list of model ids", "order": "a list of preset names"}


def field_path(loc: tuple) -> str:
    """('segments', 2, 'bullets') as `segments[2].bullets`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problem_of(error: dict, an_object: str = "an object") -> str:
    """One pydantic error as a few words about the field it names (`an_object`: what a
    mapping is called where it was written: "a mapping" in YAML)."""
    kind, loc = error.get("type", ""), error.get("loc", ())
    names = [p for p in loc if isinstance(p, str)]
    last = names[-1] if names else ""
    if kind == "missing":
        return "is missing"
    if kind == "string_type":
        return "must be a string"
    if kind == "list_type":
        return f"must be {_LIST_OF.get(last, 'a list')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be {an_object}"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        return "must be a number" if kind.startswith("float") else "must be a whole number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("greater_than_equal", "greater_than"):
        bound = error.get("ctx", {}).get("ge", error.get("ctx", {}).get("gt"))
        return f"must be {'at least' if kind == 'greater_than_equal' else 'more than'} {bound}"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "literal_error":
        return f"must be one of {error.get('ctx', {}).get('expected', '')}"
    message = str(error.get("msg", kind))
    return message.removeprefix("Value error, ")


