"""Store a graph in workflows/ the one way Podium keeps it: the editor's (UI) format, laid out,
titled, with a note that describes it and a thumbnail beside it (NAME.json + NAME.jpg).

The same files are ComfyUI's templates and what `podium` runs (it converts them back to API
format with the pack's node definitions, orchestrator.graphs.node_defs). Graphs edited in API format
(the editor's "Export (API)", or by hand) are turned into the stored file by this script;
`widgets_values` follow the nodes' INPUT_TYPES order as the editor saves them.

    python scripts/workflows_ui.py                  # every workflows/*.json: API -> UI, notes, thumbnails
    python scripts/workflows_ui.py workflows/x.json # just these (API or UI format)
    python scripts/workflows_ui.py --to-api NAME    # print a stored graph in API format
    python scripts/workflows_ui.py --to-api-dir DIR # every stored graph in API format, DIR/NAME.json
    python scripts/workflows_ui.py --from-api-dir DIR

When node definitions change (a widget added, a STRING turned into an upload combo), the stored
files no longer match them (tests/test_example_workflows.py says which). Run --to-api-dir with
the definitions the files were made for (e.g. on the branch before merging the change), then
--from-api-dir with the new ones: graphs this script laid out are made anew; hand-laid ones
(groups, notes of their own) keep their layout and get their widget values rewritten.
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "custom_nodes")]
from orchestrator.graphs.node_defs import stored_object_info  # noqa: E402
from orchestrator.graphs.ui_format import is_ui_format, widget_names  # noqa: E402
from orchestrator.graphs.workflow import WORKFLOWS_DIR, load_workflow  # noqa: E402

NEEDS_NEW = "Needs a ComfyUI whose core has {node}: 0.38 has it, 0.3.64 does not."
# name: (title, description). The editor's template browser shows the file name; the title and
# description head the note inside the graph and the thumbnail.
ABOUT = {
    "direct": ("Podium draft", "CPU only, nothing to download: your text, a Piper voice, your portrait "
               "(or text slides) with idle motion, subtitles, an H.264/AAC MP4."),
    "direct_fast": ("Podium fast", "Piper voice and your portrait lip-synced with Wav2Lip."),
    "direct_balanced": ("Podium balanced", "Cloned voice (F5-TTS), an idle clip under MuseTalk 1.5 "
                        "lip sync, Real-ESRGAN on the face."),
    "direct_quality": ("Podium quality", "The best of Podium's own nodes: cloned voice, idle clip, "
                       "MuseTalk, face upscale."),
    "direct_music": ("Podium with music", "The draft presenter over a music bed, mixed under the voice."),
    "guided": ("Podium guided script", "A local Ollama model writes the script from a topic; Podium "
               "speaks and presents it."),
    "presenter_image": ("Podium presenter image", "Draws the presenter once (SD1.5 / SDXL / FLUX) and "
                        "saves the portrait."),
    "idle_clip": ("Podium idle clip", "An image-to-video model (Wan 2.2 TI2V 5B) makes a short idle clip "
                  "of the portrait: blinks, breathing, small head turns."),
    "music": ("Podium music", "A music bed from a prompt (MusicGen), saved as audio."),
    "sfx": ("Podium sound effect", "A short sound effect from a prompt, saved as audio."),
    "cloned_voice": ("Podium cloned voice (commercial use)", "Your script spoken in the voice of a short "
                     "recording and its transcript by Sesame CSM-1B (Apache-2.0), saved as audio; what --commercial "
                     "clones with instead of F5-TTS."),
    "cinema_s2v": ("Podium cinema: Wan S2V", "Wan2.2-S2V moves head, face and shoulders with the "
                   "narration, in two chunks at 16 fps; Podium holds the colour, retimes, upscales the "
                   "face and writes the MP4."),
    "cinema_humo": ("Podium cinema: HuMo", "HuMo makes up to 97 frames at 25 fps from the portrait and "
                    "the narration; Podium holds the colour, retimes, upscales and writes the MP4."),
    "cinema_infinitetalk": ("Podium cinema: InfiniteTalk", "Wan2.1-I2V with the InfiniteTalk patch at "
                            "25 fps, two chunks. " + NEEDS_NEW.format(node="WanInfiniteTalkToVideo")),
    "checkpoint_presenter": ("Podium presenter from your checkpoint", "Your SD1.5 checkpoint draws the "
                             "presenter with core nodes; Podium speaks, lip-syncs and writes the MP4."),
    "idle_musetalk": ("Podium idle clip + MuseTalk", "Your portrait gets one idle clip (Wan 2.2 TI2V 5B), "
                      "looped under MuseTalk 1.5 lip sync."),
    "scene_wan22_5b": ("Podium scene shots: Wan 2.2 TI2V 5B", "The script's first [scene: ...] shot from core "
                       "Wan 2.2 TI2V 5B nodes (ComfyUI's video_wan2_2_5B_ti2v template settings: 20 steps, "
                       "cfg 5, uni_pc, shift 8), text-to-video or from the presenter's portrait; Podium's Scene "
                       "node loops it over the narration (podium runs a segment at a time: every scene its own)."),
    "video_model_lipsync": ("Podium video model + lip sync", "Core's Wan 2.2 TI2V 5B animates the "
                            "portrait; Podium lip-syncs the clip to the narration."),
}
GAP, WIDE, COLUMNS = 60, 340, 5
NOTE_W = WIDE
READABLE, VIEW = 0.8, (1500, 850)  # the editor hides node text below ~0.6


def about(name: str) -> tuple[str, str]:
    return ABOUT.get(name, (name.replace("_", " ").capitalize(), ""))


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _sockets(info: dict) -> list[tuple[str, str, bool, bool]]:
    """(name, type, optional, is widget) of every input in definition order."""
    widgets = {name for name, *_ in widget_names(info) if name}
    out = []
    for category in ("required", "optional"):
        for name, spec in ((info.get("input") or {}).get(category) or {}).items():
            typ = spec[0] if isinstance(spec, (list, tuple)) else spec
            out.append((name, "COMBO" if isinstance(typ, list) else typ, category == "optional", name in widgets))
    return out


def _depths(api: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def of(node_id, seen=()):
        if node_id not in depth:
            ups = [v[0] for v in api[node_id]["inputs"].values() if _is_link(v) and v[0] in api]
            depth[node_id] = 1 + max((of(u, seen + (node_id,)) for u in ups if u not in seen), default=0)
        return depth[node_id]
    for node_id in api:
        of(node_id)
    return depth


def _height(info: dict, node: dict) -> int:
    sockets = [s for s in _sockets(info) if not s[3]]
    rows = max(len(sockets), len(info.get("output") or []))
    widgets = [(n, t, o) for n, t, o, _ in widget_names(info) if n]
    tall = sum(100 if t == "STRING" and o.get("multiline") else 26 for n, t, o in widgets)
    return 40 + 22 * rows + tall + (30 if len(widgets) < len(widget_names(info)) else 0)


def api_to_ui(api: dict, name: str, info: dict | None = None) -> dict:
    """The stored UI-format graph for an API-format one (ids, titles and values kept)."""
    info = info or stored_object_info()
    ids = {key: int(key) for key in api}
    missing = sorted({n["class_type"] for n in api.values()} - set(info))
    if missing:
        raise SystemExit(f"{name}: no definition of {', '.join(missing)} (orchestrator/graphs/core_nodes.json)")
    depth = _depths(api)
    order = sorted(api, key=lambda k: (depth[k], ids[k]))
    nodes, links, y_at = {}, [], {}
    for key in order:  # columns by depth, stacked; COLUMNS columns to a band, bands downwards
        node, spec = api[key], info[api[key]["class_type"]]
        col = depth[key] - 1
        y = y_at.get(col, 260 if col == 0 else 0)
        h = _height(spec, node)
        y_at[col] = y + h + 40
        nodes[key] = {"id": ids[key], "type": node["class_type"], "pos": [(col % COLUMNS) * (WIDE + GAP), y],
                      "size": [WIDE, h],
                      "flags": {}, "order": order.index(key), "mode": 0, "inputs": [],
                      "outputs": [{"name": out_name, "type": out_type, "links": []} for out_type, out_name in
                                  zip(spec.get("output") or [], spec.get("output_name") or spec.get("output") or [])],
                      "title": node.get("_meta", {}).get("title") or spec.get("display_name") or node["class_type"],
                      "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": []}
    band_top = {0: 0}
    for band in range(1, max(depth.values()) // COLUMNS + 1):
        previous = [y_at[c] for c in y_at if c // COLUMNS == band - 1]
        band_top[band] = band_top[band - 1] + max(previous) + 2 * GAP
    for key in order:
        nodes[key]["pos"][1] += band_top[(depth[key] - 1) // COLUMNS]
    for key in order:
        node, spec, ui = api[key], info[api[key]["class_type"]], nodes[key]
        known = {s[0] for s in _sockets(spec)}
        unknown = sorted(set(node["inputs"]) - known)
        if unknown:
            raise SystemExit(f"{name}: node {key} ({node['class_type']}) has inputs its class lacks: {unknown}")
        for sname, stype, optional, is_widget in _sockets(spec):
            value = node["inputs"].get(sname)
            if is_widget and not _is_link(value):
                continue
            slot = {"name": sname, "type": stype, "link": None}
            if optional:
                slot["shape"] = 7
            if is_widget:
                slot["widget"] = {"name": sname}
            if _is_link(value):
                link_id = len(links) + 1
                origin = nodes[value[0]]
                links.append([link_id, origin["id"], value[1], ui["id"], len(ui["inputs"]),
                              origin["outputs"][value[1]]["type"]])
                origin["outputs"][value[1]]["links"].append(link_id)
                slot["link"] = link_id
            ui["inputs"].append(slot)
        ui["widgets_values"] = _widgets_values(node, spec)
    for ui in nodes.values():
        for index, out in enumerate(ui["outputs"]):
            out["slot_index"] = index
    title, description = about(name)
    note = {"id": max(ids.values()) + 1, "type": "Note", "pos": [0, 0], "size": [NOTE_W, 220], "flags": {},
            "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "title": title,
            "properties": {}, "widgets_values": [f"{title}\n\n{description}".strip()]}
    graph = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"podium/workflows/{name}")), "revision": 0,
             "last_node_id": note["id"], "last_link_id": len(links),
             "nodes": [nodes[k] for k in order] + [note], "links": links, "groups": [], "config": {},
             "extra": {"podium": {"layout": "scripts/workflows_ui.py"}}, "version": 0.4}
    return finish(graph, name)


def _widgets_values(node: dict, spec: dict) -> list:
    values = []
    for wname, typ, opts, extra in widget_names(spec):
        if wname is None:
            values.append("image")  # the upload button's value, as the editor saves it
            continue
        value = node["inputs"].get(wname)
        if value is None or _is_link(value):
            value = opts.get("default", typ[0] if isinstance(typ, list) and typ else "")
        values.append(value["__value__"] if isinstance(value, dict) and "__value__" in value else value)
        values += ["fixed", ""][:extra]
    return values


def finish(graph: dict, name: str) -> dict:
    """Title and description in `extra`, and a view that opens readable at the top-left."""
    title, description = about(name)
    note = next((n for n in graph["nodes"] if n["type"] == "Note"), None)
    if note is not None and not note["widgets_values"][0].startswith(title):
        note["title"], note["widgets_values"][0] = title, f"{title}\n\n{note['widgets_values'][0]}"
    xs = [n["pos"][0] for n in graph["nodes"]] + [n["pos"][0] + n["size"][0] for n in graph["nodes"]]
    ys = [n["pos"][1] for n in graph["nodes"]] + [n["pos"][1] + n["size"][1] for n in graph["nodes"]]
    fit = min(VIEW[0] / (max(xs) - min(xs)), VIEW[1] / (max(ys) - min(ys)))
    scale = round(min(1.0, max(READABLE, fit)), 2)
    graph["extra"] = {**graph.get("extra", {}),
                      "ds": {"scale": scale, "offset": [round(40 / scale - min(xs)), round(40 / scale - min(ys))]},
                      "podium": {**graph.get("extra", {}).get("podium", {}), "title": title,
                                 "description": description}}
    return graph


def store(path: Path, api: dict | None = None) -> Path:
    """Rewrite `path` (API or UI format) as the stored UI file and draw its thumbnail; with
    `api` (the graph in API format), from that graph's values."""
    from template_thumbnails import draw

    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else api
    if is_ui_format(data) and api is not None and "layout" not in data["extra"].get("podium", {}):
        data = revalue(data, api)  # hand-laid: keep the layout
    elif api is not None:
        data = api
    graph = finish(data, path.stem) if is_ui_format(data) else api_to_ui(data, path.stem)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(graph, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    draw(graph, graph["extra"]["podium"]["title"]).save(path.with_suffix(".jpg"), "JPEG", quality=88)
    return path


def revalue(ui: dict, api: dict) -> dict:
    """A UI graph's widget values rewritten from its API graph (same node ids) for the nodes'
    current definitions."""
    info = stored_object_info()
    for node in ui["nodes"]:
        twin = api.get(str(node["id"]))
        if twin is not None and node["type"] in info:
            node["widgets_values"] = _widgets_values(twin, info[node["type"]])
    return ui


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--to-api", metavar="NAME")
    parser.add_argument("--to-api-dir", metavar="DIR", type=Path)
    parser.add_argument("--from-api-dir", metavar="DIR", type=Path)
    args = parser.parse_args(argv)
    if args.to_api:
        print(json.dumps(load_workflow(args.to_api), indent=1))
        return 0
    if args.to_api_dir:
        args.to_api_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(WORKFLOWS_DIR.glob("*.json")):
            (args.to_api_dir / path.name).write_text(json.dumps(load_workflow(path), indent=1) + "\n")
            print(args.to_api_dir / path.name)
        return 0
    if args.from_api_dir:
        for api in sorted(args.from_api_dir.glob("*.json")):
            print(store(WORKFLOWS_DIR / api.name, json.loads(api.read_text(encoding="utf-8"))))
        return 0
    for path in args.files or sorted(WORKFLOWS_DIR.glob("*.json")):
        print(store(path))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
