"""UI-format workflows convert to the API graph the ComfyUI editor itself would queue.

The reference case is recorded: ui_workflow_serialized_by_editor.json and the frontend's own
graphToPrompt of it (ui_to_api_via_frontend.json), from ComfyUI 0.3.64 + frontend 1.27.10.
Node definitions are /object_info entries of that server (tests/data/comfyui-0.3.64).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.graphs.ui_format import is_ui_format, load_any_workflow, ui_to_api, widget_names
from orchestrator.graphs.workflow import WorkflowError, load_workflow

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "comfyui-0.3.64"
OBJECT_INFO = json.loads((DATA / "object_info_subset.json").read_text())
# The probe node of the recording is not in object_info_core.json; this entry is rebuilt from
# the editor file's own slots (types, and shape 7 = optional) and the title the frontend gave.
OBJECT_INFO["ProbeSolidImage"] = {
    "input": {"required": {"width": ["INT", {"default": 64}], "height": ["INT", {"default": 64}],
                           "batch": ["INT", {"default": 1}], "r": ["FLOAT", {}], "g": ["FLOAT", {}],
                           "b": ["FLOAT", {}]},
              "optional": {"steps": ["INT", {"default": 0}], "sleep_s": ["FLOAT", {"default": 0.0}]}},
    "output": ["IMAGE"], "output_is_list": [False], "output_name": ["image"], "name": "ProbeSolidImage",
    "display_name": "Probe Solid Image", "category": "probe", "output_node": False}


def node(id_, type_, widgets=(), inputs=(), outputs=(), mode=0, title=None):
    """A UI node as the editor saves it; inputs/outputs: (name, type, link or links)."""
    n = {"id": id_, "type": type_, "mode": mode, "widgets_values": list(widgets),
         "inputs": [{"name": name, "type": typ, "link": link} for name, typ, link in inputs],
         "outputs": [{"name": name, "type": typ, "links": links} for name, typ, links in outputs]}
    if title:
        n["title"] = title
    return n


def workflow(*nodes, links=()):
    return {"last_node_id": max(n["id"] for n in nodes), "nodes": list(nodes),
            "links": [list(link) for link in links], "version": 0.4}


def test_the_recorded_editor_file_converts_exactly_as_the_frontend_did():
    ui = json.loads((DATA / "ui_workflow_serialized_by_editor.json").read_text())
    expected = json.loads((DATA / "ui_to_api_via_frontend.json").read_text())["graphToPrompt"]["output"]
    got = ui_to_api(ui, OBJECT_INFO)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # same keys in the same order, too
    older = json.loads((DATA / "ui_to_api_via_frontend.json").read_text())["ui_workflow_in"]
    assert ui_to_api(older, OBJECT_INFO) == expected  # the older save (no widget slots) too


def test_seed_control_value_is_skipped_v1():
    ksampler = node(5, "KSampler", [42, "randomize", 20, 7.5, "euler", "normal", 1.0],
                    [("model", "MODEL", 1), ("positive", "CONDITIONING", 2), ("negative", "CONDITIONING", 3),
                     ("latent_image", "LATENT", 4)], [("LATENT", "LATENT", [])])
    api = ui_to_api(workflow(
        node(1, "CheckpointLoaderSimple", ["v1-5.safetensors"], outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [5, 6])]),
        node(2, "CLIPTextEncode", ["a cat"], [("clip", "CLIP", 5)], [("CONDITIONING", "CONDITIONING", [2])]),
        node(3, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 6)], [("CONDITIONING", "CONDITIONING", [3])]),
        node(4, "EmptyLatentImage", [512, 512, 1], outputs=[("LATENT", "LATENT", [4])]), ksampler,
        links=[(1, 1, 0, 5, 0, "MODEL"), (2, 2, 0, 5, 1, "CONDITIONING"), (3, 3, 0, 5, 2, "CONDITIONING"),
               (4, 4, 0, 5, 3, "LATENT"), (5, 1, 1, 2, 0, "CLIP"), (6, 1, 1, 3, 0, "CLIP")]), OBJECT_INFO)
    assert api["5"]["inputs"] == {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
                                  "scheduler": "normal", "denoise": 1.0, "model": ["1", 0],
                                  "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}
    assert api["5"]["_meta"] == {"title": "KSampler"} and api["2"]["inputs"] == {"text": "a cat", "clip": ["1", 1]}
    # a file saved without the control value still lines up
    ksampler["widgets_values"].remove("randomize")
    assert ui_to_api(workflow(ksampler), OBJECT_INFO)["5"]["inputs"]["steps"] == 20


def test_v3_combo_shape_and_v3_control_after_generate():
    assert OBJECT_INFO["SaveVideo"]["input"]["required"]["format"][0] == "COMBO"  # V3 shape
    assert [n for n, *_ in widget_names(OBJECT_INFO["SaveVideo"])] == ["filename_prefix", "format", "codec"]
    api = ui_to_api(workflow(
        node(1, "PrimitiveInt", [7, "fixed"], outputs=[("INT", "INT", [])]),
        node(2, "SaveVideo", ["podium/clip", "mp4", "h264"], [("video", "VIDEO", None)]),
        node(3, "LatentConcat", ["-y"], [("samples1", "LATENT", None), ("samples2", "LATENT", None)]),
        node(4, "SaveVideo", ["podium/defaults"])), OBJECT_INFO)
    assert api["1"]["inputs"] == {"value": 7}
    assert api["2"]["inputs"] == {"filename_prefix": "podium/clip", "format": "mp4", "codec": "h264"}
    assert api["3"]["inputs"] == {"dim": "-y"} and api["3"]["_meta"]["title"] == "LatentConcat"
    assert api["4"]["inputs"] == {"filename_prefix": "podium/defaults", "format": "auto", "codec": "auto"}


def test_widget_converted_to_input_takes_the_link_and_primitive_nodes_give_their_value():
    api = ui_to_api(workflow(
        node(1, "PrimitiveInt", [96, "fixed"], outputs=[("INT", "INT", [1])]),
        node(2, "PrimitiveNode", [48, "fixed"], outputs=[("INT", "INT", [2])], title="height"),
        node(3, "EmptyImage", [8, 8, 1, 0], [("width", "INT", 1), ("height", "INT", 2)],
             [("IMAGE", "IMAGE", [3])]),
        node(4, "SaveImage", ["out"], [("images", "IMAGE", 3)]),
        links=[(1, 1, 0, 3, 0, "INT"), (2, 2, 0, 3, 1, "INT"), (3, 3, 0, 4, 0, "IMAGE")]), OBJECT_INFO)
    assert set(api) == {"1", "3", "4"}
    assert api["3"]["inputs"] == {"width": ["1", 0], "height": 48, "batch_size": 1, "color": 0}


def _chain(mode: int) -> dict:
    """EmptyImage -> ImageScale (with `mode`) -> SaveImage; and a LoadImage on ImageScale's other side."""
    return workflow(
        node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
        node(2, "ImageScale", ["bilinear", 16, 16, "disabled"], [("image", "IMAGE", 1)],
             [("IMAGE", "IMAGE", [2])], mode=mode, title="Scale"),
        node(3, "SaveImage", ["out"], [("images", "IMAGE", 2)], title="Save"),
        node(4, "LoadImage", ["face.png", "image"], outputs=[("IMAGE", "IMAGE", []), ("MASK", "MASK", [])]),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE")])


def test_bypassed_node_passes_its_matching_input_through():
    api = ui_to_api(_chain(4), OBJECT_INFO)
    assert set(api) == {"1", "3", "4"}
    assert api["3"]["inputs"] == {"filename_prefix": "out", "images": ["1", 0]}
    assert api["4"]["inputs"] == {"image": "face.png"}  # the upload button's value is not sent


def test_bypass_without_an_input_of_that_type_leaves_the_input_unset():
    ui = _chain(4)
    ui["nodes"][1]["inputs"][0]["type"] = "LATENT"
    assert ui_to_api(ui, OBJECT_INFO)["3"]["inputs"] == {"filename_prefix": "out"}


def test_muted_node_is_dropped_with_its_links():
    api = ui_to_api(_chain(2), OBJECT_INFO)
    assert set(api) == {"1", "3", "4"}
    assert api["3"]["inputs"] == {"filename_prefix": "out"}


def test_reroutes_and_notes_make_no_api_nodes():
    api = ui_to_api(workflow(
        node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
        node(2, "Reroute", [], [("", "*", 1)], [("", "IMAGE", [2])]),
        node(3, "Reroute", [], [("", "*", 2)], [("", "IMAGE", [3])]),
        node(4, "SaveImage", ["out"], [("images", "IMAGE", 3)]),
        node(5, "Note", ["remember the milk"]), node(6, "MarkdownNote", ["# Title"]),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "*"), (3, 3, 0, 4, 0, "IMAGE")]), OBJECT_INFO)
    assert set(api) == {"1", "4"}
    assert api["4"]["inputs"]["images"] == ["1", 0]


def test_missing_and_named_widget_values():
    assert ui_to_api(workflow(node(1, "EmptyImage", [64])), OBJECT_INFO)["1"]["inputs"] == \
        {"width": 64, "height": 512, "batch_size": 1, "color": 0}  # the rest: their defaults
    named = node(1, "EmptyImage")
    named["widgets_values"] = {"height": 32, "width": 16}
    assert ui_to_api(workflow(named), OBJECT_INFO)["1"]["inputs"]["height"] == 32
    lists = node(1, "SaveImage", [["a", "b"]])  # an array value is boxed, as the editor does
    assert ui_to_api(workflow(lists), OBJECT_INFO)["1"]["inputs"]["filename_prefix"] == {"__value__": ["a", "b"]}


def test_unknown_node_class_and_subgraphs_are_explained():
    with pytest.raises(WorkflowError, match='node "Mystery" \\(#1\\).*install the node pack'):
        ui_to_api(workflow(node(1, "NoSuchNode", title="Mystery")), OBJECT_INFO)
    ui = workflow(node(1, "EmptyImage", [8, 8, 1, 0]))
    ui["definitions"] = {"subgraphs": [{"id": "abc"}]}
    with pytest.raises(WorkflowError, match="subgraphs"):
        ui_to_api(ui, OBJECT_INFO)


def test_load_any_workflow_accepts_both_formats(tmp_path):
    asked = []

    def provider():
        asked.append(1)
        return OBJECT_INFO
    api = load_any_workflow(REPO / "workflows" / "direct.json", provider)  # stored: the pack's nodes
    assert api == load_workflow("direct") and api["1"]["class_type"] == "PodiumDirectScript" and not asked
    ui_file = tmp_path / "ui.json"
    ui_file.write_text((DATA / "ui_workflow_serialized_by_editor.json").read_text())
    assert is_ui_format(json.loads(ui_file.read_text()))
    assert load_any_workflow(ui_file, provider)["2"]["class_type"] == "SaveImage" and asked == [1]
    assert load_any_workflow(ui_file, OBJECT_INFO)["1"]["inputs"]["width"] == 64


def test_load_workflow_converts_a_users_ui_file_with_the_packs_nodes(tmp_path):
    """No server needed for a UI-format file of Podium's nodes; an unknown class says what to do."""
    stored = json.loads((REPO / "workflows" / "direct.json").read_text())
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(stored))
    assert load_workflow(mine) == load_workflow("direct")
    stored["nodes"][0]["type"] = "SomeoneElsesNode"
    mine.write_text(json.dumps(stored))
    with pytest.raises(WorkflowError, match=r"mine.json: node .*'SomeoneElsesNode'.*--server"):
        load_workflow(mine)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(WorkflowError, match="not a ComfyUI workflow"):
        load_workflow(tmp_path / "bad.json")
