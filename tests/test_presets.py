"""Preset choice: what runs here, what falls back, and the reasons given."""
from pathlib import Path

import pytest
import yaml

from orchestrator.render import presets
from orchestrator.graphs.workflow import find_node
from podium.models import load_registry

REPO = Path(__file__).resolve().parents[1]


def install(models_dir: Path, *model_ids: str) -> None:
    """Put (empty) files where the registry looks for these models."""
    registry = load_registry()
    for model_id in model_ids:
        entry = registry.get(model_id)
        for item in entry.files:
            path = models_dir / entry.folder / item.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path))
    return tmp_path


ALL_NEURAL = ["wav2lip-onnx", "wav2lip-gan-onnx", "F5TTS_v1_Base", "vocos-mel-24khz", "sd15",
              "sdxl", "realesrgan-x2plus", "realesrgan-x4plus", "musetalk-1.5", "sd-vae-ft-mse", "whisper-tiny"]


def test_every_model_a_workflow_or_preset_names_is_in_the_registry():
    known = {entry.id for entry in load_registry().entries}
    order, table = presets.load_presets()
    for preset in table.values():
        graph = presets.load_workflow(preset.workflow)
        combos = {v for node in graph.values() for k, v in node["inputs"].items()
                  if k == "model" and isinstance(v, str)}
        assert combos <= known, (preset.name, combos - known)
        for model_id in [preset.image_model, *preset.extra_models]:
            assert model_id is None or model_id in known
    assert order[-1] == "draft" and table["draft"].vram_gb == 0 and not table["draft"].needs


def test_auto_on_a_bare_cpu_machine_is_draft_and_says_why(models_dir):
    choice = presets.choose("auto", have_portrait=True, have_voice_ref=True, vram_gb=0)
    assert choice.preset.name == "draft"
    fast = next(n for n in choice.notes if n.startswith("fast"))
    assert "missing wav2lip-onnx" in fast and "podium models pull wav2lip-onnx" in fast
    quality = next(n for n in choice.notes if n.startswith("quality"))
    assert "12 GB" in quality and "0.0 GB found" in quality


def test_fast_needs_a_face(models_dir):
    install(models_dir, "wav2lip-onnx")
    assert presets.choose("fast", have_portrait=True, have_voice_ref=False, vram_gb=0).preset.name == "fast"
    choice = presets.choose("fast", have_portrait=False, have_voice_ref=False, vram_gb=0)
    assert choice.preset.name == "draft" and "give --image" in choice.notes[0]


# 2 GB: fast would fit, but without --image it has no face to animate (it draws none)
@pytest.mark.parametrize("vram, expected", [(24, "quality"), (8, "balanced"), (2, "draft")])
def test_auto_follows_free_vram_when_everything_is_installed(models_dir, vram, expected):
    install(models_dir, *ALL_NEURAL)
    choice = presets.choose("auto", have_portrait=False, have_voice_ref=True, vram_gb=vram)
    assert choice.preset.name == expected


def test_a_missing_image_model_drops_to_a_preset_that_can_run(models_dir):
    install(models_dir, *[m for m in ALL_NEURAL if m != "sdxl"])
    choice = presets.choose("quality", have_portrait=False, have_voice_ref=True, vram_gb=24)
    assert choice.preset.name == "balanced"
    assert "missing sdxl" in choice.notes[0]
    # with a portrait, no image model is needed
    assert presets.choose("quality", have_portrait=True, have_voice_ref=True, vram_gb=24).preset.name == "quality"


def test_without_a_voice_reference_piper_speaks(models_dir):
    install(models_dir, *ALL_NEURAL)
    choice = presets.choose("balanced", have_portrait=True, have_voice_ref=False, vram_gb=8)
    assert choice.preset.name == "balanced"
    assert any("Piper" in note for note in choice.notes)
    voice = choice.graph[find_node(choice.graph, "Voice")]
    assert voice["class_type"] == "PodiumPiperTTS" and voice["inputs"]["script"] == ["1", 0]


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="choose auto or one of"):
        presets.choose("ultra", have_portrait=True, have_voice_ref=True, vram_gb=0)


def test_presets_file_documents_every_field():
    text = (REPO / "workflows" / "presets.yaml").read_text()
    fields = {k for spec in yaml.safe_load(text)["presets"].values() for k in spec}
    assert all(f"#   {name}:" in text for name in fields)


@pytest.mark.parametrize("text, message", [
    ("order: [draft]\npresets:\n  draft: {workflow: direct, vram_gb: lots}\n",
     "presets.draft.vram_gb: must be a number"),
    ("order: [draft]\npresets:\n  draft: {workflow: direct, vram: 3}\n", "presets.draft.vram: is not a known field"),
    ("order: [draft]\npresets:\n  draft: {workflow: direct, needs: [face]}\n",
     "presets.draft.needs[0]: must be one of 'portrait'"),
    ("order: [draft]\npresets:\n  draft: {workflow: direct, cloned_voice: maybe}\n",
     "presets.draft.cloned_voice: must be true or false"),
    ("order: [fast]\npresets:\n  draft: {workflow: direct}\n", "order names fast, not under presets"),
    ("presets:\n  draft: {workflow: direct}\n", "order: is missing"),
    ("- draft\n", "must be a mapping with order: and presets:"),
    ("order: [draft\n", "cannot read the presets file"),
])
def test_a_broken_presets_file_names_the_field(tmp_path, text, message):
    from podium.errors import PodiumError

    path = tmp_path / "presets.yaml"
    path.write_text(text)
    with pytest.raises(PodiumError) as error:
        presets.load_presets(path)
    assert str(error.value).startswith(f"{path}: " if "cannot read" not in message else message)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_cli_says_why_a_named_preset_fell_back(models_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "v.mp4"
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "generate", "--preset", "fast",
                             "--text", "Falls back.", "--size", "160x90", "--quiet", "--out", str(out),
                             "--cache-dir", str(tmp_path / "cache")],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "preset fast: not used, it animates a face: give --image" in result.stderr
    assert "draft preset" in result.stdout and out.is_file()


# ---- --commercial and the optional idle clip ----

def test_commercial_swaps_the_cloned_voice_for_a_permissive_cloned_voice_and_says_which_for_which():
    """Issue 23.3: --commercial keeps the voice cloned (CSM-1B, Apache-2.0) where it used to fall
    back to Piper, so the swap line and the Voice node's class changed on purpose."""
    order, table, swap_table = presets._read_presets()
    balanced = presets.load_workflow("direct_balanced")
    graph, swaps, blocked = presets.commercial_only(balanced, load_registry(), swap_table)
    assert "F5TTS_v1_Base (CC-BY-NC-4.0) -> csm-1b (Apache-2.0)" in swaps
    voice = graph[find_node(graph, "Voice")]
    assert voice["class_type"] == "PodiumCsmVoiceClone" and voice["inputs"]["script"] == ["1", 0]
    old = balanced[find_node(balanced, "Voice")]  # what reads the voice still reads it
    users = [n for n in graph.values() if [find_node(graph, "Voice"), 0] in n["inputs"].values()]
    assert users and len(users) == sum([find_node(balanced, "Voice"), 0] in n["inputs"].values()
                                       for n in balanced.values())
    assert {"reference_audio", "ref_text", "seed"} <= set(voice["inputs"]) & set(old["inputs"])
    registry = load_registry()
    used = presets.models_in(graph, {e.id for e in registry.entries})
    assert blocked == [] and all(registry.get(m).commercial_use for m in used), used


@pytest.mark.parametrize("name", ["direct_quality", "cinema_s2v", "cinema_humo", "cinema_infinitetalk"])
def test_every_graph_that_clones_keeps_a_cloned_voice_under_commercial(name):
    graph, swaps, blocked = presets.commercial_only(presets.load_workflow(name), load_registry(),
                                                    presets._read_presets()[2])
    assert "F5TTS_v1_Base (CC-BY-NC-4.0) -> csm-1b (Apache-2.0)" in swaps and "F5TTS_v1_Base" not in blocked
    assert graph[find_node(graph, "Voice")]["class_type"] == "PodiumCsmVoiceClone"


def test_commercial_with_a_voice_ref_needs_the_permissive_cloned_voice(models_dir):
    install(models_dir, *ALL_NEURAL)
    choice = presets.choose("balanced", have_portrait=True, have_voice_ref=True, vram_gb=8, commercial=True)
    assert choice.preset.name != "balanced"
    assert "balanced: not used, missing csm-1b (podium models pull csm-1b)" in choice.notes
    install(models_dir, "csm-1b")
    choice = presets.choose("balanced", have_portrait=True, have_voice_ref=True, vram_gb=8, commercial=True)
    assert choice.preset.name == "balanced" and "F5TTS_v1_Base (CC-BY-NC-4.0) -> csm-1b (Apache-2.0)" in choice.swaps
    assert choice.graph[find_node(choice.graph, "Voice")]["class_type"] == "PodiumCsmVoiceClone"


def test_commercial_swaps_wav2lip_for_the_permissive_lip_sync():
    order, table, swap_table = presets._read_presets()
    fast = presets.load_workflow("direct_fast")
    graph, swaps, blocked = presets.commercial_only(fast, load_registry(), swap_table)
    lip = graph[find_node(graph, "Lip sync")]
    balanced = presets.load_workflow("direct_balanced")
    assert lip["class_type"] == balanced[find_node(balanced, "Lip sync")]["class_type"] != "PodiumLipSync"
    old = fast[find_node(fast, "Lip sync")]["inputs"]
    assert lip["inputs"]["visual"] == old["visual"] and lip["inputs"]["speech"] == old["speech"]
    assert blocked == [] and len(swaps) == 1 and swaps[0].startswith("wav2lip-onnx (Wav2Lip research license")


def test_commercial_with_no_permissive_choice_says_so_in_one_line(models_dir, monkeypatch):
    install(models_dir, *ALL_NEURAL)
    order, table, _ = presets._read_presets()
    monkeypatch.setattr(presets, "_read_presets", lambda: (order, table, {}))  # nothing to swap to
    choice = presets.choose("fast", have_portrait=True, have_voice_ref=False, vram_gb=0, commercial=True)
    assert choice.preset.name == "draft"
    assert choice.notes[0] == ("fast: not used, --commercial: no commercially usable choice for "
                               "wav2lip-onnx (Wav2Lip research license (non-commercial; trained on LRS2))")
    # a preset's own `commercial: true` asks the same as the flag
    table["fast"].commercial = True
    assert presets.choose("fast", have_portrait=True, have_voice_ref=False, vram_gb=0).preset.name == "draft"


def test_the_idle_clip_model_is_optional(models_dir):
    install(models_dir, *ALL_NEURAL)
    choice = presets.choose("balanced", have_portrait=True, have_voice_ref=True, vram_gb=8)
    assert choice.preset.name == "balanced"
    assert ("balanced: wan2.2-ti2v-5b is not installed, so its stage is done without it "
            "(podium models pull wan2.2-ti2v-5b)") in choice.notes
    install(models_dir, "wan2.2-ti2v-5b")
    assert not [n for n in presets.choose("balanced", have_portrait=True, have_voice_ref=True,
                                          vram_gb=8).notes if "wan2.2" in n]


def test_cli_commercial_refuses_a_non_commercial_voice(tmp_path):
    from conftest import run_cli

    code, out, err = run_cli("generate", "--commercial", "--voice", "piper-en_US-lessac-medium",
                             "--text", "Hi.", "--out", tmp_path / "v.mp4", tmpdir=tmp_path)
    assert code == 2 and not (tmp_path / "v.mp4").exists()
    assert err.strip().splitlines()[-1].endswith(
        "--commercial: the voice piper-en_US-lessac-medium (Lessac Blizzard 2011 data license) is not "
        "for commercial use; choose one that is: piper-en_US-joe-medium, piper-en_GB-alba-medium, "
        "piper-en_US-ljspeech-medium")


def test_commercial_on_a_users_own_workflow():
    graph, swaps = presets.commercial_workflow(presets.load_workflow("direct_fast"))
    assert graph[find_node(graph, "Lip sync")]["class_type"] == "PodiumMuseTalk" and len(swaps) == 1
    odd = presets.load_workflow("direct_fast")
    odd[find_node(odd, "Lip sync")]["_meta"]["title"] = "My lips"  # no node of that title to swap in
    from podium.errors import UsageError
    with pytest.raises(UsageError, match=r"^--commercial: no commercially usable choice for wav2lip-onnx "):
        presets.commercial_workflow(odd)
