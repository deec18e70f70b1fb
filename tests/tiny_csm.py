"""A tiny random-weight Sesame CSM (transformers' CsmForConditionalGeneration with its Mimi
codec inside) in the file layout of huggingface.co/sesame/csm-1b, for the cloned-voice tests.

The parts are the real ones, made small and seeded: the Llama-style backbone and depth decoder
32 and 16 wide with one layer, 4 codebooks of 32 codes (32 of 2048 in the real model), a Mimi
codec with the real one's strides and kernels (so 12.5 frames a second at 24 kHz, as the
processor's encoded-length arithmetic assumes) but 4 filters and one transformer layer, and a
byte-level BPE tokenizer of the 256 bytes plus the four special tokens CSM's chat template and
processor use. The files are what the published repository holds: config.json,
generation_config.json, model.safetensors, preprocessor_config.json (the Mimi feature
extractor), tokenizer.json / tokenizer_config.json, chat_template.jinja.

    python tests/tiny_csm.py OUT_FOLDER
"""
from __future__ import annotations

import sys
from pathlib import Path

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>"]  # Llama 3's bos/eos, CSM's audio tokens
CODEBOOKS, CODES = 4, 32
# The rendering of transformers' convert_csm.py template (its checks left out): each turn is
# "<bos>[speaker]text<eos>", followed by "<|AUDIO|><|audio_eos|>" when the turn carries audio.
CHAT_TEMPLATE = ("{%- for message in messages %}{{- bos_token }}{{- '[' + message['role'] + ']' }}"
                 "{{- message['content'][0]['text'] }}{{- eos_token }}"
                 "{%- if message['content']|length > 1 %}{{- '<|AUDIO|><|audio_eos|>' }}{%- endif %}"
                 "{%- endfor %}")


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS[0], eos_token=SPECIALS[1],
                                   pad_token=SPECIALS[2])


def build(folder: str | Path, seed: int = 0, max_shard_size: str | None = None) -> Path:
    """Write the tiny model to `folder` (made if missing) and return it; `max_shard_size` (e.g.
    "100KB") splits the weights into shards beside model.safetensors.index.json, as
    save_pretrained does with a checkpoint over its shard size."""
    import torch
    from transformers import CsmConfig, CsmForConditionalGeneration, EncodecFeatureExtractor, MimiConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    codec = MimiConfig(hidden_size=16, num_filters=4, codebook_size=CODES, codebook_dim=8,
                       num_quantizers=CODEBOOKS, vector_quantization_hidden_dimension=8, upsample_groups=16,
                       num_hidden_layers=1, intermediate_size=32, num_attention_heads=2,
                       num_key_value_heads=2, head_dim=8)
    vocab = CODES + 3  # the codes, then specials up to the codebook pad (2048 + 3 = 2051 in csm-1b)
    config = CsmConfig(
        num_codebooks=CODEBOOKS, vocab_size=vocab, text_vocab_size=len(tok), hidden_size=32,
        intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        codebook_pad_token_id=vocab - 1, codebook_eos_token_id=0, pad_token_id=ids["<|AUDIO|>"],
        bos_token_id=ids["<|begin_of_text|>"], audio_token_id=ids["<|AUDIO|>"],
        audio_eos_token_id=ids["<|audio_eos|>"], codec_config=codec.to_dict(),
        depth_decoder_config=dict(num_codebooks=CODEBOOKS, backbone_hidden_size=32, vocab_size=vocab,
                                  hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, num_key_value_heads=1,
                                  max_position_embeddings=CODEBOOKS + 1))
    torch.manual_seed(seed)
    model = CsmForConditionalGeneration(config)
    with torch.no_grad():  # Mimi starts its codebooks at zero (trained ones are k-means centroids):
        for name, buffer in model.named_buffers():  # random centroids, so each code sounds different
            if name.endswith("codebook.embed_sum"):
                buffer.normal_()
    model.save_pretrained(folder, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    tok.save_pretrained(folder)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=codec.sampling_rate, padding_value=0.0).save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return folder


if __name__ == "__main__":
    print(build(sys.argv[1]))
