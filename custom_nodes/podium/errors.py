"""User-facing errors: the message says what was wrong and what to do; no traceback needed.

Every error meant for the user derives from PodiumError, in the pack and in the orchestrator
alike, so one `except PodiumError` prints one line whatever raised it. Its `exit_code` is what
`podium` exits with: 1 (the job failed) unless the class says 2 (usage: fix the command, a file
it names, or install what the message names). Classes raised inside nodes live here, so an
`execution_error` from a ComfyUI server (which only carries the type's name) maps back to them.
"""
from __future__ import annotations

import re


class PodiumError(Exception):
    """A problem the user can fix (bad input, missing model, unwritable folder)."""

    exit_code = 1


class UsageError(PodiumError):
    """What was asked cannot run as given: a bad option, a missing or clashing file."""

    exit_code = 2


class ModelMissingError(UsageError):
    """A model in models.yaml is not on disk; the message names the pull command."""


class ScriptFormatError(UsageError):
    """Script data of the wrong shape; `where` names the field (`segments[2].bullets`)."""

    def __init__(self, problem: str, where: str = "", source: str = "the script JSON"):
        self.problem, self.where, self.source = problem, where, source
        super().__init__(": ".join(p for p in (source, where, problem) if p))

    def located(self, source: str) -> "ScriptFormatError":
        """The same problem, said of `source` (e.g. `--script talk.json`)."""
        return ScriptFormatError(self.problem, self.where, source)


def error_class(type_name: str) -> type[PodiumError] | None:
    """The PodiumError class that ComfyUI's `exception_type` names, or None.

    ComfyUI names a type `<module>.<qualname>` with the module as it imported the pack
    (e.g. "/srv/ComfyUI/custom_nodes/podium.errors.ModelMissingError"), so only the end of
    the module name is compared.
    """
    module, _, name = (type_name or "").rpartition(".")
    if not (module == "podium.errors" or module.endswith((".podium.errors", "/podium.errors"))):
        return None
    found = globals().get(name)
    return found if isinstance(found, type) and issubclass(found, PodiumError) else None


def one_line(text: str, limit: int = 400) -> str:
    """`text` as one line for a terminal: whitespace runs folded, the end cut past `limit`."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"
