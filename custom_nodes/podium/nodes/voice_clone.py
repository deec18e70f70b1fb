"""Voice clone node: the narration in the voice of a short reference recording (F5-TTS)."""
import tempfile
from pathlib import Path

from ..engines import voice_clone as engine
from ..engines.speech import write_wav
from ..errors import PodiumError
from ..files import temp_prefix
from ..profiling import reported_stage
from ..models import entry_path, given_path, ids_of_kind, load_registry
from .comfy_types import audio_from_samples, samples_from_audio
from .fingerprint import content_hash, stat_stamp, upload_combo

NO_MODEL = "none (use ckpt_path)"
VOCODER_ID = "vocos-mel-24khz"
DEFAULT_CONFIG = "F5TTS_v1_Base"


def f5_model_ids() -> list[str]:
    return ids_of_kind("f5-tts") or [NO_MODEL]


MODEL_FOLDER = "tts/f5"  # vocab and vocoder live beside it, under ComfyUI's models/tts


def _path(text: str, what: str = "path", models: str = None, directory: bool = False):
    """A path input, or None when empty; inside ComfyUI confined (see paths.resolve_input)."""
    if not text or not text.strip():
        return None
    return given_path(text, what, models, directory=directory)


def model_files(model: str, ckpt_path="", vocab_path="", vocoder_dir="", model_config=""):
    """(checkpoint, vocab.txt, vocoder folder, config) from the registry, overridden by paths."""
    registry = load_registry() if model != NO_MODEL else None
    ckpt = _path(ckpt_path, "ckpt_path", MODEL_FOLDER) or (entry_path(model, registry) if registry else None)
    if ckpt is None:
        raise PodiumError("no F5-TTS model in models.yaml: give ckpt_path, vocab_path and vocoder_dir")
    vocab = _path(vocab_path, "vocab_path", MODEL_FOLDER)
    if vocab is None and (ckpt.parent / "vocab.txt").is_file():
        vocab = ckpt.parent / "vocab.txt"
    if vocab is None and registry:
        names = [f.name for f in registry.get(model).files if f.name.endswith(".txt")]
        vocab = registry.resolve_file(model, names[0] if names else "vocab.txt")
    if vocab is None:
        raise PodiumError(f"no vocab.txt beside {ckpt}: give vocab_path")
    vocoder = _path(vocoder_dir, "vocoder_dir", MODEL_FOLDER, directory=True) or entry_path(VOCODER_ID, registry, folder=True)
    config = model_config.strip() if model_config and model_config.strip() else (
        model if model in engine.shipped_configs() else DEFAULT_CONFIG)
    if config.endswith(".yaml"):
        config = str(given_path(config, "model_config", MODEL_FOLDER))
    return ckpt, vocab, vocoder, config


class PodiumF5VoiceClone:
    """F5-TTS zero-shot voice cloning: any voice from 5-12 s of it and its transcript."""

    @classmethod
    def INPUT_TYPES(cls):
        path = lambda tip: ("STRING", {"default": "", "tooltip": tip})
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "reference_audio": upload_combo("audio", "5-12 s of the voice to clone, from the input folder (upload it with the button; WAV, other formats are converted with ffmpeg). Ignored when 'audio' is connected.", empty=True),
                "ref_text": ("STRING", {"multiline": True, "default": "", "tooltip": "Exactly what the reference audio says."}),
                "model": (f5_model_ids(), {"tooltip": "An F5-TTS model from models.yaml (podium models list); F5TTS_v1_Base weights are non-commercial (CC-BY-NC-4.0)."}),
                "nfe_step": ("INT", {"default": 32, "min": 1, "max": 128, "tooltip": "Denoising steps: more is cleaner and slower (16 for drafts)."}),
                "speed": ("FLOAT", {"default": 1.0, "min": 0.3, "max": 3.0, "step": 0.05, "tooltip": "Above 1 speaks faster."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip": "The same seed gives the same audio."}),
                "cross_fade": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Seconds of overlap where a long sentence's chunks are joined."}),
                "sentence_pause": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": "Silence between sentences, in seconds."}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "The reference as AUDIO (e.g. from Load Audio); overrides reference_audio."}),
                "ckpt_path": path("An F5-TTS checkpoint (.safetensors or .pt); overrides 'model'."),
                "vocab_path": path("The checkpoint's vocab.txt (default: beside it, else the model's)."),
                "vocoder_dir": path("A vocos-mel-24khz folder (config.yaml + pytorch_model.bin)."),
                "model_config": path("An f5-tts config name (F5TTS_v1_Base, F5TTS_Base, ...) or a model .yaml; default: from 'model'."),
            },
        }

    RETURN_TYPES = ("PODIUM_SPEECH", "AUDIO")
    RETURN_NAMES = ("speech", "audio")
    FUNCTION = "speak"
    CATEGORY = "Podium/voice"
    DESCRIPTION = "Speak the script in a cloned voice (F5-TTS); keeps every sentence's exact timing."

    @classmethod
    def IS_CHANGED(cls, reference_audio="", model=NO_MODEL, ckpt_path="", vocab_path="", vocoder_dir="",
                   model_config="", **_):
        def files():
            ckpt, vocab, vocoder, config = model_files(model, ckpt_path, vocab_path, vocoder_dir, model_config)
            return [ckpt, vocab, vocoder] + ([Path(config)] if config.endswith(".yaml") else [])
        return content_hash(reference_audio, "reference_audio"), stat_stamp(files)

    @classmethod
    def VALIDATE_INPUTS(cls, reference_audio=None, ref_text=None, ckpt_path=None,
                        vocab_path=None, vocoder_dir=None):
        # Linked inputs arrive as None: only values typed in the node are checked here.
        if ref_text is not None and not ref_text.strip():
            return engine.EMPTY_REF_TEXT
        for name, value, models, directory in (
                ("reference_audio", reference_audio, None, False), ("ckpt_path", ckpt_path, MODEL_FOLDER, False),
                ("vocab_path", vocab_path, MODEL_FOLDER, False), ("vocoder_dir", vocoder_dir, MODEL_FOLDER, True)):
            try:
                path = _path(value, name, models, directory)
            except PodiumError as err:  # inside ComfyUI: the one neutral answer
                return str(err)
            if path is not None and not path.exists():
                return f"{name}: {path} not found"
        return True

    @reported_stage("voice")
    def speak(self, script, reference_audio, ref_text, model, nfe_step, speed, seed, cross_fade,
              sentence_pause, audio=None, ckpt_path="", vocab_path="", vocoder_dir="",
              model_config=""):
        if not (ref_text or "").strip():
            raise PodiumError(engine.EMPTY_REF_TEXT)
        ckpt, vocab, vocoder, config = model_files(model, ckpt_path, vocab_path, vocoder_dir,
                                                   model_config)
        with tempfile.TemporaryDirectory(prefix=temp_prefix("ref")) as tmp:
            if audio is not None:
                reference = Path(tmp) / "reference.wav"
                write_wav(reference, *samples_from_audio(audio))
            elif _path(reference_audio, "reference_audio") is not None:
                reference = _path(reference_audio, "reference_audio")
            else:
                raise PodiumError("give reference_audio (a recording of the voice to clone) "
                                  "or connect an AUDIO input")
            reference = engine.reference_wav(reference, tmp)  # checked before the model loads
            f5 = engine.load_f5(ckpt, vocab, vocoder, model_name=config)
            speech = engine.clone(f5, script, reference, ref_text, nfe_step=nfe_step, speed=speed,
                                  seed=seed, cross_fade_s=cross_fade, sentence_pause=sentence_pause)
        return speech, audio_from_samples(speech.samples, speech.sample_rate)
