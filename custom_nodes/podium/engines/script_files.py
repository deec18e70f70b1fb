"""Writing a guided script for the user: JSON (read back with --script) and Markdown."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from ..errors import PodiumError
from ..files import atomic_write_text
from .guided_answer import one_line
from .script import Script


def script_to_markdown(script: Script) -> str:
    """The script as Markdown that `parse_script` reads back in direct mode: `# Title`, then a
    `## slide title` and a narration paragraph per segment. Bullets, speakers and the stage
    description are not part of that format: they are kept in the JSON (Script.to_dict())."""
    lines = [f"# {one_line(script.title).lstrip('#').strip()}", ""]
    if script.music:
        lines += [f"[music: {one_line(script.music)}]", ""]
    for segment in script.segments:
        lines += [f"## {one_line(segment.title or script.title).lstrip('#').strip()}", ""]
        if segment.music:
            lines += [f"[music: {one_line(segment.music)}]"]
        if segment.scene:
            lines += [f"[scene: {one_line(segment.scene)}]"]
        lines += [one_line(segment.marked_text, 1_000_000).lstrip("#").strip(), ""]
    return "\n".join(lines)


def save_script_files(script: Script, stem: Union[str, Path], replace: bool = True) -> tuple[Path, Path]:
    """Write `<stem>.json` (everything; direct mode reads it with --script) and `<stem>.md`;
    `replace=False`: FileExistsError rather than replace a file."""
    stem = Path(stem)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(script.to_dict(), ensure_ascii=False, indent=2) + "\n",
                          replace=replace)
        atomic_write_text(md_path, script_to_markdown(script), replace=replace)
    except FileExistsError:
        raise
    except OSError as err:
        raise PodiumError(f"cannot write the script next to the video ({err}): choose a writable "
                          "output folder") from None
    return json_path, md_path
