"""Presenter image: tiny random-weight SD1.5, SDXL and FLUX pipelines built from the real
diffusers / transformers classes (tokenizers written here from vocab files), saved with
save_pretrained and loaded by the engine's real loader, offline; a peft LoRA on the tiny UNet;
the PodiumPresenterImage node."""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,  # noqa: E402
                          CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer)

from podium.engines.presenter_image import (detect_family, draw, load_pipeline,  # noqa: E402
                                            presenter_prompt, set_lora)
from podium.engines.script import Script  # noqa: E402
from podium.errors import ModelMissingError, PodiumError  # noqa: E402
from podium import profiling  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.nodes.presenter_image import PodiumPresenterImage  # noqa: E402

PROMPT = "photo of a presenter"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: 256 printable stand-ins for the 256 bytes."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """A tiny CLIP BPE tokenizer from vocab.json / merges.txt written here (as SD ships them)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    merges = ["p h", "o t</w>", "e r</w>", "s e", "n t"]
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    vocab = {t: i for i, t in enumerate([*tokens, "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(folder)


def clip_text(cls=CLIPTextModel, **extra):
    torch.manual_seed(1)
    return cls(CLIPTextConfig(bos_token_id=515, eos_token_id=516, pad_token_id=516, hidden_size=32,
                              intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              vocab_size=600, **extra)).eval()


def vae(**extra):
    torch.manual_seed(2)
    config = dict(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                  norm_num_groups=2, sample_size=64)
    return diffusers.AutoencoderKL(**{**config, **extra})


def unet(**extra):
    torch.manual_seed(0)
    config = dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4,
                  out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                  attention_head_dim=4, norm_num_groups=2)
    return diffusers.UNet2DConditionModel(**{**config, **extra})


def hub_layout(folder: Path, tokenizer_files: Path, *names: str) -> Path:
    """Tokenizer folders as the hub ships them (vocab.json + merges.txt, no tokenizer.json)."""
    for name in names:
        shutil.rmtree(folder / name)
        shutil.copytree(tokenizer_files, folder / name)
    return folder


def build_sd15(folder: Path) -> Path:
    tok = clip_tokenizer(folder.with_name(folder.name + "-tok"))
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet(), vae=vae(), text_encoder=clip_text(), tokenizer=tok,
        scheduler=diffusers.PNDMScheduler(skip_prk_steps=True), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return hub_layout(folder, folder.with_name(folder.name + "-tok"), "tokenizer")


def build_sdxl(folder: Path) -> Path:
    tok = clip_tokenizer(folder.with_name(folder.name + "-tok"))
    net = unet(cross_attention_dim=64, use_linear_projection=True, addition_embed_type="text_time",
               addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32)
    pipe = diffusers.StableDiffusionXLPipeline(
        unet=net, vae=vae(), text_encoder=clip_text(), tokenizer=tok,
        text_encoder_2=clip_text(CLIPTextModelWithProjection, projection_dim=32), tokenizer_2=tok,
        scheduler=diffusers.EulerDiscreteScheduler())
    pipe.save_pretrained(folder)
    return hub_layout(folder, folder.with_name(folder.name + "-tok"), "tokenizer", "tokenizer_2")


def build_flux(folder: Path) -> Path:
    tok = clip_tokenizer(folder.with_name(folder.name + "-tok"))
    words = ["▁photo", "▁of", "▁a", "▁presenter", *"▁abcdefghijklmnopqrstuvwxyz"]
    t5_tok = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(w, -1.0) for w in words],
                         extra_ids=0)
    torch.manual_seed(3)
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)).eval()
    torch.manual_seed(4)
    transformer = diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    pipe = diffusers.FluxPipeline(
        transformer=transformer, vae=vae(latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                                           shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=clip_text(), tokenizer=tok, text_encoder_2=t5, tokenizer_2=t5_tok,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler())
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"sd15": build_sd15, "sdxl": build_sdxl, "flux": build_flux}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    folders = {name: build(root / name) for name, build in BUILDERS.items()}
    yield folders
    for folder in folders.values():
        get_manager().evict(f"diffusers:{folder.resolve()}:float32")


@pytest.mark.parametrize("family", list(BUILDERS))
def test_real_loader_same_seed_same_image(models, family):
    folder = models[family]
    assert detect_family(folder) == family
    pipe = load_pipeline(folder)
    assert type(pipe).__name__ == {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
                                   "flux": "FluxPipeline"}[family]
    assert load_pipeline(folder) is pipe  # cached by the memory manager
    assert f"diffusers:{folder.resolve()}:float32" in [k for k, *_ in get_manager().loaded()]
    one = draw(pipe, PROMPT, width=64, height=64, steps=2, guidance=3.0, seed=7)
    assert one.shape == (64, 64, 3) and one.dtype == np.uint8
    assert np.array_equal(one, draw(pipe, PROMPT, width=64, height=64, steps=2, guidance=3.0, seed=7))
    assert not np.array_equal(one, draw(pipe, PROMPT, width=64, height=64, steps=2, guidance=3.0, seed=8))


def test_progress_counts_steps(models):
    from podium import progress
    seen = []
    progress.set_hook(lambda value, total: seen.append((value, total)))
    try:
        draw(load_pipeline(models["sdxl"]), PROMPT, width=64, height=64, steps=3, seed=0)
        assert seen == [(1, 3), (2, 3), (3, 3)]
        seen.clear()  # PNDM (SD1.5's scheduler) runs one step more than asked: the bar knows
        draw(load_pipeline(models["sd15"]), PROMPT, width=64, height=64, steps=3, seed=0)
        assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    finally:
        progress.set_hook(None)


def test_flux_needs_multiples_of_16(models):
    with pytest.raises(PodiumError, match="multiples of 16"):
        draw(load_pipeline(models["flux"]), PROMPT, width=72, height=64, steps=1)


@pytest.fixture(scope="module")
def lora_file(models, tmp_path_factory):
    """A random LoRA made with peft on the tiny UNet, saved the way diffusers trainers do."""
    from peft import LoraConfig, get_peft_model_state_dict

    net = diffusers.UNet2DConditionModel.from_pretrained(models["sd15"] / "unet")
    torch.manual_seed(5)
    net.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                               target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for name, param in net.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("lora")
    diffusers.StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(net))
    return folder / "pytorch_lora_weights.safetensors"


def test_lora_changes_the_image_and_comes_off(models, lora_file):
    pipe = load_pipeline(models["sd15"])
    args = dict(width=64, height=64, steps=2, seed=3)
    plain = draw(pipe, PROMPT, **args)
    set_lora(pipe, lora_file, 1.0)
    with_lora = draw(pipe, PROMPT, **args)
    assert not np.array_equal(plain, with_lora)
    set_lora(pipe, lora_file.parent, 1.0)  # the folder holding it is the same LoRA: kept
    assert np.array_equal(with_lora, draw(pipe, PROMPT, **args))
    set_lora(pipe, lora_file, 0.3)
    assert not np.array_equal(with_lora, draw(pipe, PROMPT, **args))
    set_lora(pipe, None)
    assert np.array_equal(plain, draw(pipe, PROMPT, **args))
    with pytest.raises(PodiumError, match="LoRA not found"):
        set_lora(pipe, lora_file.parent / "missing.safetensors")
    assert np.array_equal(plain, draw(pipe, PROMPT, **args))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelMissingError, match="model_index.json not found.*podium models pull"):
        load_pipeline(tmp_path / "nothing-here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(ModelMissingError, match="cannot load the diffusers model"):
        load_pipeline(tmp_path / "broken")


def test_presenter_prompt():
    prompt = presenter_prompt("a bright lecture hall with a whiteboard", identity="sks woman")
    assert prompt.startswith("sks woman, photo of a presenter, head and shoulders, facing the camera")
    assert prompt.endswith("background: a bright lecture hall with a whiteboard")
    assert "background" not in presenter_prompt("")


def _node(models, lora_file, **overrides):
    inputs = dict(model="stable-diffusion-v1-5", prompt=PROMPT, negative="blurry", width=64, height=64,
                  steps=2, guidance=5.0, seed=1, model_folder=str(models["sd15"]))
    return PodiumPresenterImage().make(**{**inputs, **overrides})[0]


def test_node_returns_a_comfy_image(models, lora_file):
    spec = PodiumPresenterImage.INPUT_TYPES()
    assert spec["optional"]["script"] == ("PODIUM_SCRIPT",)
    assert PodiumPresenterImage.RETURN_TYPES == ("IMAGE",)
    image = _node(models, lora_file)
    assert tuple(image.shape) == (1, 64, 64, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert profiling.reports[-1].name == "presenter_image"
    assert torch.equal(image, _node(models, lora_file))
    assert not torch.equal(image, _node(models, lora_file, lora_path=str(lora_file)))
    assert torch.equal(image, _node(models, lora_file, lora_path=""))
    script = Script(title="t", segments=[], stage="a studio with plants")
    staged = _node(models, lora_file, prompt="", script=script)
    assert not torch.equal(image, staged)
    assert torch.equal(staged, _node(models, lora_file, prompt=presenter_prompt("a studio with plants")))


REGISTRY = """models:
  - id: stable-diffusion-v1-5
    kind: diffusers
    folder: diffusers/stable-diffusion-v1-5
    files:
      - {name: model_index.json, url: "https://example.invalid/model_index.json"}
    license: CreativeML OpenRAIL-M
    commercial_use: true
"""


def test_node_errors_are_clear(models, lora_file, tmp_path, monkeypatch):
    (tmp_path / "models.yaml").write_text(REGISTRY, encoding="utf-8")
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(tmp_path / "models.yaml"))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "models"))
    assert PodiumPresenterImage.INPUT_TYPES()["required"]["model"][0] == ["stable-diffusion-v1-5"]
    with pytest.raises(ModelMissingError, match="podium models pull stable-diffusion-v1-5"):
        _node(models, lora_file, model_folder="")
    with pytest.raises(PodiumError, match="multiples of 8"):
        _node(models, lora_file, width=60)
    with pytest.raises(ModelMissingError, match="not found"):
        _node(models, lora_file, model_folder="no-such-model")
    assert PodiumPresenterImage.VALIDATE_INPUTS(width=60, height=64) != True  # noqa: E712
    # installed where the registry says: found by id alone
    shutil.copytree(models["sd15"], tmp_path / "models" / "diffusers" / "stable-diffusion-v1-5")
    assert tuple(_node(models, lora_file, model_folder="").shape) == (1, 64, 64, 3)
    get_manager().evict(f"diffusers:{(tmp_path / 'models/diffusers/stable-diffusion-v1-5').resolve()}:float32")


def test_the_picture_is_drawn_at_the_models_native_size_in_the_videos_shape():
    """SDXL/FLUX draw about 1024² pixels, SD1.5 512², in the output's aspect (not 512x512 for all)."""
    from podium.engines.presenter_image import native_size

    assert native_size("sdxl", 16 / 9) == (1344, 768)  # an SDXL training bucket
    assert native_size("sdxl", 1.0) == (1024, 1024)
    assert native_size("sd15", 16 / 9) == (704, 384)
    w, h = native_size("sdxl", 9 / 16)
    assert (w, h) == (768, 1344)
