"""Identity LoRA (issue 23 item 4): face crops from real photographs (scikit-image's astronaut)
found by lip sync's real detector, a few training steps of diffusers + peft on the tiny
random-weight SD1.5 / SDXL folders test_presenter_image builds (real classes, save_pretrained,
the engine's real loader, offline), resumption after Ctrl-C, and the LoRA drawn with by
presenter_image."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
skimage_data = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_presenter_image import build_sd15, build_sdxl  # noqa: E402

from podium.engines.lora_images import face_crops  # noqa: E402
from podium.engines.lora_train import CHECKPOINT, INFO_FILE, TrainConfig, train_lora  # noqa: E402
from podium.engines.presenter_image import draw, load_pipeline, set_lora  # noqa: E402
from podium.errors import UsageError  # noqa: E402
from podium.memory import get_manager  # noqa: E402

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photos(folder: Path, count: int = 5) -> list[Path]:
    """`count` different pictures of one real face: mirrored, darker, framed wider."""
    face = skimage_data.astronaut()
    variants = [face, face[:, ::-1], (face * 0.8).astype(np.uint8),
                np.pad(face, ((64, 64), (96, 96), (0, 0)), constant_values=128), face[:, ::-1] // 2 + 40]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"{i:02d}.png")
        Image.fromarray(np.ascontiguousarray(variants[i % len(variants)])).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return face_crops(photos(tmp_path_factory.mktemp("photos")), SIZE)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    yield {"sd15": build_sd15(root / "sd15"), "sdxl": build_sdxl(root / "sdxl")}
    get_manager().evict()


def test_crops_are_square_and_centred_on_the_face(tmp_path):
    from podium.engines.lipsync import FaceDetector

    said = []
    paths = photos(tmp_path / "in", 4)
    big = tmp_path / "in" / "big.jpg"  # 20 megapixels
    Image.fromarray(skimage_data.astronaut()).resize((4480, 4480)).save(big, quality=80)
    out = face_crops([*paths, big], 256, say=said.append)
    assert len(out) == 5 and all(c.shape == (256, 256, 3) and c.dtype == np.uint8 for c in out)
    assert said == ["big.jpg downscaled from 4480x4480 to 2048x2048"]
    for crop in out:
        x1, y1, x2, y2 = FaceDetector("haar").detect(crop)
        assert abs((x1 + x2) / 2 - 128) < 32 and abs((y1 + y2) / 2 - 128) < 32  # the face in the middle
        assert 256 / 3 < x2 - x1 < 256 * 0.75  # head and shoulders, not a whole body nor a nose


def test_bad_pictures_are_one_clear_line(tmp_path):
    paths = photos(tmp_path / "in")
    with pytest.raises(UsageError, match="training needs 5 to 30 images, the profile has 1"):
        face_crops(paths[:1], SIZE)
    with pytest.raises(UsageError, match="training needs 5 to 30 images, the profile has 35: keep the best 30"):
        face_crops(paths * 7, SIZE)
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(blank)
    with pytest.raises(UsageError, match="wall.png shows no face"):
        face_crops([*paths[:4], blank], SIZE)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(UsageError, match="cannot read .*notes.jpg as a picture"):
        face_crops([*paths[:4], text], SIZE)


def test_interrupted_training_resumes_and_the_lora_changes_the_image(models, crops, tmp_path):
    config = TrainConfig(steps=4, rank=4, learning_rate=1e-2, size=SIZE, token="ana", checkpoint_every=10)
    seen, said = [], []

    def ctrl_c_at_3(step, loss):
        seen.append(step)
        assert np.isfinite(loss)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(models["sd15"], crops, tmp_path / "lora", tmp_path / "work", config, said.append, ctrl_c_at_3)
    assert seen == [1, 2, 3] and not (tmp_path / "lora").exists()
    assert torch.load(tmp_path / "work" / CHECKPOINT, weights_only=True)["step"] == 3
    assert "interrupted at step 3: run the same command again to resume" in said

    seen.clear()
    lora = train_lora(models["sd15"], crops, tmp_path / "lora", tmp_path / "work", config, said.append,
                      lambda step, _loss: seen.append(step))
    assert seen == [4]  # the step count goes on from the checkpoint
    assert any(line.startswith("resuming from step 3") for line in said)
    assert not (tmp_path / "work" / CHECKPOINT).exists()
    info = json.loads((tmp_path / "lora" / INFO_FILE).read_text())
    assert info["caption"] == "a photo of ana person" and info["steps"] == 4 and info["family"] == "sd15"

    # the same four steps unbroken make the same LoRA: resumption lost nothing
    whole = train_lora(models["sd15"], crops, tmp_path / "whole", tmp_path / "work2", config, lambda _l: None)
    resumed, unbroken = load_file(lora), load_file(whole)
    assert resumed.keys() == unbroken.keys() and any("lora" in k for k in resumed)
    for key in resumed:
        torch.testing.assert_close(resumed[key], unbroken[key], rtol=1e-4, atol=1e-6)

    pipe = load_pipeline(models["sd15"])
    args = dict(width=64, height=64, steps=2, guidance=3.0, seed=5)
    plain = draw(pipe, "a photo of ana person", **args)
    set_lora(pipe, tmp_path / "lora")
    try:
        assert not np.array_equal(plain, draw(pipe, "a photo of ana person", **args))
    finally:
        set_lora(pipe, None)


def test_sdxl_trains_and_loads_back(models, crops, tmp_path):
    config = TrainConfig(steps=2, rank=4, learning_rate=1e-2, size=SIZE, checkpoint_every=1)
    lora = train_lora(models["sdxl"], crops, tmp_path / "lora", tmp_path / "work", config, lambda _l: None)
    assert any(k.startswith("unet.") for k in load_file(lora))
    pipe = load_pipeline(models["sdxl"])
    args = dict(width=64, height=64, steps=2, seed=5)
    plain = draw(pipe, "a photo of sks person", **args)
    set_lora(pipe, lora)
    try:
        assert not np.array_equal(plain, draw(pipe, "a photo of sks person", **args))
    finally:
        set_lora(pipe, None)


def test_a_checkpoint_of_other_pictures_is_not_resumed(models, crops, tmp_path):
    config = TrainConfig(steps=2, rank=4, size=SIZE, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        train_lora(models["sd15"], crops, tmp_path / "a", tmp_path / "work", config, lambda _l: None,
                   lambda step, _l: (_ for _ in ()).throw(KeyboardInterrupt) if step == 1 else None)
    said, seen = [], []
    train_lora(models["sd15"], crops[::-1], tmp_path / "b", tmp_path / "work", config, said.append,
               lambda step, _l: seen.append(step))
    assert seen == [1, 2]
    assert "the checkpoint was made from other images or settings: starting over" in said


def test_profile_train_stores_the_lora_in_the_profile(models, tmp_path, monkeypatch, capsys):
    """`podium profile create` then `podium profile train` through the real command line; needs
    the profile store (orchestrator/profiles/profile.py)."""
    from orchestrator.profiles import profile as profiles
    from orchestrator.cli.main import main

    monkeypatch.setenv("PODIUM_DATA_DIR", str(tmp_path / "data"))
    consent = "I, Ana Lima, agree that Podium may make videos with my face and voice"
    images = [a for p in photos(tmp_path / "in") for a in ("--image", str(p))]
    assert main(["profile", "create", "ana", *images, "--consent", consent]) == 0
    assert main(["profile", "train", "ana", "--base", str(models["sd15"]), "--steps", "2", "--rank", "2",
                 "--token", "ana", "--size", "64"]) == 0
    profile = profiles.load("ana")  # every file's sha256 checked against the manifest
    lora = profile.manifest["lora"]
    assert lora["caption"] == "a photo of ana person" and lora["steps"] == 2 and lora["folder"] == "lora"
    assert "lora/pytorch_lora_weights.safetensors" in profile.manifest["files"]
    assert "LoRA: yes" in capsys.readouterr().out
    assert not (tmp_path / "data" / "training" / "ana").exists()  # checkpoints gone once stored
    pipe = load_pipeline(models["sd15"])
    plain = draw(pipe, "a photo of ana person", width=64, height=64, steps=2, seed=1)
    set_lora(pipe, profile.folder / "lora")
    try:
        assert not np.array_equal(plain, draw(pipe, "a photo of ana person", width=64, height=64, steps=2, seed=1))
    finally:
        set_lora(pipe, None)

    assert main(["profile", "train", "nobody", "--base", str(models["sd15"])]) == 2
    assert "no profile named nobody" in capsys.readouterr().err
    assert main(["profile", "create", "solo", *images[:2], "--consent", consent]) == 0
    capsys.readouterr()
    assert main(["profile", "train", "solo", "--base", str(models["sd15"])]) == 2
    err = capsys.readouterr().err
    assert "training needs 5 to 30 images, the profile has 1" in err and "Traceback" not in err
    assert not profiles.load("solo").manifest.get("lora")  # the profile is as it was


def test_a_real_ctrl_c_keeps_the_steps_done(models, crops, tmp_path):
    """SIGINT to a training process (what Ctrl-C sends): the run after it goes on from there."""
    import signal
    import subprocess
    import time

    np.save(tmp_path / "crops.npy", np.stack(crops))
    code = (
        "import sys, numpy as np, torch; torch.set_num_threads(1)\n"
        "from podium.engines.lora_train import TrainConfig, train_lora\n"
        f"crops = list(np.load({str(tmp_path / 'crops.npy')!r}))\n"
        "config = TrainConfig(steps=int(sys.argv[1]), rank=2, size=64, checkpoint_every=1000)\n"
        f"train_lora({str(models['sd15'])!r}, crops, __import__('pathlib').Path({str(tmp_path / 'lora')!r}), "
        f"__import__('pathlib').Path({str(tmp_path / 'work')!r}), config, lambda l: print(l, flush=True), "
        "lambda s, _l: print(f'done {s}', flush=True))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", code, "10000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=env)
    lines = []
    deadline = time.monotonic() + 240
    for line in child.stdout:  # wait until three steps are done, then press Ctrl-C
        lines.append(line.strip())
        if line.startswith("done 3") or time.monotonic() > deadline:
            break
    child.send_signal(signal.SIGINT)
    lines += [line.strip() for line in child.stdout]
    assert child.wait(timeout=120) != 0 and "done 3" in lines
    stopped = next(line for line in lines if line.startswith("interrupted at step"))
    reached = int(stopped.split()[3].rstrip(":"))
    assert reached >= 3 and not (tmp_path / "lora").exists()

    again = subprocess.run([sys.executable, "-c", code, str(reached + 1)], capture_output=True, text=True,
                           env=env, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    out = again.stdout.splitlines()
    assert f"resuming from step {reached}" in " ".join(out)
    assert [line for line in out if line.startswith("done")] == [f"done {reached + 1}"]
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()
