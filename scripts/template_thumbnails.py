"""Draw each editor template's thumbnail: a map of its graph (groups, nodes, links; Podium's nodes
in orange, ComfyUI core's in blue) under its title.

ComfyUI's template browser (frontend 1.27) asks for `<template name>.jpg` beside the template's
.json, so each thumbnail is written there as JPEG (scripts/workflows_ui.py calls draw() when it
stores a graph; this redraws them all):
    python scripts/template_thumbnails.py [workflows]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "custom_nodes"))
from podium.engines.fonts import font  # noqa: E402

FOLDER = Path(__file__).resolve().parents[1] / "workflows"
SIZE, BAR = (512, 384), 84
BACKGROUND, PODIUM, CORE, NOTE = (24, 28, 38), (242, 153, 74), (86, 140, 200), (120, 120, 90)


def title_of(workflow: dict, name: str) -> str:
    return (workflow.get("extra") or {}).get("podium", {}).get("title") or name.replace("_", " ").capitalize()


def draw(workflow: dict, title: str) -> Image.Image:
    image = Image.new("RGB", SIZE, BACKGROUND)
    pen = ImageDraw.Draw(image, "RGBA")
    boxes = [(*g["bounding"],) for g in workflow.get("groups", [])]
    boxes += [(*n["pos"], *n["size"]) for n in workflow["nodes"]]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    margin = 18
    scale = min((SIZE[0] - 2 * margin) / (x1 - x0), (SIZE[1] - BAR - 2 * margin) / (y1 - y0))
    ox = (SIZE[0] - (x1 - x0) * scale) / 2
    oy = BAR + (SIZE[1] - BAR - (y1 - y0) * scale) / 2
    at = lambda x, y: (ox + (x - x0) * scale, oy + (y - y0) * scale)
    for g in workflow.get("groups", []):
        x, y, w, h = g["bounding"]
        pen.rounded_rectangle([*at(x, y), *at(x + w, y + h)], 6, fill=(255, 255, 255, 18),
                              outline=(255, 255, 255, 60))
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for _, a, _, b, _, _ in workflow["links"]:
        (ax, ay), (bx, by) = nodes[a]["pos"], nodes[b]["pos"]
        start = at(ax + nodes[a]["size"][0], ay + 20)
        pen.line([start, at(bx, by + 20)], fill=(220, 220, 220, 110), width=2)
    for n in workflow["nodes"]:
        x, y = n["pos"]
        w, h = n["size"]
        colour = NOTE if n["type"] == "Note" else PODIUM if n["type"].startswith("Podium") else CORE
        pen.rounded_rectangle([*at(x, y), *at(x + w, y + h)], 4, fill=colour + (215,))
    pen.rectangle([0, 0, SIZE[0], BAR], fill=(14, 16, 22))
    size = 30
    while size > 14 and pen.textlength(title, font=font(size, bold=True)) > SIZE[0] - 40:
        size -= 1  # the whole title, however long: the card shows the picture, not the name
    pen.text((20, 14 + (30 - size) // 2), title, font=font(size, bold=True), fill=(255, 255, 255))
    pen.text((20, 54), "Podium  \u00b7  orange: Podium nodes, blue: ComfyUI core",
             font=font(15), fill=(170, 178, 196))
    return image


def main(folder: Path = FOLDER) -> list[Path]:
    written = []
    for path in sorted(folder.glob("*.json")):
        thumbnail = path.with_suffix(".jpg")
        workflow = json.loads(path.read_text(encoding="utf-8"))
        draw(workflow, title_of(workflow, path.stem)).save(thumbnail, "JPEG", quality=88)
        written.append(thumbnail)
    return written


if __name__ == "__main__":
    for p in main(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(p)
