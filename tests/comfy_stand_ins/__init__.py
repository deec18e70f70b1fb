"""TEST-ONLY ComfyUI nodes: stand-ins for the two encoders whose size ComfyUI fixes and a 2-core
CPU test cannot run. Linked into the test ComfyUI's custom_nodes by tests/test_comfyui_cinema.py;
never part of the pack and never in a shipped workflow.

- TestStandInUMT5Encode replaces CLIPLoader (type wan, umt5-xxl: a fixed 5.7 B-parameter config,
  comfy/text_encoders/umt5_config_xxl.json) + CLIPTextEncode. It gives CONDITIONING of the shape
  that encoder gives: [1, 512, 4096] (512: the Wan tokenizer's min_length), rows past the text's
  tokens zero (umt5's zero_out_masked), the token rows seeded from the text's words.
- TestStandInWhisperLoader replaces AudioEncoderLoader for HuMo: its AUDIO_ENCODER's
  encode_audio gives what TestStandInWhisperEncode gives, so ComfyUI's own AudioEncoderEncode
  (which PodiumWanChain expands into, once per audio piece) runs on it.
- TestStandInWhisperEncode replaces AudioEncoderLoader + AudioEncoderEncode for HuMo
  (whisper-large-v3: a fixed 635 M config that always encodes 30 s). It gives the
  AUDIO_ENCODER_OUTPUT that encoder gives: 33 hidden states of [1, 1500, 1280] (50 per second
  over 30 s) and audio_samples at 16 kHz, computed from the real audio: ComfyUI's own Whisper
  log-mel front end, then a fixed random projection 128 -> 1280 per layer, so the features
  follow the speech.
"""
from __future__ import annotations

import hashlib

import torch
import torchaudio

UMT5_TOKENS, UMT5_WIDTH = 512, 4096
WHISPER_LAYERS, WHISPER_FRAMES, WHISPER_WIDTH = 33, 1500, 1280


class TestStandInUMT5Encode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": ""})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "testing/stand-ins"

    def encode(self, text):
        words = text.split()
        cond = torch.zeros(1, UMT5_TOKENS, UMT5_WIDTH)
        for i, word in enumerate(words[:UMT5_TOKENS - 1] + ["</s>"]):
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
            cond[0, i] = torch.randn(UMT5_WIDTH, generator=torch.Generator().manual_seed(seed)) * 0.1
        return ([[cond, {"pooled_output": None}]],)


class TestStandInWhisperEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",)}}

    RETURN_TYPES = ("AUDIO_ENCODER_OUTPUT",)
    FUNCTION = "encode"
    CATEGORY = "testing/stand-ins"

    def encode(self, audio):
        from comfy.audio_encoders.whisper import WhisperFeatureExtractor
        waveform = torchaudio.functional.resample(audio["waveform"].float(), audio["sample_rate"], 16000)
        mel = WhisperFeatureExtractor(n_mels=128)(waveform)             # [1, 128, 3000]
        mel = torch.nn.functional.avg_pool1d(mel, 2).transpose(1, 2)    # [1, 1500, 128]: 50 per s
        gen = torch.Generator().manual_seed(0)
        layers = tuple(mel @ (torch.randn(128, WHISPER_WIDTH, generator=gen) / 128 ** 0.5)
                       for _ in range(WHISPER_LAYERS))
        return ({"encoded_audio": layers[-1], "encoded_audio_all_layers": layers,
                 "audio_samples": waveform.shape[2]},)


class _StandInWhisper:
    """What AudioEncoderEncode calls: encode_audio(waveform, sample_rate)."""

    def encode_audio(self, waveform, sample_rate):
        return TestStandInWhisperEncode().encode({"waveform": waveform, "sample_rate": sample_rate})[0]


class TestStandInWhisperLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("AUDIO_ENCODER",)
    FUNCTION = "load"
    CATEGORY = "testing/stand-ins"

    def load(self):
        return (_StandInWhisper(),)


NODE_CLASS_MAPPINGS = {"TestStandInWhisperLoader": TestStandInWhisperLoader,"TestStandInUMT5Encode": TestStandInUMT5Encode,
                       "TestStandInWhisperEncode": TestStandInWhisperEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"TestStandInWhisperLoader": "TEST stand-in: whisper-large-v3 loader","TestStandInUMT5Encode": "TEST stand-in: umt5-xxl text encode",
                              "TestStandInWhisperEncode": "TEST stand-in: whisper-large-v3 encode"}
