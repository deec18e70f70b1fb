"""Profiles: a reusable "me" (portraits, a voice sample and its transcript, the consent),
stored once and used by `podium generate --profile NAME`.

One folder per profile in the user data folder (platformdirs' user_data_dir("podium")/profiles,
or $PODIUM_DATA_DIR/profiles; `podium serve` keeps one such folder per user in its data folder,
`stored_in` / $PODIUM_PROFILES_DIR), with manifest.json listing each file's sha256. A profile is
built under a temporary name and renamed into place: it is whole or absent. A render holds a
marker (.in-use/NAME.PID) while it runs, so the profile cannot be deleted or replaced under it.
The manifest keeps room for what comes later: `lora` (a lora/ folder) and `licence`/`flags`.
Torch-free.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime
import getpass
import hashlib
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from podium.errors import UsageError
from podium.files import temp_prefix

FORMAT = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_SIDE = 2048  # portraits are downscaled to this on their long side
MAX_CONSENT = 2000
MANIFEST = "manifest.json"
_ROOT: contextvars.ContextVar[Optional[Path]] = contextvars.ContextVar("podium_profiles", default=None)


class ProfileError(UsageError):
    """A profile that cannot be made, found, used or removed; the message says what to do."""


@dataclass
class Profile:
    name: str
    folder: Path
    manifest: dict

    @property
    def portrait(self) -> Path:
        return self.folder / self.manifest["images"][0]

    @property
    def voice(self) -> Optional[Path]:
        voice = self.manifest.get("voice")
        return self.folder / voice["sample"] if voice else None

    @property
    def voice_text(self) -> str:
        voice = self.manifest.get("voice")
        return (self.folder / voice["transcript"]).read_text(encoding="utf-8").strip() if voice else ""

    def metadata(self) -> dict[str, str]:
        """What every video made with it carries in its MP4 metadata."""
        return {"podium_profile": self.name, "podium_consent_date": self.manifest["consent"]["date"]}


def data_dir() -> Path:
    """$PODIUM_DATA_DIR, else the user data folder (~/.local/share/podium on Linux)."""
    if os.environ.get("PODIUM_DATA_DIR"):
        return Path(os.environ["PODIUM_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("podium"))


def store() -> Path:
    """Where the profiles are: the folder `stored_in` set for this thread, else
    $PODIUM_PROFILES_DIR (what `podium serve` gives a job's render), else DATA/profiles."""
    root = _ROOT.get()
    if root is not None:
        return root
    if os.environ.get("PODIUM_PROFILES_DIR"):
        return Path(os.environ["PODIUM_PROFILES_DIR"]).expanduser()
    return data_dir() / "profiles"


@contextlib.contextmanager
def stored_in(folder: Path) -> Iterator[Path]:
    """Profiles read and written in `folder` within this block (this thread's context only):
    the service's per-user folders, a worker's folder for one job."""
    token = _ROOT.set(Path(folder))
    try:
        yield Path(folder)
    finally:
        _ROOT.reset(token)


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"
        raise ProfileError(f"profile name {shown!r} is not allowed: use 1-64 letters, digits, '-' or '_' "
                           "(no spaces, '/' or '.')")
    return name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def consent_record(text: str, account: Optional[str] = None) -> dict:
    """Who agreed (the name the text gives, and the OS user; on the service, the account that
    sent it), when (UTC), and the words."""
    text = " ".join((text or "").split())
    if not text:
        raise ProfileError("a profile needs consent: --consent \"I, NAME, agree that Podium may make videos "
                           "with my face and voice\"")
    if len(text) > MAX_CONSENT:
        raise ProfileError(f"--consent is {len(text)} characters; keep it under {MAX_CONSENT}")
    named = re.match(r"^\s*I,?\s+([^,]{1,100}?),", text)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {"text": text, "who": named.group(1).strip() if named else "", "os_user": user,
              "date": now.date().isoformat(), "time": now.isoformat(timespec="seconds")}
    return record | ({"account": account} if account else {})


# ---- reading -----------------------------------------------------------------------------

def load(name: str, verify: bool = True) -> Profile:
    """The stored profile; `verify`: each file's sha256 checked against the manifest."""
    folder = store() / check_name(name)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"no profile named {name}: `podium profile list` shows them, "
                           "`podium profile create` makes one") from None
    except (OSError, ValueError) as err:
        raise ProfileError(f"profile {name} is damaged ({err}): delete it and create it again") from None
    if verify:
        verify_files(folder, manifest, f"profile {name}")
    return Profile(name, folder, manifest)


def verify_files(folder: Path, manifest: dict, what: str) -> None:
    """Each file the manifest lists is there with its sha256; nothing else is asked of them."""
    for rel, sums in manifest.get("files", {}).items():
        path = folder / safe_member(rel, what)
        if not path.is_file() or sha256(path) != sums["sha256"]:
            state = "is missing" if not path.is_file() else "does not match its sha256 in the manifest"
            raise ProfileError(f"{what}: {rel} {state}; nothing was used: create or import it again")


def names() -> list[str]:
    root = store()
    return sorted(p.name for p in root.iterdir() if NAME.match(p.name) and (p / MANIFEST).is_file()) \
        if root.is_dir() else []


def describe(profile: Profile) -> str:
    """What `profile show` prints: the files, the transcript, the consent."""
    m = profile.manifest
    lines = [f"profile {profile.name}  ({profile.folder})",
             f"  images: {len(m['images'])} (portrait: {profile.portrait.name})"]
    for note in m.get("notes", []):
        lines.append(f"    note: {note}")
    voice = m.get("voice")
    if voice:
        lines += [f"  voice: {voice['sample']}, {voice['seconds']:.1f} s kept of {voice['source_seconds']:.1f} s "
                  f"(from {voice['start_seconds']:.1f} s), speech at {voice['level_db']:.0f} dBFS",
                  f"  transcript ({voice['transcript_source']}): {profile.voice_text}",
                  f"    correct it with: podium profile set-text {profile.name} \"exactly what it says\""]
    else:
        lines.append("  voice: none (videos use the preset's voice)")
    lora = m.get("lora")
    lines.append(f"  LoRA: yes ({lora.get('family', '?')}, \"{lora.get('caption', '')}\"; generate --presenter-prompt "
                 "TEXT draws the presenter with it)" if lora else "  LoRA: none")
    c = m["consent"]
    lines += [f"  consent: {c['date']} by {c['who'] or '(no name given)'} (OS user {c['os_user'] or '?'})",
              f"    \"{c['text']}\""]
    for rel, sums in m["files"].items():
        lines.append(f"  {sums['sha256']}  {rel}")
    return "\n".join(lines)


# ---- in use ------------------------------------------------------------------------------

def _markers() -> Path:
    """Where renders mark the profiles they hold: NAME.PID, one file each."""
    return store() / ".in-use"


def users(name: str) -> list[int]:
    """The live processes rendering with the profile (stale markers are removed)."""
    from orchestrator.lifecycle import _alive

    pids = []
    for marker in _markers().glob(f"{name}.*"):
        pid = int(marker.suffix[1:]) if marker.suffix[1:].isdigit() else None
        if pid is not None and _alive(pid):
            pids.append(pid)
        else:
            marker.unlink(missing_ok=True)
    return pids


@contextlib.contextmanager
def using(name: str) -> Iterator[Profile]:
    """The profile, held for a render: it cannot be deleted or replaced until this ends."""
    folder = _markers()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{check_name(name)}.{os.getpid()}"
    marker.write_text("", encoding="utf-8")
    try:
        yield load(name)
    finally:
        marker.unlink(missing_ok=True)


def check_not_used(name: str, doing: str) -> None:
    pids = users(name)
    if pids:
        raise ProfileError(f"profile {name} is in use by a running render (process {', '.join(map(str, pids))}): "
                           f"wait for it to finish or stop it, then {doing} it")


# ---- writing -----------------------------------------------------------------------------

def _work_folder() -> Path:
    """A new hidden folder in the store; those a killed run left (its PID dead) are removed."""
    import tempfile

    from orchestrator.lifecycle import _alive

    root = store()
    root.mkdir(parents=True, exist_ok=True)
    for left in root.glob(".podium-profile-*"):
        pid = left.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)

    return Path(tempfile.mkdtemp(prefix=f".{temp_prefix('profile')}", dir=root))


def publish(work: Path, name: str, force: bool) -> Path:
    """Move the finished folder `work` into place as profile `name` (one rename; with --force
    the old one is renamed away first, then removed)."""
    final = store() / name
    if final.exists():
        if not force:
            raise ProfileError(f"profile {name} already exists: pass --force to replace it, or choose another name")
        check_not_used(name, "replace")
        old = Path(str(work) + ".old")
        os.rename(final, old)
        os.rename(work, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, final)
    return final


def write_manifest(work: Path, manifest: dict) -> None:
    manifest["files"] = {rel: {"sha256": sha256(work / rel), "size": (work / rel).stat().st_size}
                         for rel in sorted(_files(work)) if rel != MANIFEST}
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")


def _files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


@contextlib.contextmanager
def building() -> Iterator[Path]:
    """A temporary folder in the store, removed unless it was published (renamed away)."""
    work = _work_folder()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def delete(name: str) -> None:
    folder = store() / check_name(name)
    if not (folder / MANIFEST).is_file():
        raise ProfileError(f"no profile named {name}: `podium profile list` shows them")
    check_not_used(name, "delete")
    gone = _work_folder()
    os.rename(folder, gone / name)  # absent at once; the files go after
    shutil.rmtree(gone, ignore_errors=True)


def set_text(name: str, text: str) -> Profile:
    """Replace the voice sample's transcript (a copy is changed, then swapped in)."""
    profile = load(name)
    text = " ".join((text or "").split())
    if not profile.voice:
        raise ProfileError(f"profile {name} has no voice sample: give one with profile create --voice --force")
    if not text:
        raise ProfileError("give the transcript: podium profile set-text NAME \"exactly what the sample says\"")
    with building() as work:
        shutil.copytree(profile.folder, work, dirs_exist_ok=True)
        (work / profile.manifest["voice"]["transcript"]).write_text(text + "\n", encoding="utf-8")
        manifest = dict(profile.manifest)
        manifest["voice"] = dict(manifest["voice"], transcript_source="corrected by the user")
        write_manifest(work, manifest)
        publish(work, name, force=True)
    return load(name)


# ---- archives ----------------------------------------------------------------------------

def safe_member(rel: str, what: str) -> str:
    """A relative path inside the profile, or ProfileError (absolute, '..', backslashes)."""
    path = PurePosixPath(rel)
    if not rel or "\\" in rel or path.is_absolute() or ".." in path.parts or rel.startswith("/"):
        raise ProfileError(f"{what}: the path {rel!r} would escape the profile's folder; nothing was imported")
    return rel


def export(name: str, target: Path, force: bool = False) -> Path:
    from podium.files import publish as publish_file, temp_path

    profile = load(name)
    target = Path(target).expanduser().absolute()
    if target.exists() and not force:
        raise ProfileError(f"{target} already exists: pass --force to replace it")
    tmp = temp_path(target)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(profile.folder / MANIFEST, MANIFEST)
            for rel in profile.manifest["files"]:
                archive.write(profile.folder / rel, rel)
        publish_file(tmp, target, replace=force)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def import_archive(source: Path, force: bool = False) -> Profile:
    """A profile from an archive `export` wrote: every path checked, every sha256 checked,
    then renamed into place; anything wrong and nothing is imported."""
    source = Path(source).expanduser()
    what = f"archive {source}"
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as err:
        raise ProfileError(f"{what} is not a profile archive ({err}): give a file `podium profile export` wrote") from None
    with archive, building() as work:
        members = [i for i in archive.infolist() if not i.is_dir()]
        for info in members:
            safe_member(info.filename, what)
        try:
            manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
            name = check_name(manifest["name"])
            listed = set(manifest["files"])
        except (KeyError, ValueError, TypeError) as err:
            raise ProfileError(f"{what} has no readable {MANIFEST} ({err}): give a file `podium profile export` wrote") from None
        extra = {i.filename for i in members} - listed - {MANIFEST}
        if extra:
            raise ProfileError(f"{what} holds files its manifest does not list ({', '.join(sorted(extra))}); nothing was imported")
        for info in members:
            dest = work / info.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        verify_files(work, manifest, what)
        publish(work, name, force)
    return load(name)
