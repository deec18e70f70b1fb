"""Tiny random-weight Whisper checkpoints built at test time for transformers' speech
recognition pipeline, nothing downloaded: `build` (a few letters' vocabulary; `real_size` for the
benchmark) for a profile's transcript, `make_tiny_whisper` (byte-level vocabulary and alignment
heads) for word timestamps. The tests check plumbing, not what they read."""
from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def build(folder: Path, real_size: bool = False) -> Path:
    """The model in `folder`; `real_size`: whisper-tiny's own dimensions and vocabulary size
    (what the benchmark times), else a few thousand parameters."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate([chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", ".", ","])}
    while real_size and len(vocab) < 51865 - len(SPECIALS):
        vocab[f"Ġw{len(vocab)}"] = len(vocab)  # filler words, so every id decodes
    for token in SPECIALS:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end, bos_token=end,
                     eos_token=end).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)  # 30 s windows, as the real one
    ids = {token: vocab[token] for token in SPECIALS}
    dims = dict(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
                max_target_positions=448) if real_size else dict(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_target_positions=32)
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, max_source_positions=1500, **dims, pad_token_id=ids[end],
        bos_token_id=ids[end], eos_token_id=ids[end], decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[end], pad_token_id=ids[end],
        bos_token_id=ids[end], no_timestamps_token_id=ids["<|notimestamps|>"],
        max_length=52 if real_size else 24,  # 52: about the 40 tokens of 15 s of speech
        is_multilingual=False, begin_suppress_tokens=[ids[end]],  # it always says something,
        suppress_tokens=[i for t, i in ids.items() if t != end])  # in letters

    model.save_pretrained(folder)
    return folder


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-printable-character table (what byte-level BPE vocabularies are keyed by)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))

def make_tiny_whisper(folder: Path) -> Path:
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperTokenizer, GenerationConfig)
    import torch
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for s in specials:
        vocab[s] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                           additional_special_tokens=specials[1:])
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                           max_source_positions=1500, max_target_positions=64,
                           decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=vocab["<|endoftext|>"],
                           pad_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|endoftext|>"])
    model = WhisperForConditionalGeneration(config)
    model.save_pretrained(folder)
    gen = GenerationConfig(decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=vocab["<|endoftext|>"],
                           pad_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|endoftext|>"],
                           max_length=24, is_multilingual=True, lang_to_id={"<|en|>": vocab["<|en|>"]},
                           task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
                           no_timestamps_token_id=vocab["<|notimestamps|>"], alignment_heads=[[0, 0], [0, 1]],
                           begin_suppress_tokens=[], suppress_tokens=[])
    gen.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(folder)
    return folder
