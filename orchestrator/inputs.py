"""Files the command line names, read bounded: a script, a --config. A FIFO, a device or a huge
file is refused before it is read (one would block, /dev/zero never ends); a YAML alias bomb
(a kilobyte that expands to gigabytes) is refused before it is expanded."""
from __future__ import annotations

from pathlib import Path

from podium.errors import UsageError, one_line
from podium.jsonio import JsonInputError, read_text

MAX_SCRIPT_BYTES = 16 * 2**20  # some 2.5 million words: days of narration
MAX_CONFIG_BYTES = 2**20
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (about 89 megapixels)


def read_script(path: str) -> str:
    """The text of `--script FILE` (UTF-8; a BOM is not spoken)."""
    try:
        return read_text(path, MAX_SCRIPT_BYTES)
    except JsonInputError as err:
        raise UsageError(f"cannot read the script file {path}: it {err}") from None


def load_yaml(path: str, what: str) -> object:
    """A small YAML file the user wrote, without aliases (`*name`): data is parsed only once the
    whole file is known to hold none, so no error message or value can ever be expanded."""
    import yaml  # (here: the CLI imports this module before it can catch a Ctrl-C)

    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except JsonInputError as err:
        raise UsageError(f"cannot read {what} {path}: it {err}") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise UsageError(f"{what} {path}: line {line} uses a YAML alias (*{one_line(event.anchor, 40)}); "
                                 "write the value out instead (aliases are not read)")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"cannot read {what} {path}: {one_line(err, 300)}") from None


def config_servers(path: str) -> list[str]:
    """The server URLs of a --config file (YAML: `servers: [http://host:8188, ...]`, or items
    `url: URL`)."""
    config = load_yaml(path, "config") or {}
    servers = config.get("servers", []) if isinstance(config, dict) else None
    if not isinstance(servers, list):
        shown = servers if isinstance(config, dict) else config
        raise UsageError(f"config {path}: expected `servers: [http://host:8188, ...]`, "
                         f"got {one_line(repr(shown)[:200], 80)}")
    urls = []
    for server in servers:
        url = server.get("url") if isinstance(server, dict) else server
        if not isinstance(url, str) or not url.strip():
            raise UsageError(f"config {path}: each server is a URL (or `url: URL`), "
                             f"got {one_line(repr(server)[:200], 80)}")
        urls.append(url.strip())
    return urls


def check_image_size(path: Path) -> None:
    """Refuse a picture too big to decode (a decompression bomb) from its header alone."""
    from PIL import Image, UnidentifiedImageError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # read the size, decode nothing
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not a picture: the Presenter node says so, in its own words
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if width * height > MAX_IMAGE_PIXELS:
        raise UsageError(
            f"image {path} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more "
            f"than the {MAX_IMAGE_PIXELS / 1e6:.0f} allowed: give a smaller picture (the video is at "
            f"most 4096 pixels wide)")
