"""A tiny random-weight Whisper checkpoint built at test time for transformers' speech
recognition pipeline, nothing downloaded. One builder serves a profile's transcript and the
captions' word timestamps: a byte-level vocabulary with Whisper's special and timestamp tokens and
alignment heads; `real_size` gives whisper-tiny's own dimensions and vocabulary size (what the
benchmark times). The tests check plumbing, not what it reads."""
from __future__ import annotations

import json
import string
from pathlib import Path

END = "<|endoftext|>"
SPECIALS = [END, "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
TIMESTAMPS = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
WHISPER_TINY_VOCAB = 51865
# what it may write: letters, a space, . and , (and <|0.00|>, which word timestamps begin with:
# with no timestamp token allowed at all transformers' word timing finds no tokens and fails)
SAYS = set(string.ascii_letters + ".,") | {"Ġ", TIMESTAMPS[0]}


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


def build(folder: Path, real_size: bool = False) -> Path:
    """The checkpoint in `folder`, returned; `real_size`: whisper-tiny's dimensions and vocabulary
    size, else a few thousand parameters. It always says something (never ends first), in letters."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    while real_size and len(vocab) < WHISPER_TINY_VOCAB - len(SPECIALS) - len(TIMESTAMPS):
        vocab[f"Ġw{len(vocab)}"] = len(vocab)  # filler words, so every id decodes
    for token in SPECIALS + TIMESTAMPS:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=END, bos_token=END,
                     eos_token=END, additional_special_tokens=SPECIALS[1:] + TIMESTAMPS).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(folder)  # 30 s windows
    ids = {token: vocab[token] for token in SPECIALS}
    dims = dict(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
                max_target_positions=448) if real_size else dict(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_target_positions=64)
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, max_source_positions=1500, **dims, pad_token_id=ids[END],
        bos_token_id=ids[END], eos_token_id=ids[END], decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[END], pad_token_id=ids[END],
        bos_token_id=ids[END], no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]}, task_to_id={"transcribe": ids["<|transcribe|>"],
                                                         "translate": ids["<|translate|>"]},
        max_length=52 if real_size else 24,  # 52: about the 40 tokens of 15 s of speech
        alignment_heads=[[0, 0], [0, 1]],  # cross-attention heads read for word timestamps
        begin_suppress_tokens=[ids[END]],
        suppress_tokens=[i for t, i in vocab.items() if t != END and t not in SAYS])
    model.save_pretrained(folder)
    return folder
