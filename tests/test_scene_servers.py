"""Scene shots on ComfyUI servers without a server (issue 24, part 1): the stored core graph
(workflows/scene_wan22_5b.json) put into a preset's graph validates against ComfyUI 0.3.64's
recorded /object_info (tests/data/comfyui-0.3.64/object_info_scene.json, cut from
shared/reference's object_info_core.json) plus the pack's own nodes, with empty node_errors;
each server gets the chain when it has the classes and files, else keeps the in-process
fallbacks, said in one line per server with what to pull; the shot node sizes a shot as the
in-process path does; the Scene node asks for the clip only when there is a scene and loops
it over the narration. (tests/test_comfyui_scene.py runs it in a live ComfyUI.)"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from fake_comfy import node_classes
from orchestrator.graphs.workflow import find_node, load_workflow
from orchestrator.render import local, scenes
from orchestrator.render.embedded import object_info as pack_object_info
from orchestrator.render.presets import speak_with_piper
from orchestrator.servers import cinema, scene_graphs
from podium.engines import scene as engine
from podium.engines.script import parse_script
from podium.models import load_registry

DATA = Path(__file__).resolve().parent / "data" / "comfyui-0.3.64"
FOLDERS = {("UNETLoader", "unet_name"): "diffusion_models", ("CLIPLoader", "clip_name"): "text_encoders",
           ("VAELoader", "vae_name"): "vae"}
SHIPPED = {"diffusion_models": ["wan2.2_ti2v_5B_fp16.safetensors"], "vae": ["wan2.2_vae.safetensors"],
           "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl_fp16.safetensors"]}
SIZE, SEED = (640, 360), 7


def object_info(models: dict, pack: dict | None = None) -> dict:
    """ComfyUI 0.3.64's recorded core nodes + the pack's, the loaders listing `models`."""
    info = {**json.loads((DATA / "object_info_scene.json").read_text()), **(pack or pack_object_info())}
    info = copy.deepcopy(info)
    for (class_type, name), folder in FOLDERS.items():
        info[class_type]["input"]["required"][name][0] = list(models.get(folder, []))
    return info


def offer(name: str, models: dict, vram_gb: float = 24, pack: dict | None = None) -> cinema.ServerOffer:
    return cinema.ServerOffer(name, object_info(models, pack), {f: [] for f in FOLDERS.values()} | models, vram_gb)


class Server:
    def __init__(self, name):
        self.name = name


def preset_graph(name: str = "direct") -> dict:
    """A preset's graph with the Scene node the orchestrator adds for a script with marks."""
    graph = load_workflow(name)
    return scenes.scene_graph(graph, SIZE, SEED, *scenes.generators(type("P", (), {"name": name, "image_model": None})))


def per_server(offers: dict, graph: dict | None = None) -> tuple[dict, list[str]]:
    said, graph = [], graph or preset_graph()
    out = scene_graphs.per_server([Server(n) for n in offers], {n: graph for n in offers}, load_registry(),
                                  "the shots in-process: a title card", say=said.append,
                                  read=lambda server: offers[server.name])
    return out, said


def test_the_stored_graph_is_comfyuis_5b_template_feeding_the_scene_node():
    graph = load_workflow("scene_wan22_5b")
    by_title = {n["_meta"]["title"]: n for n in graph.values()}
    assert by_title["Scene diffusion model"]["inputs"]["unet_name"] == "wan2.2_ti2v_5B_fp16.safetensors"
    assert by_title["Scene text encoder"]["inputs"]["type"] == "wan"
    assert by_title["Scene VAE"]["inputs"]["vae_name"] == "wan2.2_vae.safetensors"
    sampler = by_title["Scene sampler"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"], sampler["scheduler"]) == (20, 5.0, "uni_pc", "simple")
    assert by_title["Scene model sampling"]["inputs"]["shift"] == 8.0
    latent = by_title["Scene latent"]["inputs"]
    shot = find_node(graph, "Scene shot")
    assert [latent[k] for k in ("width", "height", "length", "start_image")] == [[shot, i] for i in range(1, 5)]
    assert by_title["Scene"]["inputs"]["clip"] == [find_node(graph, "Scene frames"), 0]
    assert by_title["Scene"]["inputs"]["clip_fps"] == 24


@pytest.mark.parametrize("preset", ["direct", "direct_fast", "cinema_s2v"])
def test_the_chain_in_a_presets_graph_validates_against_recorded_0_3_64(preset):
    graph = preset_graph(preset)
    if preset == "cinema_s2v":
        graph = speak_with_piper(graph)
    out, said = per_server({"gpu0": offer("gpu0", SHIPPED)}, graph)
    merged = out["gpu0"]
    assert said == ["scenes: gpu0 makes the shots with scene_wan22_5b (wan2.2_ti2v_5B_fp16.safetensors, "
                    "umt5_xxl_fp16.safetensors, wan2.2_vae.safetensors)"]
    classes = {**node_classes(object_info(SHIPPED)), **node_classes({k: v for k, v in pack_object_info().items()})}
    if preset == "cinema_s2v":  # its own core classes: recorded in the cinema data
        classes = {**node_classes(json.loads((DATA / "object_info_cinema.json").read_text())), **classes}
    outputs, node_errors = local.check_prompt(_list_own_files(merged, classes), classes)
    assert node_errors == {} and outputs == [find_node(merged, "Save video")]
    scene = merged[find_node(merged, "Scene")]["inputs"]
    shot = merged[find_node(merged, "Scene shot")]["inputs"]
    assert scene["clip"] == [find_node(merged, "Scene frames"), 0]
    assert shot["script"] == [find_node(merged, "Script"), 0] and shot["speech"] == [find_node(merged, "Voice"), 0]
    assert (shot["width"], shot["height"]) == SIZE
    assert merged[find_node(merged, "Scene sampler")]["inputs"]["seed"] == SEED
    assert len(merged) == len(graph) + len(scene_graphs.shot_chain(load_workflow("scene_wan22_5b")))


def _list_own_files(graph: dict, classes: dict) -> dict:
    """The graph as is; the file lists not of the scene chain (a preset's own models, its input
    files) are given the graph's values, as a server that has them lists them."""
    for node in graph.values():
        cls = classes.get(node["class_type"])
        required = cls.INPUT_TYPES().get("required", {}) if cls else {}
        for name, value in node["inputs"].items():
            spec = required.get(name)
            if isinstance(value, str) and spec and isinstance(spec[0], list) and value not in spec[0] \
                    and value.rsplit(".", 1)[-1] in ("safetensors", "png", "wav"):
                spec[0].append(value)
    return graph


def test_a_broken_chain_fails_the_same_check():
    out, _ = per_server({"gpu0": offer("gpu0", SHIPPED)})
    merged = out["gpu0"]
    merged[find_node(merged, "Scene latent")]["inputs"]["length"] = [find_node(merged, "Scene shot"), 0]  # a STRING
    classes = {**node_classes(object_info(SHIPPED)), **node_classes(pack_object_info())}
    with pytest.raises(local.PromptError):
        local.check_prompt(merged, classes)


def test_each_server_says_which_shots_it_makes_and_what_to_pull():
    no_vae = {k: v for k, v in SHIPPED.items() if k != "vae"}
    old = json.loads(json.dumps(pack_object_info()))
    del old["PodiumScene"]["input"]["optional"]["clip"]
    core = {k: v for k, v in object_info(SHIPPED).items() if k != "Wan22ImageToVideoLatent"}
    offers = {"full": offer("full", SHIPPED), "novae": offer("novae", no_vae), "old": offer("old", SHIPPED, pack=old),
              "oldcore": cinema.ServerOffer("oldcore", core, SHIPPED, 24)}
    graph = preset_graph()
    out, said = per_server(offers, graph)
    assert find_node(out["full"], "Scene frames")
    for name in ("novae", "old", "oldcore"):
        assert out[name] == graph  # the Scene node alone: its in-process fallbacks
    assert said[1] == ("scenes: novae makes the shots in-process: a title card (scene_wan22_5b: missing "
                       "wan2.2_vae.safetensors (models/vae); on the server run: podium models pull "
                       "wan22-vae-comfy --comfyui-dir <its ComfyUI folder>)")
    assert said[2].endswith("(scene_wan22_5b: no node PodiumScene with a clip input (update the Podium pack there))")
    assert said[3].endswith("(scene_wan22_5b: no node Wan22ImageToVideoLatent (update ComfyUI))")
    no_pack = {k: v for k, v in object_info(SHIPPED).items() if not k.startswith("Podium")}
    _, said = per_server({"nopack": cinema.ServerOffer("nopack", no_pack, SHIPPED, 24)}, graph)
    assert said[0].endswith("(scene_wan22_5b: no node PodiumSceneShot (update the Podium pack there))")


def test_a_server_that_cannot_be_read_keeps_the_fallbacks():
    said, graph = [], preset_graph()

    def read(server):
        raise ConnectionError("refused")
    out = scene_graphs.per_server([Server("gone")], {"gone": graph}, load_registry(), "the shots in-process: "
                                  "a title card", say=said.append, read=read)
    assert out["gone"] == graph and said == ["scenes: gone makes the shots in-process: a title card (cannot read "
                                             "what it has: ConnectionError: refused)"]


def test_the_fallback_line_names_what_the_scene_node_tries():
    assert scenes.fallback_line(scenes.OFF, scenes.OFF) == "the shots in-process: a title card"
    assert scenes.fallback_line("wan2.2-ti2v-5b", "sd15") == ("the shots in-process: wan2.2-ti2v-5b in-process "
                                                              "where installed, else a still from sd15 with the "
                                                              "camera move, else a title card")


def test_a_shot_is_sized_and_timed_as_the_in_process_path():
    still = np.full((720, 1280, 3), 200, np.uint8)
    scenes_ = ["", "a lava lake, push-in", "a hall with the presenter, pan left"]
    bounds = [(0.0, 1.0), (1.0, 3.1), (3.1, 12.0)]
    req = engine.shot_request(scenes_, bounds, 1280, 720, 1280, 5.0, still)
    assert (req.segment, req.width, req.height) == (1, 1280, 704)  # Wan 2.2 5B's own size
    assert req.prompt == "a lava lake, camera push-in" and req.start_image is None
    assert req.frames == 4 * round(2.1 * 24 / 4) + 1  # the narration's length at 24 fps, 4k + 1
    req = engine.shot_request(scenes_[2:], bounds[2:], 1080, 1080, 1280, 5.0, still)
    assert (req.width, req.height) == (960, 960) and req.frames == 121  # by area; at most 5 s
    assert req.start_image.shape == (960, 960, 3)  # with the presenter: image-to-video
    assert engine.shot_request(["", ""], bounds[:2], 640, 360) is None


def test_the_scene_node_asks_for_the_clip_only_with_a_scene_and_loops_it():
    from podium.engines.speech import Speech
    from podium.nodes.scene import PodiumScene
    from podium.nodes.scene_shot import PodiumSceneShot

    node = PodiumScene()
    assert node.check_lazy_status(parse_script("No scene here.")) == []
    with_scene = parse_script("[scene: a lava lake, push-in] It glows.")
    assert node.check_lazy_status(with_scene) == ["clip"]
    speech = Speech(np.zeros(16000 * 2, np.float32), 16000, [], [(0.0, 2.0)])
    prompt, w, h, length, start = PodiumSceneShot().plan(with_scene, speech, 64, 64, 64, 1.0)
    assert (prompt, w, h, length, start) == ("a lava lake, camera push-in", 32, 32, 25, None)  # 64 by area
    clip = np.linspace(0, 1, 25)[:, None, None, None] * np.ones((25, 32, 32, 3), np.float32)
    visual, line = node.make(with_scene, speech, 64, 64, scenes.OFF, scenes.OFF, 0, 0, 64, 1.0, clip=clip, clip_fps=24)
    assert line == ("scene 'a lava lake': Wan 2.2 TI2V 5B on ComfyUI core nodes (text-to-video), looped with "
                    "a cross-fade")
    frames = [visual.render(t) for t in (0.0, 0.1, 0.2, 1.3, 1.9)]
    assert all(f.shape == (64, 64, 3) for f in frames)
    assert len({int(f.mean()) for f in frames}) > 3  # it moves over the whole narration, past the clip


def test_podium_generate_says_per_server_which_shots_and_renders(tmp_path):
    """`podium generate --server URL` with scene marks, the server a FakeComfy running the pack's
    own nodes (no core video nodes): the server is read, keeps the Scene node's fallbacks (the
    draft's title cards), says so in one line, and the MP4 has both streams within a frame."""
    from conftest import ffprobe, run_cli, streams
    from fake_comfy import FakeComfy

    server = FakeComfy(tmp_path / "server", execute="podium").start()
    try:
        assert server.child_ready.wait(120), "the fake's executor did not start"
        script = tmp_path / "talk.txt"
        script.write_text("Hello there.\n\n[scene: a lava lake glowing at night, push-in] It glows.\n")
        out = tmp_path / "talk.mp4"
        rc, _, err = run_cli("generate", "--script", script, "--out", out, "--preset", "draft", "--size", "160x96",
                             "--cache-dir", tmp_path / "cache", "--quiet", "--server", server.url, timeout=400)
    finally:
        server.stop()
    assert rc == 0, err
    name = server.url.split("//")[1]
    line = next(x for x in err.splitlines() if x.startswith("scenes:"))
    assert line.startswith(f"scenes: {name} makes the shots in-process: a title card (scene_wan22_5b: no node ")
    assert "CLIPLoader" in line and "Wan22ImageToVideoLatent" in line
    info = ffprobe(out)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert abs(v["duration"] - a["duration"]) <= 1 / 25
