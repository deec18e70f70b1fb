"""Podium: a presenter who speaks your script. ComfyUI reads the two mappings below.

They are loaded on first access, so the torch-free orchestrator can use the pack's pure-text
parts (podium.engines.script) without importing what the nodes need.
"""

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


def __getattr__(name):
    if name in __all__:
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
