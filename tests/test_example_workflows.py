"""The editor templates (custom_nodes/podium/example_workflows) without a server: each is a
well-formed UI-format workflow whose widgets match the nodes' specs, converts to the API graph
the editor would queue (recorded /object_info of ComfyUI 0.3.64 for the core nodes), and has the
JPEG thumbnail the template browser asks for. tests/test_comfyui_templates.py loads them in a
real editor and renders the checkpoint one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.ui_format import ui_to_api, widget_names
from podium.nodes import NODE_CLASS_MAPPINGS

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "custom_nodes/podium/example_workflows"
DATA = REPO / "tests/data/comfyui-0.3.64"
DATA_038 = REPO / "tests/data/comfyui-0.38"
NAMES = sorted(p.stem for p in TEMPLATES.glob("*.json"))


def object_info() -> dict:
    info = json.loads((DATA / "object_info_subset.json").read_text())
    info.update(json.loads((DATA / "object_info_wan.json").read_text()))
    info.update(json.loads((DATA / "object_info_cinema.json").read_text()))
    for name, entry in json.loads((DATA_038 / "object_info_infinitetalk.json").read_text()).items():
        if not name.startswith("_") and name not in info:  # InfiniteTalk's: only current ComfyUI has them
            info[name] = entry
    for name, cls in NODE_CLASS_MAPPINGS.items():
        info[name] = {"input": json.loads(json.dumps(cls.INPUT_TYPES())), "display_name": name,
                      "output": list(cls.RETURN_TYPES)}
    return info


def test_the_templates_are_there():
    assert NAMES == ["podium_checkpoint_presenter", "podium_cinema_humo", "podium_cinema_infinitetalk",
                     "podium_cinema_s2v", "podium_direct_draft", "podium_idle_musetalk",
                     "podium_video_model_lipsync"]


@pytest.mark.parametrize("name", NAMES)
def test_template_is_well_formed_and_has_a_thumbnail(name):
    workflow = json.loads((TEMPLATES / f"{name}.json").read_text())
    assert workflow["version"] == 0.4
    assert workflow["last_node_id"] == max(n["id"] for n in workflow["nodes"])
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, a, a_slot, b, b_slot, kind in workflow["links"]:
        assert link_id in nodes[a]["outputs"][a_slot]["links"]
        assert nodes[b]["inputs"][b_slot]["link"] == link_id
        assert nodes[a]["outputs"][a_slot]["type"] == nodes[b]["inputs"][b_slot]["type"] == kind
    info = object_info()
    for n in workflow["nodes"]:
        if n["type"] == "Note":
            continue
        assert len(n["widgets_values"]) == sum(1 + extra for _, _, _, extra in widget_names(info[n["type"]])), \
            f"{name}: node {n['type']} widgets"
    with Image.open(TEMPLATES / f"{name}.jpg") as thumbnail:  # frontend 1.27 asks for <name>.jpg
        assert thumbnail.format == "JPEG" and thumbnail.width >= 256


def test_checkpoint_template_feeds_the_drawn_picture_to_the_presenter():
    graph = ui_to_api(json.loads((TEMPLATES / "podium_checkpoint_presenter.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    ckpt, _ = by_class["CheckpointLoaderSimple"]
    decode, vae_decode = by_class["VAEDecode"]
    assert vae_decode["inputs"]["vae"] == [ckpt, 2]
    presenter, node = by_class["PodiumPresenter"]
    assert node["inputs"]["portrait"] == [decode, 0]
    assert by_class["PodiumLipSync"][1]["inputs"]["visual"] == [presenter, 0]
    assert by_class["KSampler"][1]["inputs"]["model"] == [ckpt, 0]


def test_video_template_lip_syncs_the_frames_at_the_clips_fps():
    graph = ui_to_api(json.loads((TEMPLATES / "podium_video_model_lipsync.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    decode, _ = by_class["VAEDecode"]
    lip, node = by_class["PodiumLipSync"]
    assert node["inputs"]["frames"] == [decode, 0] and "visual" not in node["inputs"]
    save = by_class["PodiumSaveVideo"][1]["inputs"]
    assert save["visual"] == [lip, 0] and save["fps"] == node["inputs"]["fps"] == 24


def test_idle_template_plays_the_idle_clip_under_musetalk_like_the_balanced_graph():
    graph = ui_to_api(json.loads((TEMPLATES / "podium_idle_musetalk.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    presenter, _ = by_class["PodiumPresenter"]
    idle, idle_node = by_class["PodiumIdleClip"]
    lip, lip_node = by_class["PodiumMuseTalk"]
    assert idle_node["inputs"]["presenter"] == [presenter, 0] and lip_node["inputs"]["visual"] == [idle, 0]
    assert by_class["PodiumSaveVideo"][1]["inputs"]["visual"] == [lip, 0]
    assert by_class["PodiumSaveIdleClip"][1]["inputs"]["visual"] == [idle, 0]
    balanced = json.loads((REPO / "workflows/direct_balanced.json").read_text())
    same = {n["class_type"]: n["inputs"] for n in balanced.values()}
    for cls in ("PodiumIdleClip", "PodiumMuseTalk"):
        node = by_class[cls][1]["inputs"]
        shared = [k for k, v in same[cls].items() if not isinstance(v, list)]
        assert {k: node[k] for k in shared} == {k: same[cls][k] for k in shared}, cls
