"""Podium as a ComfyUI custom-node pack cloned into ComfyUI/custom_nodes/ (git, ComfyUI-Manager,
`comfy node install`, the Registry's zip).

ComfyUI imports this file under a name of its own (the clone's folder or path); it hands on the
mappings of the pack in custom_nodes/podium, which is always imported as the one module
`podium` (see custom_nodes/podium/__init__.py), whatever the clone folder is called.
"""
import importlib.util as _util
import os as _os

_entry_file = _os.path.join(_os.path.dirname(_os.path.realpath(__file__)), "custom_nodes", "podium",
                            "__init__.py")
_spec = _util.spec_from_file_location(f"{__name__}._podium_entry", _entry_file)
_entry = _util.module_from_spec(_spec)
_spec.loader.exec_module(_entry)  # loaded under a foreign name: it hands over to `podium`

NODE_CLASS_MAPPINGS = _entry.NODE_CLASS_MAPPINGS
NODE_DISPLAY_NAME_MAPPINGS = _entry.NODE_DISPLAY_NAME_MAPPINGS
WEB_DIRECTORY = _entry.WEB_DIRECTORY  # the pack's editor extension (absolute path)
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
