"""The stored graphs (workflows/*.json, also ComfyUI's templates) without a server: each is a
well-formed UI-format workflow whose widgets match the nodes' current definitions, converts to a
valid API graph with every input accounted for (a file left behind by a node change fails here:
regenerate it with scripts/workflows_ui.py), opens readable, and has the JPEG thumbnail the
template browser asks for. tests/test_comfyui_templates.py loads them in a real editor."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.render import local
from orchestrator.graphs.node_defs import stored_object_info
from orchestrator.graphs.ui_format import is_ui_format, ui_to_api, widget_names
from orchestrator.graphs.workflow import link_templates, load_workflow
from podium.nodes import NODE_CLASS_MAPPINGS

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "workflows"
NAMES = sorted(p.stem for p in TEMPLATES.glob("*.json"))


def object_info() -> dict:
    return stored_object_info()


def test_the_graphs_are_there_once():
    assert NAMES == ["checkpoint_presenter", "cinema_humo", "cinema_infinitetalk", "cinema_s2v", "cloned_voice", "direct",
                     "direct_balanced", "direct_fast", "direct_music", "direct_quality", "guided", "idle_clip",
                     "idle_musetalk", "music", "presenter_image", "scene_wan22_5b", "sfx", "video_model_lipsync"]
    assert all(is_ui_format(json.loads((TEMPLATES / f"{n}.json").read_text())) for n in NAMES)


def test_the_repository_holds_no_symlinks_and_comfy_up_links_the_templates(tmp_path):
    """A pack under a ComfyUI custom-node policy must hold no symlinks; with --base-directory
    <repo> ComfyUI scans custom_nodes/podium/, so `podium comfy up` links workflows/ there."""
    tracked = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True)
    assert not [line for line in tracked.stdout.splitlines() if line.startswith("120000")]
    link = link_templates(tmp_path)
    assert link == tmp_path / "example_workflows" and link.resolve() == TEMPLATES.resolve()
    assert link_templates(tmp_path) == link  # already there: left as it is


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
            f"{name}: node {n['type']} widgets (stale? regenerate with scripts/workflows_ui.py)"
    about = workflow["extra"]["podium"]
    assert about["title"] and about["description"]
    assert any(n["type"] == "Note" and about["title"] in n["widgets_values"][0] for n in workflow["nodes"])
    assert workflow["extra"]["ds"]["scale"] >= 0.8  # the editor hides node text below ~0.6
    with Image.open(TEMPLATES / f"{name}.jpg") as thumbnail:  # frontend 1.27 asks for <name>.jpg
        assert thumbnail.format == "JPEG" and thumbnail.width >= 256


@pytest.mark.parametrize("name", NAMES)
def test_stored_graph_converts_with_every_input_accounted_for(name):
    """The API graph the orchestrator runs: every required input set, no input the node lacks,
    links only between outputs and inputs of the same type."""
    info = object_info()
    graph = load_workflow(name)
    workflow = json.loads((TEMPLATES / f"{name}.json").read_text())
    assert len(graph) == sum(n["type"] != "Note" for n in workflow["nodes"])
    for node_id, node in graph.items():
        spec = info[node["class_type"]]["input"]
        required, optional = spec.get("required", {}), spec.get("optional", {})
        assert set(required) <= set(node["inputs"]), (name, node_id, set(required) - set(node["inputs"]))
        assert set(node["inputs"]) <= set(required) | set(optional), (name, node_id)
        for input_name, value in node["inputs"].items():
            if isinstance(value, list):
                origin = graph[value[0]]["class_type"]
                want = {**required, **optional}[input_name][0]
                assert info[origin]["output"][value[1]] == want or want == "*", (name, node_id, input_name)
    if name == "direct":  # the draft runs as stored: a graph the pack itself accepts
        local.validate(copy.deepcopy(graph), NODE_CLASS_MAPPINGS)


def test_infinitetalk_template_says_which_comfyui_has_its_node():
    about = json.loads((TEMPLATES / "cinema_infinitetalk.json").read_text())["extra"]["podium"]
    assert "WanInfiniteTalkToVideo" in about["description"] and "0.38" in about["description"]


def test_checkpoint_template_feeds_the_drawn_picture_to_the_presenter():
    graph = ui_to_api(json.loads((TEMPLATES / "checkpoint_presenter.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    ckpt, _ = by_class["CheckpointLoaderSimple"]
    decode, vae_decode = by_class["VAEDecode"]
    assert vae_decode["inputs"]["vae"] == [ckpt, 2]
    presenter, node = by_class["PodiumPresenter"]
    assert node["inputs"]["portrait"] == [decode, 0]
    assert by_class["PodiumLipSync"][1]["inputs"]["visual"] == [presenter, 0]
    assert by_class["KSampler"][1]["inputs"]["model"] == [ckpt, 0]


def test_video_template_lip_syncs_the_frames_at_the_clips_fps():
    graph = ui_to_api(json.loads((TEMPLATES / "video_model_lipsync.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    decode, _ = by_class["VAEDecode"]
    lip, node = by_class["PodiumLipSync"]
    assert node["inputs"]["frames"] == [decode, 0] and "visual" not in node["inputs"]
    save = by_class["PodiumSaveVideo"][1]["inputs"]
    assert save["visual"] == [lip, 0] and save["fps"] == node["inputs"]["fps"] == 24


def test_idle_template_plays_the_idle_clip_under_musetalk_like_the_balanced_graph():
    graph = ui_to_api(json.loads((TEMPLATES / "idle_musetalk.json").read_text()), object_info())
    by_class = {n["class_type"]: (k, n) for k, n in graph.items()}
    presenter, _ = by_class["PodiumPresenter"]
    idle, idle_node = by_class["PodiumIdleClip"]
    lip, lip_node = by_class["PodiumMuseTalk"]
    assert idle_node["inputs"]["presenter"] == [presenter, 0] and lip_node["inputs"]["visual"] == [idle, 0]
    assert by_class["PodiumSaveVideo"][1]["inputs"]["visual"] == [lip, 0]
    assert by_class["PodiumSaveIdleClip"][1]["inputs"]["visual"] == [idle, 0]
    balanced = load_workflow("direct_balanced")
    same = {n["class_type"]: n["inputs"] for n in balanced.values()}
    for cls in ("PodiumIdleClip", "PodiumMuseTalk"):
        node = by_class[cls][1]["inputs"]
        shared = [k for k, v in same[cls].items() if not isinstance(v, list)]
        assert {k: node[k] for k in shared} == {k: same[cls][k] for k in shared}, cls


HAND_LAID = {"checkpoint_presenter", "idle_musetalk", "video_model_lipsync"}  # groups and notes of their own


@pytest.mark.parametrize("name", sorted(set(NAMES) - HAND_LAID))
def test_the_script_makes_the_stored_file_from_its_api_graph(name):
    """scripts/workflows_ui.py is deterministic and loses nothing: the API graph a stored file
    runs as gives back the same file (what the integrator relies on to regenerate graphs)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("workflows_ui", REPO / "scripts/workflows_ui.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stored = json.loads((TEMPLATES / f"{name}.json").read_text())
    assert script.api_to_ui(load_workflow(name), name) == stored


def test_converting_the_stored_graphs_imports_no_torch():
    """The orchestrator converts with the pack's node definitions and still never imports torch."""
    code = ("import sys; from orchestrator.graphs.workflow import load_workflow; "
            f"[load_workflow(n) for n in {NAMES!r}]; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
