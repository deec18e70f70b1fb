"""The presenter of a profile drawn with its LoRA (issue 23 item 4): a profile made from real
photographs (test_lora_train's), its LoRA trained for two steps on the tiny random-weight SD1.5
test_presenter_image builds (installed where models.yaml's sd15 lives, so `--base sd15`), then
`podium generate --profile ana --presenter-prompt ...` on the CPU (draft preset): the presenter is
drawn once with the LoRA through the real Presenter image node, the MP4 carries the profile."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ffprobe, streams  # noqa: E402
from test_lora_train import photos  # noqa: E402
from test_presenter_image import build_sd15  # noqa: E402

from orchestrator.graphs.workflow import bind, load_workflow  # noqa: E402
from orchestrator.profiles import likeness as likenesses  # noqa: E402
from orchestrator.profiles import profile as profiles  # noqa: E402
from orchestrator.render.presenter import presenter_graph  # noqa: E402
from orchestrator.render.segments import content_key  # noqa: E402
from orchestrator.request import RenderRequest  # noqa: E402
from orchestrator.servers.dispatch import InProcessInstance  # noqa: E402
from podium.memory import get_manager  # noqa: E402

CONSENT = "I, Ana Lima, agree that Podium may make videos with my face and voice"
PROMPT = "in a bright studio"
FPS = 25


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data folder holding profile `ana` with a 2-step LoRA (token `ana`) and `bo` without
    one, and a models folder with the tiny SD1.5 as sd15."""
    from orchestrator.cli.main import main

    root = tmp_path_factory.mktemp("home")
    build_sd15(root / "models" / "diffusers" / "stable-diffusion-v1-5")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PODIUM_DATA_DIR", str(root / "data"))
        env.setenv("PODIUM_MODELS_DIR", str(root / "models"))
        images = [a for p in photos(root / "in") for a in ("--image", str(p))]
        assert main(["profile", "create", "ana", *images, "--consent", CONSENT]) == 0
        assert main(["profile", "create", "bo", *images[:2], "--consent", CONSENT]) == 0
        assert main(["profile", "train", "ana", "--base", "sd15", "--steps", "2", "--rank", "2",
                     "--token", "ana", "--size", "64"]) == 0
    yield root
    torch.set_num_threads(threads)
    get_manager().evict()


@pytest.fixture
def env(home, monkeypatch):
    monkeypatch.setenv("PODIUM_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(home / "models"))
    return home


def test_generate_draws_the_profiles_presenter_with_its_lora(env, tmp_path, monkeypatch, capsys):
    from orchestrator.cli.main import main
    from podium.engines import presenter_image

    # the tiny model's own size and a couple of steps: at SD1.5's 512 px it takes minutes on a CPU
    monkeypatch.setitem(presenter_image.DEFAULTS, "sd15", (2, 7.5, 64, presenter_image.DEFAULTS["sd15"][3]))
    out, cache = tmp_path / "ana.mp4", tmp_path / "cache"
    code = main(["generate", "--profile", "ana", "--presenter-prompt", PROMPT, "--preset", "draft",
                 "--text", "Hello there.", "--size", "128x96", "--quiet", "--cache-dir", str(cache),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert 'profile ana: the presenter is drawn with its LoRA on sd15 ("a photo of ana person, ...")' in err

    drawn = list(cache.glob("presenter-*/presenter.png"))
    assert len(drawn) == 1  # drawn once for the video
    picture = np.asarray(Image.open(drawn[0]).convert("RGB"))
    assert picture.shape == (64, 64, 3)
    # the same drawing without the LoRA (same base, prompt, seed, size) is another picture
    plain = bind(load_workflow("presenter_image"), {
        ("Presenter image", "model"): "sd15", ("Presenter image", "prompt"): f"a photo of ana person, {PROMPT}",
        ("Presenter image", "seed"): 0, ("Presenter image", "aspect"): round(128 / 96, 4)})
    made = InProcessInstance().produce(plain, {}, tmp_path / "plain", lambda *_: None)["images"]
    without = np.asarray(Image.open(made[0][0]).convert("RGB"))
    assert without.shape == picture.shape and not np.array_equal(without, picture)

    info = ffprobe(out)
    video, audio = streams(info, "video"), streams(info, "audio")
    assert len(video) == 1 and len(audio) == 1
    assert abs(video[0]["duration"] - audio[0]["duration"]) <= 1 / FPS
    assert (int(video[0]["width"]), int(video[0]["height"])) == (128, 96)
    assert info["format"]["tags"]["podium_profile"] == "ana"


def test_which_presenter_is_said_in_one_line(env):
    ana, bo = profiles.load("ana"), profiles.load("bo")
    assert 'LoRA: yes (sd15, "a photo of ana person"; generate --presenter-prompt' in profiles.describe(ana)
    assert "LoRA: none" in profiles.describe(bo)
    balanced = type("Preset", (), {"name": "balanced", "image_model": "sd15"})()
    quality = type("Preset", (), {"name": "quality", "image_model": "sdxl"})()
    likeness, line = likenesses.choose(ana, PROMPT, balanced, remote=True)
    assert likeness is not None and likeness.base == "sd15" and likeness.lora.is_file()
    assert line == 'profile ana: the presenter is drawn with its LoRA on sd15 ("a photo of ana person, ...")'
    likeness, line = likenesses.choose(ana, PROMPT, quality, remote=False)
    assert likeness is not None and line.endswith(
        ", not the quality preset's sdxl: the LoRA was trained on sd15")
    assert likenesses.choose(ana, "", quality, remote=False) == (
        None, "profile ana: the presenter is its photo (01.png); --presenter-prompt TEXT draws one with its LoRA")
    assert likenesses.choose(bo, PROMPT, quality, remote=False) == (
        None, "profile bo: the presenter is its photo (01.png); --presenter-prompt is not used: the profile "
              "has no LoRA (`podium profile train bo` learns one)")
    folder_base = profiles.Profile("ana", ana.folder, {**ana.manifest, "lora": {**ana.manifest["lora"],
                                                                              "base": "/models/my-sd15"}})
    likeness, line = likenesses.choose(folder_base, PROMPT, quality, remote=True)
    assert likeness is None and "trained on a local folder (/models/my-sd15), which a ComfyUI server cannot " \
                                "load: train it with --base sd15" in line
    assert likenesses.choose(folder_base, PROMPT, quality, remote=False)[0].values()[
        ("Presenter image", "model_folder")] == "/models/my-sd15"


def test_the_drawn_presenters_cache_key_follows_the_loras_bytes_and_scale(env, tmp_path):
    request = RenderRequest(text="Hi.", presenter_prompt=PROMPT, out=str(tmp_path / "x.mp4"))
    likeness = likenesses.of(profiles.load("ana"))

    def key(lk):
        return content_key(*presenter_graph(request, "sd15", "", lk))

    graph, files = presenter_graph(request, "sd15", "", likeness)
    node = next(n for n in graph.values() if n["_meta"]["title"] == "Presenter image")
    assert node["inputs"]["prompt"] == f"a photo of ana person, {PROMPT}" and node["inputs"]["lora_scale"] == 1.0
    assert files == {("Presenter image", "lora_path"): likeness.lora}
    copy = tmp_path / "copy.safetensors"  # the same bytes elsewhere: the same picture
    copy.write_bytes(likeness.lora.read_bytes())
    assert key(likenesses.Likeness(copy, likeness.caption, "sd15", "sd15")) == key(likeness)
    other = tmp_path / "other.safetensors"
    other.write_bytes(likeness.lora.read_bytes()[:-1] + b" ")
    assert len({key(None), key(likeness), key(likenesses.Likeness(other, likeness.caption, "sd15", "sd15")),
                key(likenesses.Likeness(likeness.lora, likeness.caption, "sd15", "sd15", scale=0.5))}) == 4


def test_a_server_gets_the_lora_uploaded_and_draws_with_it(env, tmp_path):
    """On a ComfyUI server (the fake one running the pack's real nodes in a process of its own)
    the LoRA goes up as an input file, and the Presenter image node there draws with it."""
    from fake_comfy import FakeComfy

    from orchestrator.servers.remote import ComfyInstance

    request = RenderRequest(text="Hi.", presenter_prompt=PROMPT, out=str(tmp_path / "x.mp4"))
    likeness = likenesses.of(profiles.load("ana"))
    small = {("Presenter image", "width"): 64, ("Presenter image", "height"): 64,
             ("Presenter image", "steps"): 2}  # the tiny model's size: its 512 px take minutes here
    graph, files = presenter_graph(request, "sd15", "", likeness)
    plain, _ = presenter_graph(request, "sd15", "", None)
    plain = bind(plain, {**small, ("Presenter image", "prompt"): f"a photo of ana person, {PROMPT}"})
    server = FakeComfy(tmp_path / "server", execute="podium").start()
    try:
        assert server.child_ready.wait(240)
        instance = ComfyInstance(server.url)
        for name in ("lora", "plain"):
            (tmp_path / name).mkdir()
        drawn = instance.produce(bind(graph, small), files, tmp_path / "lora", lambda *_: None)["images"]
        without = instance.produce(plain, {}, tmp_path / "plain", lambda *_: None)["images"]
    finally:
        server.stop()
    uploaded = tmp_path / "server" / "input" / "podium" / likeness.lora.name
    assert uploaded.read_bytes() == likeness.lora.read_bytes()
    queued = [body for method, path, _, body in server.requests if path == "/prompt" and method == "POST"]
    node = next(n for n in queued[0]["prompt"].values() if n["class_type"] == "PodiumPresenterImage")
    assert node["inputs"]["lora_path"] == f"podium/{likeness.lora.name}" and node["inputs"]["model"] == "sd15"
    one, two = (np.asarray(Image.open(made[0][0]).convert("RGB")) for made in (drawn, without))
    assert one.shape == two.shape == (64, 64, 3) and not np.array_equal(one, two)
