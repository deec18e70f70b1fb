"""User-facing errors: the message says what was wrong and what to do; no traceback needed."""


class PodiumError(Exception):
    """A problem the user can fix (bad input, missing model, unwritable folder)."""


class ModelMissingError(PodiumError):
    """A model in models.yaml is not on disk; the message names the pull command."""
