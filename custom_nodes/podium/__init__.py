"""Podium: a presenter who speaks your script. ComfyUI reads the two mappings below.

They are loaded on first access, so the torch-free orchestrator can use the pack's pure-text
parts (podium.engines.script) without importing what the nodes need.

ComfyUI imports a pack under a name of its own (the folder's path), and the repository's root
__init__.py loads this file by path too. Either way the pack itself is imported once, as the
module `podium`: a clone in custom_nodes/, `--base-directory <repo>`, the orchestrator and the
tests then share one set of classes and one memory manager, and nothing loads twice.
"""
import os
import sys

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
# the editor extension (audio upload buttons, the Ollama model list); absolute, so the clone's
# root __init__.py can hand the same folder on
WEB_DIRECTORY = os.path.join(os.path.dirname(os.path.realpath(__file__)), "web")


def _as_podium():
    """This folder imported as `podium` (already, or now), or ImportError if another one is."""
    import importlib.util
    import os

    here = os.path.dirname(os.path.realpath(__file__))
    loaded = sys.modules.get("podium")
    if loaded is not None:
        where = os.path.dirname(os.path.realpath(getattr(loaded, "__file__", None) or ""))
        if where != here:
            raise ImportError(f"Podium at {here} cannot load: another package named 'podium' is "
                              f"already imported from {where or loaded!r}; keep one copy")
        return loaded
    spec = importlib.util.spec_from_file_location("podium", os.path.join(here, "__init__.py"),
                                                  submodule_search_locations=[here])
    module = importlib.util.module_from_spec(spec)
    sys.modules["podium"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("podium", None)
        raise
    return module


if __name__ == "podium":
    def __getattr__(name):
        if name in __all__:
            from . import nodes

            return getattr(nodes, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    if "folder_paths" in sys.modules:  # inside ComfyUI: tell it where our models live
        from .models import register_comfy_folders
        from .torch_check import torch_warning

        register_comfy_folders()
        line = torch_warning()
        if line:
            print(line, flush=True)
        if "server" in sys.modules:  # the editor's list of Ollama models (GET /podium/ollama/models)
            from .nodes.ollama_models import register_routes

            register_routes()
else:
    _podium = _as_podium()
    NODE_CLASS_MAPPINGS = _podium.NODE_CLASS_MAPPINGS
    NODE_DISPLAY_NAME_MAPPINGS = _podium.NODE_DISPLAY_NAME_MAPPINGS
    WEB_DIRECTORY = _podium.WEB_DIRECTORY
