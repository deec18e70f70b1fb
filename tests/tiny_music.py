"""Tiny random-weight ACE-Step 1.5 and Stable Audio Open pipelines in diffusers format, for the
music and sound-effect tests.

The parts are the real ones (diffusers' AceStepPipeline with its AceStepTransformer1DModel,
AceStepConditionEncoder and AutoencoderOobleck, transformers' Qwen3Model and Qwen2Tokenizer,
FlowMatchEulerDiscreteScheduler), made small and seeded, and written with save_pretrained in
the layout of the real download (model_index.json, one folder per component), so the engine
loads them with its real loader, offline.

Sizes: latents at 25 per second like the real model (the VAE's sample rate over its total
downsampling: 800 Hz / 32), 8 latent channels instead of 64, 32-wide transformers of 2 layers,
a byte-level BPE vocabulary of 256 bytes and a few merges. A second of audio takes a few
tens of milliseconds per step on one CPU thread.

`build_stable_audio` does the same for StableAudioPipeline (StableAudioDiTModel,
StableAudioProjectionModel, AutoencoderOobleck, T5EncoderModel + a Unigram T5Tokenizer,
CosineDPMSolverMultistepScheduler): 64 latents of 32 samples at 800 Hz, so at most 2.56 s.

    python tests/tiny_music.py OUT_FOLDER [stable-audio]
"""
from __future__ import annotations

import sys
from pathlib import Path

SAMPLE_RATE = 800
DOWNSAMPLING = (4, 8)  # 800 / 32 = 25 latents per second, as ACE-Step 1.5's 48000 / 1920
ACOUSTIC = 8  # latent channels (64 in the real model)


def tokenizer():
    """A byte-level BPE Qwen2Tokenizer (the real one has 151k tokens; ids here stay < 300)."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("e", "r"), ("i", "n"), ("a", "n"), ("o", "n")]
    tokens = chars + ["".join(m) for m in merges]
    vocab = {t: i for i, t in enumerate(tokens)}
    vocab["<|endoftext|>"] = len(vocab)
    return Qwen2Tokenizer(vocab=vocab, merges=merges)


def build(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to `folder` (made if missing) and return it."""
    import torch
    from diffusers import AceStepPipeline, AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    small = dict(num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=10000.0,
                 sliding_window=16)
    torch.manual_seed(seed)
    transformer = AceStepTransformer1DModel(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, in_channels=3 * ACOUSTIC,
        audio_acoustic_hidden_dim=ACOUSTIC, patch_size=2, is_turbo=True, model_version="turbo", **small)
    tok = tokenizer()
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, vocab_size=len(tok), max_position_embeddings=512)).eval()
    condition_encoder = AceStepConditionEncoder(
        hidden_size=32, intermediate_size=64, text_hidden_dim=32, timbre_hidden_dim=ACOUSTIC,
        num_lyric_encoder_hidden_layers=2, num_timbre_encoder_hidden_layers=2, **small)
    vae = AutoencoderOobleck(
        encoder_hidden_size=4, downsampling_ratios=list(DOWNSAMPLING), channel_multiples=[1, 2],
        decoder_channels=4, decoder_input_channels=ACOUSTIC, audio_channels=2,
        sampling_rate=SAMPLE_RATE)
    pipe = AceStepPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tok, transformer=transformer,
        condition_encoder=condition_encoder,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0))
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


def build_stable_audio(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny Stable Audio pipeline to `folder` and return it."""
    import torch
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline)
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    words = ["▁applause", "▁door", "▁sound", "▁effect", *"▁abcdefghijklmnopqrstuvwxyz"]
    tok = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(w, -1.0) for w in words],
                      extra_ids=0, model_max_length=128)  # the pipeline pads prompts to this
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                           num_heads=4)).eval()
    projection = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=16, min_value=0, max_value=512)
    transformer = StableAudioDiTModel(
        sample_size=64, in_channels=ACOUSTIC, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        num_key_value_attention_heads=1, out_channels=ACOUSTIC, cross_attention_dim=16, time_proj_dim=8,
        global_states_input_dim=32, cross_attention_input_dim=16)
    vae = AutoencoderOobleck(
        encoder_hidden_size=4, downsampling_ratios=list(DOWNSAMPLING), channel_multiples=[1, 2],
        decoder_channels=4, decoder_input_channels=ACOUSTIC, audio_channels=2, sampling_rate=SAMPLE_RATE)
    scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction",
                                                  sigma_data=1.0, sigma_schedule="exponential")
    pipe = StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection, tokenizer=tok,
                               transformer=transformer, scheduler=scheduler)
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print((build_stable_audio if sys.argv[2:] == ["stable-audio"] else build)(sys.argv[1]))
