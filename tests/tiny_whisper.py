"""A tiny random-weight Whisper checkpoint built at test time, whole as transformers' speech
recognition pipeline wants it (config, weights, generation config with alignment heads,
feature extractor, a byte-level tokenizer with Whisper's special tokens): word-timestamp
plumbing, not accuracy. Nothing is downloaded."""
import json
from pathlib import Path

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
