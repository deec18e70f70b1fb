"""CSM voice clone node: the narration in the voice of a short reference recording, with a
model whose weights allow commercial use (Sesame CSM-1B, Apache-2.0). The same inputs and
outputs as the F5-TTS node, so `--commercial` swaps one for the other."""
import tempfile
from pathlib import Path

from ..engines import voice_csm as engine
from ..engines.speech import write_wav
from ..errors import PodiumError
from ..files import temp_prefix
from ..models import entry_path, given_path, ids_of_kind
from ..profiling import reported_stage
from .comfy_types import audio_from_samples, samples_from_audio
from .fingerprint import content_hash, stat_stamp, upload_combo

NO_MODEL = "none (podium models pull csm-1b)"


def csm_model_ids() -> list[str]:
    return ids_of_kind("csm") or [NO_MODEL]


def model_folder(model: str):
    """The model's folder (its first file is config.json), or the one line naming the pull."""
    if model == NO_MODEL:
        raise PodiumError("no CSM model in models.yaml: download one with `podium models pull csm-1b`")
    return entry_path(model, folder=True)


def _reference(reference_audio: str):
    if not reference_audio or not reference_audio.strip():
        return None
    return given_path(reference_audio, "reference_audio", None)


class PodiumCsmVoiceClone:
    """Sesame CSM-1B zero-shot voice cloning (Apache-2.0 weights): usable commercially."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "reference_audio": upload_combo("audio", "5-15 s of the voice to clone, from the input folder (upload it with the button; WAV, other formats are converted with ffmpeg). Ignored when 'audio' is connected.", empty=True),
                "ref_text": ("STRING", {"multiline": True, "default": "", "tooltip": "Exactly what the reference audio says."}),
                "model": (csm_model_ids(), {"tooltip": "A CSM model from models.yaml (podium models list); csm-1b is Apache-2.0, its Mimi codec CC-BY-4.0: usable commercially."}),
                "temperature": ("FLOAT", {"default": 0.9, "min": 0.05, "max": 2.0, "step": 0.05, "tooltip": "Sampling temperature: lower is steadier, higher more varied."}),
                "top_k": ("INT", {"default": 50, "min": 1, "max": 2048, "tooltip": "Sample among the k likeliest codes."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip": "The same seed gives the same audio."}),
                "sentence_pause": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": "Silence between sentences, in seconds."}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "The reference as AUDIO (e.g. from Load Audio); overrides reference_audio."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SPEECH", "AUDIO")
    RETURN_NAMES = ("speech", "audio")
    FUNCTION = "speak"
    CATEGORY = "Podium/voice"
    DESCRIPTION = "Speak the script in a cloned voice (Sesame CSM-1B, commercial use allowed); keeps every sentence's exact timing."

    @classmethod
    def IS_CHANGED(cls, reference_audio="", model=NO_MODEL, **_):
        return content_hash(reference_audio, "reference_audio"), stat_stamp(lambda: [model_folder(model)])

    @classmethod
    def VALIDATE_INPUTS(cls, reference_audio=None, ref_text=None):
        # Linked inputs arrive as None: only values typed in the node are checked here.
        if ref_text is not None and not ref_text.strip():
            return engine.EMPTY_REF_TEXT
        try:
            path = _reference(reference_audio)
        except PodiumError as err:  # inside ComfyUI: the one neutral answer
            return str(err)
        if path is not None and not path.exists():
            return f"reference_audio: {path} not found"
        return True

    @reported_stage("voice")
    def speak(self, script, reference_audio, ref_text, model, temperature, top_k, seed,
              sentence_pause, audio=None):
        if not (ref_text or "").strip():
            raise PodiumError(engine.EMPTY_REF_TEXT)
        with tempfile.TemporaryDirectory(prefix=temp_prefix("ref")) as tmp:
            if audio is not None:
                reference = Path(tmp) / "reference.wav"
                write_wav(reference, *samples_from_audio(audio))
            elif _reference(reference_audio) is not None:
                reference = _reference(reference_audio)
            else:
                raise PodiumError("give reference_audio (a recording of the voice to clone) "
                                  "or connect an AUDIO input")
            engine.read_reference(reference)  # checked before the model loads
            csm = engine.load_csm(model_folder(model))
            speech = engine.clone(csm, script, reference, ref_text, seed=seed, temperature=temperature,
                                  top_k=top_k, sentence_pause=sentence_pause)
        return speech, audio_from_samples(speech.samples, speech.sample_rate)
