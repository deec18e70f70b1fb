"""The cinema preset's planning, torch-free: which graph each server gets (from its recorded
/object_info and its /models lists), the model variant and size its GPU memory takes, what a
server that can run none is told, the preset choice with and without servers, and segments
cut between sentences to what one generation covers.

Servers are tests/fake_comfy.FakeComfy on real loopback sockets, answering ComfyUI 0.3.64's
recorded /object_info for the core nodes the cinema graphs use (tests/data/comfyui-0.3.64/
object_info_cinema.json, cut from shared/reference's object_info_core.json) plus the pack's
own. A "current" ComfyUI (0.38.x) is that plus WanInfiniteTalkToVideo, which 0.3.64 lacks.
"""
from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fake_comfy import FakeComfy
from orchestrator.servers import cinema
from orchestrator.render import presets
from orchestrator.render.embedded import object_info as pack_object_info
from orchestrator.servers.remote import ComfyInstance
from orchestrator.graphs.workflow import find_node, load_workflow
from podium.engines.script import parse_script
from podium.errors import UsageError
from podium.models import load_registry

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "comfyui-0.3.64"
GB = 1024 ** 3
GRAPHS = ["cinema_infinitetalk", "cinema_s2v", "cinema_humo"]
SIZES = [{"vram_gb": 0, "size": "832x480"}, {"vram_gb": 44, "size": "1280x720"}]
# Which model folder each loader input lists, as ComfyUI's loaders do.
LOADER_FOLDERS = {("UNETLoader", "unet_name"): "diffusion_models", ("CLIPLoader", "clip_name"): "text_encoders",
                  ("VAELoader", "vae_name"): "vae", ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
                  ("CLIPVisionLoader", "clip_name"): "clip_vision", ("LoraLoaderModelOnly", "lora_name"): "loras",
                  ("ModelPatchLoader", "name"): "model_patches"}
# Current ComfyUI's InfiniteTalk node (comfy_extras/nodes_wan.py, 0.38.x): the class is what counts here.
INFINITETALK = {"input": {"required": {"model": ["MODEL", {}], "model_patch": ["MODEL_PATCH", {}],
                                       "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
                                       "vae": ["VAE", {}], "width": ["INT", {"default": 832}],
                                       "height": ["INT", {"default": 480}], "length": ["INT", {"default": 81}]}},
                "output": ["MODEL", "CONDITIONING", "CONDITIONING", "LATENT", "INT"],
                "name": "WanInfiniteTalkToVideo", "python_module": "comfy_extras.nodes_wan"}

COMMON = {"text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"], "vae": ["wan_2.1_vae.safetensors"]}
S2V_FILES = {"diffusion_models": ["wan2.2_s2v_14B_fp8_scaled.safetensors", "wan2.2_s2v_14B_bf16.safetensors"],
             "audio_encoders": ["wav2vec2_large_english_fp16.safetensors"]}
IT_FILES = {"diffusion_models": ["wan2.1_i2v_480p_14B_fp8_scaled.safetensors"],
            "model_patches": ["wan2.1_infiniteTalk_single_fp16.safetensors"],
            "clip_vision": ["clip_vision_h.safetensors"],
            "audio_encoders": ["wav2vec2-chinese-base_fp16.safetensors"]}
HUMO_FILES = {"diffusion_models": ["humo_17B_fp8_e4m3fn.safetensors"],
              "audio_encoders": ["whisper_large_v3_encoder_fp16.safetensors"]}


def files(*parts: dict) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for folder, names in part.items():
            merged.setdefault(folder, []).extend(names)
    return merged


@functools.lru_cache(maxsize=1)
def recorded_and_pack() -> dict:
    return {**json.loads((DATA / "object_info_cinema.json").read_text()), **pack_object_info()}


def object_info(models: dict[str, list[str]], current: bool = False) -> dict:
    """The recorded core nodes + the pack's, each loader's options filled from `models` as a
    real server fills them from its folders."""
    info = copy.deepcopy(recorded_and_pack())
    if current:
        info["WanInfiniteTalkToVideo"] = INFINITETALK
    for (class_type, name), folder in LOADER_FOLDERS.items():
        spec = info[class_type]["input"]["required"][name]
        if isinstance(spec[0], list):
            spec[0] = list(models.get(folder, []))
        else:
            spec[1]["options"] = list(models.get(folder, []))
    return info


def offer(models: dict, vram_gb: float = 24, current: bool = False, name: str = "gpu0") -> cinema.ServerOffer:
    folders = {f: [] for f in LOADER_FOLDERS.values()} | models
    return cinema.ServerOffer(name, object_info(models, current), folders, vram_gb)


@functools.lru_cache(maxsize=1)
def registry():
    return load_registry()


def workflows() -> list[tuple[str, dict]]:
    return [(name, load_workflow(name)) for name in GRAPHS]


def pick(models, vram_gb=24, current=False, out=(1280, 720)):
    return cinema.choose_graph(workflows(), offer(models, vram_gb, current), registry(), SIZES, out)


# ---- the recorded data and the graphs agree ----

def test_combo_options_are_read_in_both_shapes_comfyui_sends():
    info = json.loads((DATA / "object_info_cinema.json").read_text())
    assert info["UNETLoader"]["input"]["required"]["unet_name"] == [[]]  # V1: [[options]]
    assert info["AudioEncoderLoader"]["input"]["required"]["audio_encoder_name"][0] == "COMBO"  # V3
    filled = object_info({"diffusion_models": ["a.safetensors"], "audio_encoders": ["b.safetensors"]})
    assert cinema.input_options(filled, "UNETLoader", "unet_name") == ["a.safetensors"]
    assert cinema.input_options(filled, "AudioEncoderLoader", "audio_encoder_name") == ["b.safetensors"]
    assert cinema.input_options(filled, "KSampler", "steps") is None  # not a combo
    assert cinema.input_options(filled, "NoSuchNode", "x") is None


def test_every_model_file_a_cinema_graph_loads_is_in_models_yaml_with_its_folder():
    registry = load_registry()
    by_file = {f.name: e for e in registry for f in e.files}
    for name in GRAPHS:
        graph = load_workflow(name)
        for node_id, input_name, value in cinema.model_inputs(graph):
            entry = by_file.get(value)
            assert entry is not None, (name, value)
            folder = LOADER_FOLDERS[(graph[node_id]["class_type"], input_name)]
            assert entry.folder == folder and "cinema" in entry.presets, (value, entry.folder)
            assert entry.license and entry.vram_gb is not None and isinstance(entry.commercial_use, bool)


# ---- one server: which graph, which variant, which size ----

def test_a_0_3_64_server_with_s2v_models_gets_s2v_fp8_at_480p_on_a_24_gb_card():
    chosen, unfit = pick(files(COMMON, S2V_FILES, IT_FILES), vram_gb=24)
    assert chosen.workflow == "cinema_s2v"
    assert unfit[0].workflow == "cinema_infinitetalk" and unfit[0].classes == ["WanInfiniteTalkToVideo"]
    unet = chosen.graph[find_node(chosen.graph, "Diffusion model")]["inputs"]["unet_name"]
    assert unet == "wan2.2_s2v_14B_fp8_scaled.safetensors"
    assert chosen.size == (848, 480)  # 480p's pixels in the output's 16:9, multiples of 16
    chunk = chosen.graph[find_node(chosen.graph, "Talking chain")]["inputs"]
    assert (chunk["width"], chunk["height"]) == (848, 480)
    portrait = chosen.graph[find_node(chosen.graph, "Generation size: portrait")]["inputs"]
    assert (portrait["width"], portrait["height"]) == (848, 480)
    assert "cinema_s2v at 848x480" in chosen.line() and "wan2.2_s2v_14B_fp8_scaled" in chosen.line()


def test_an_80_gb_card_gets_the_16_bit_model_at_720p():
    chosen, _ = pick(files(COMMON, S2V_FILES), vram_gb=80)
    unet = chosen.graph[find_node(chosen.graph, "Diffusion model")]["inputs"]["unet_name"]
    assert unet == "wan2.2_s2v_14B_bf16.safetensors" and chosen.size == (1280, 720)


def test_the_size_follows_a_portrait_output_and_never_exceeds_it():
    assert cinema.generation_size(SIZES, 24, (720, 1280)) == (480, 848)
    assert cinema.generation_size(SIZES, 80, (64, 64)) == (64, 64)
    assert cinema.generation_size(SIZES, 80, (1920, 1080)) == (1280, 720)


def test_a_current_server_with_infinitetalk_models_gets_infinitetalk():
    chosen, _ = pick(files(COMMON, S2V_FILES, IT_FILES), vram_gb=24, current=True)
    assert chosen.workflow == "cinema_infinitetalk"
    assert "wan2.1_infiniteTalk_single_fp16.safetensors" in chosen.files


def test_without_the_infinitetalk_patch_a_current_server_falls_to_s2v_and_says_what_is_missing():
    models = files(COMMON, S2V_FILES, IT_FILES)
    models["model_patches"] = []
    chosen, unfit = pick(models, current=True)
    assert chosen.workflow == "cinema_s2v"
    assert unfit[0].pulls == ["infinitetalk-single"]
    assert "wan2.1_infiniteTalk_single_fp16.safetensors" in unfit[0].reason()


def test_only_humo_models_get_humo():
    chosen, unfit = pick(files(COMMON, HUMO_FILES), current=True)
    assert chosen.workflow == "cinema_humo" and [u.workflow for u in unfit] == GRAPHS[:2]


def test_a_graph_with_a_file_the_server_lacks_is_not_runnable():
    models = files(COMMON, S2V_FILES)
    models["vae"] = []
    chosen, unfit = pick(models)
    assert chosen is None
    s2v = next(u for u in unfit if u.workflow == "cinema_s2v")
    assert s2v.pulls == ["wan21-vae"] and "wan_2.1_vae.safetensors (models/vae)" in s2v.files


# ---- several servers over HTTP ----

@pytest.fixture
def servers(tmp_path):
    started = []

    def start(models: dict, vram_gb: float, current: bool = False) -> ComfyInstance:
        server = FakeComfy(tmp_path / f"s{len(started)}", object_info=object_info(models, current)).start()
        server.models = {f: [] for f in LOADER_FOLDERS.values()} | models
        server.system_stats = {"system": {"comfyui_version": "test"},
                               "devices": [{"name": "cuda:0", "type": "cuda", "vram_total": vram_gb * GB}]}
        started.append(server)
        return ComfyInstance(server.url)
    yield start
    for server in started:
        server.stop()


def test_each_server_gets_its_own_graph_and_one_that_can_run_none_is_left_out(servers):
    big = servers(files(COMMON, S2V_FILES, IT_FILES), 80, current=True)
    small = servers(files(COMMON, S2V_FILES), 24)
    empty = servers({}, 24)
    lines = []
    picks = cinema.plan_servers([big, small, empty], GRAPHS, SIZES, (1280, 720), load_registry(), say=lines.append)
    assert picks[big.name].workflow == "cinema_infinitetalk" and picks[big.name].size == (1280, 720)
    assert picks[small.name].workflow == "cinema_s2v" and picks[small.name].size == (848, 480)
    assert empty.name not in picks
    assert lines[0].startswith(f"cinema: {big.name} runs cinema_infinitetalk at 1280x720")
    assert lines[1].startswith(f"cinema: {small.name} runs cinema_s2v at 848x480")
    assert lines[2].startswith(f"cinema: {empty.name} skipped: cinema_infinitetalk: no node WanInfiniteTalkToVideo")


def test_no_server_able_to_run_a_graph_is_one_line_naming_what_to_pull(servers):
    models = files(COMMON, S2V_FILES)
    del models["audio_encoders"]
    one = servers(models, 24)
    with pytest.raises(cinema.CinemaUnavailable) as err:
        cinema.plan_servers([one], GRAPHS, SIZES, (1280, 720), load_registry(), say=lambda line: None)
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == 2
    assert "cinema_s2v lacks wav2vec2_large_english_fp16.safetensors" in message
    assert "podium models pull wav2vec2-large-english --comfyui-dir" in message


# ---- the preset ----

def test_cinema_is_above_quality_and_runs_on_servers_only():
    order, table = presets.load_presets()
    assert order.index("cinema") < order.index("quality")
    assert table["cinema"].servers_only and table["cinema"].graphs == GRAPHS


def test_asked_for_without_a_server_it_is_an_error_naming_podium_comfy_up():
    with pytest.raises(UsageError, match="podium comfy up"):
        presets.choose("cinema", have_portrait=True, have_voice_ref=False, vram_gb=80)


def test_auto_never_picks_cinema_without_servers():
    choice = presets.choose("auto", have_portrait=True, have_voice_ref=False, vram_gb=80)
    assert choice.preset.name != "cinema"
    assert any(n.startswith("cinema: not used") and "ComfyUI servers only" in n for n in choice.notes)


def test_auto_with_servers_takes_cinema_only_when_one_can_run_it():
    ran = []
    no = presets.choose("auto", have_portrait=True, have_voice_ref=False, vram_gb=80, check_models=False,
                        servers=lambda p: ran.append(p.name) or "no server has the models")
    assert no.preset.name == "quality" and ran == ["cinema"]
    yes = presets.choose("auto", have_portrait=True, have_voice_ref=False, vram_gb=80, check_models=False,
                         servers=lambda p: None)
    assert yes.preset.name == "cinema"


def test_the_cli_without_a_server_says_so_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "generate", "--preset", "cinema",
                             "--text", "Hello there.", "--out", str(tmp_path / "v.mp4")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "podium comfy up" in lines[0] and lines[0].startswith("error: ")
    assert not (tmp_path / "v.mp4").exists()


# ---- segments ----

def test_no_sentence_is_refused_for_length_a_long_one_is_a_chain_of_chunks():
    """(Was: segments cut to one generation and a long sentence refused; now a paragraph is one
    take, chained by PodiumWanChain from its real audio, so nothing is cut or refused.)"""
    from orchestrator.render.plan import segment_entries
    from podium.engines.chunks import plan_chunks

    sentence = ("This sentence goes on and on " * 10 + "to the end.")[:300]
    script = parse_script(sentence + "\n\nYes.")
    entries = segment_entries(script)
    assert [e["text"] for e in entries] == [sentence, "Yes."]
    for kind in ("infinitetalk", "s2v", "humo"):
        assert len(plan_chunks(kind, entries[0]["estimated_s"]).chunks) > 1
        assert len(plan_chunks(kind, entries[1]["estimated_s"]).chunks) == 1
    assert not hasattr(cinema, "fit_segments")


def test_a_server_without_the_distill_lora_runs_full_steps_and_says_so():
    graph = load_workflow("cinema_s2v")
    full = cinema.full_steps(graph)
    assert all(n["class_type"] != "LoraLoaderModelOnly" for n in full.values())
    assert full[find_node(full, "Model sampling")]["inputs"]["model"] == [find_node(full, "Diffusion model"), 0]
    chain = full[find_node(full, "Talking chain")]["inputs"]
    assert (chain["steps"], chain["cfg"]) == cinema.FULL_STEPS["s2v"]
    chosen, _ = pick(files(COMMON, S2V_FILES), vram_gb=24)  # a server with no models/loras
    assert chosen.workflow == "cinema_s2v" and any("full steps" in n for n in chosen.notes)
    assert all(n["class_type"] != "LoraLoaderModelOnly" for n in chosen.graph.values())
    with_lora, _ = pick(files(COMMON, S2V_FILES, {"loras": [load_workflow("cinema_s2v")[
        find_node(graph, "Distill LoRA")]["inputs"]["lora_name"]]}), vram_gb=24)
    assert not with_lora.notes and find_node(with_lora.graph, "Distill LoRA")


# ---- dispatch: each instance runs its own graph, and a failed-over segment the other's ----

class Recorder:
    """An instance that records the graph it is given and "renders" a small file; `gone_on`
    names the segment text on which it vanishes (once)."""

    in_process = False

    def __init__(self, name: str, gone_on: str | None = None):
        self.name, self.gone_on, self.ran = name, gone_on, []

    def produce(self, graph, files, workdir, on_event):
        from orchestrator.servers.dispatch import InstanceGone

        text = graph[find_node(graph, "Script")]["inputs"]["text"]
        if self.gone_on and self.gone_on in text:
            self.gone_on = None
            raise InstanceGone(f"{self.name}: killed")
        self.ran.append((graph[find_node(graph, "Diffusion model")]["inputs"]["unet_name"], text))
        clip = workdir / "clip.mov"
        clip.write_bytes(f"{self.name} {text}".encode())
        return {"images": [(clip, {"frames": 25, "fps": 25})]}

    def cancel(self):
        pass


def test_segments_run_on_each_servers_graph_and_fail_over_to_the_others(tmp_path):
    from orchestrator.servers.dispatch import render_all
    from orchestrator.render.segments import SegmentCache, plan_per_server

    script = parse_script("One is here.\n\nTwo is here.\n\nThree is here.\n\nFour is here.")
    s2v, humo = load_workflow("cinema_s2v"), load_workflow("cinema_humo")
    bound = {"a": (s2v, {}, {}), "b": (humo, {}, {})}
    jobs = plan_per_server(bound, script)
    assert [j.key for j in jobs] == [j.key for j in plan_per_server(dict(reversed(bound.items())), script)]
    a, b = Recorder("a", gone_on="Two"), Recorder("b")
    clips = render_all(jobs, [a, b], SegmentCache(tmp_path / "cache"), lambda *event: None)
    assert len(clips) == 4 and all(c.path.is_file() for c in clips)
    unets = {"a": "wan2.2_s2v_14B_fp8_scaled.safetensors", "b": "humo_17B_fp8_e4m3fn.safetensors"}
    for instance in (a, b):
        assert all(unet == unets[instance.name] for unet, _ in instance.ran)
    assert not any("Two" in text for _, text in a.ran) and any("Two" in text for _, text in b.ran)
    # a rerun finds every segment in the cache, whichever server made it
    again = render_all(plan_per_server(bound, script), [Recorder("a"), Recorder("b")],
                       SegmentCache(tmp_path / "cache"), lambda *event: None)
    assert [c.path for c in again] == [c.path for c in clips]


def test_a_server_without_the_models_folder_is_told_to_update_comfyui():
    models = files(COMMON, S2V_FILES)
    server = offer(models)
    del server.models["audio_encoders"]  # GET /models does not list it
    server.object_info = object_info({k: v for k, v in models.items() if k != "audio_encoders"})
    chosen, unfit = cinema.choose_graph(workflows(), server, registry(), SIZES, (1280, 720))
    s2v = next(u for u in unfit if u.workflow == "cinema_s2v")
    assert chosen is None and "a folder this ComfyUI lacks: update it" in s2v.reason()


# ---- podium generate --plan ----

LONG = ("Give it a script, and a presenter speaks it, with a face that moves as the words do, "
        "a voice that sounds like yours, and timing exact to the frame, whatever the length of the "
        "sentence, because every sentence, however long, is generated as a chain of chunks that "
        "continue one another until the whole of it is said.")


def run_plan(tmp_path, *extra) -> subprocess.CompletedProcess:
    from conftest import draw_portrait

    portrait = draw_portrait(tmp_path / "face.png", 64, 64)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "generate", "--plan",
                           "--text", f"{LONG}\n\nHello.", "--image", str(portrait),
                           "--out", str(tmp_path / "v.mp4"), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_plan_over_servers_lists_each_servers_chain_and_names_the_pull_for_one_without_models(servers, tmp_path):
    """A 300-character sentence and a one-word paragraph: the S2V server chains several chunks
    for the first, one for the second; the server without models is told what to pull; nothing
    is rendered."""
    assert len(LONG) >= 300
    s2v = servers(files(COMMON, S2V_FILES, {"loras": ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"]}), 24)
    bare = servers(files(COMMON), 24)
    result = run_plan(tmp_path, "--preset", "cinema", "--server", f"http://{s2v.name}", "--server", f"http://{bare.name}")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [s["text"] for s in plan["segments"]] == [LONG, "Hello."]
    assert plan["segments"][0]["estimated_s"] > 20 and plan["preset"] == "cinema"
    by_name = {s["server"]: s for s in plan["servers"]}
    runs = by_name[s2v.name]
    assert runs["workflow"] == "cinema_s2v" and runs["size"] == "848x480"
    long_take, word = runs["generations"]
    assert len(long_take["chunks"]) > 1 and len(word["chunks"]) == 1
    assert long_take["frames"] >= long_take["seconds"] * 16 and all(c["length"] <= 77 for c in long_take["chunks"])
    assert "podium models pull" in by_name[bare.name]["error"] and "--comfyui-dir" in by_name[bare.name]["error"]
    assert not (tmp_path / "v.mp4").exists()


def test_plan_in_process_names_the_preset_and_segments(tmp_path):
    result = run_plan(tmp_path, "--preset", "draft")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["preset"] == "draft" and len(plan["segments"]) == 2
    (only,) = plan["servers"]
    assert only["workflow"] == "direct" and "chunks" not in only["generations"][0]
    assert not (tmp_path / "v.mp4").exists()


def test_infinitetalk_at_720p_keeps_the_480p_base_with_shift_11():
    """The InfiniteTalk patch was trained on Wan2.1-I2V 480P; upstream runs 720p on that base
    with sample_shift 11 (7 at 480p)."""
    it = files(COMMON, IT_FILES, {"diffusion_models": ["wan2.1_i2v_480p_14B_fp16.safetensors"]})
    big, _ = pick(it, vram_gb=80, current=True)
    assert big.workflow == "cinema_infinitetalk" and big.size == (1280, 720)
    assert big.graph[find_node(big.graph, "Diffusion model")]["inputs"]["unet_name"] == "wan2.1_i2v_480p_14B_fp16.safetensors"
    assert big.graph[find_node(big.graph, "Model sampling")]["inputs"]["shift"] == 11.0
    small, _ = pick(it, vram_gb=24, current=True)
    assert small.size == (848, 480) and small.graph[find_node(small.graph, "Model sampling")]["inputs"]["shift"] == 7.0
    assert small.graph[find_node(small.graph, "Diffusion model")]["inputs"]["unet_name"] == "wan2.1_i2v_480p_14B_fp8_scaled.safetensors"
