"""Voice nodes: narration audio from a script."""
from ..profiling import reported_stage
from ..engines import voice as engine
from ..errors import PodiumError
from ..models import entry_path, given_path, ids_of_kind, model_path
from .comfy_types import audio_from_samples
from .fingerprint import stat_stamp


def piper_voice_ids() -> list[str]:
    return ids_of_kind("piper-voice")


VOICE_FOLDER = "tts/piper"


def _voice(voice: str, voice_path: str = ""):
    """The .onnx of a registry voice, or one given by path (inside ComfyUI from the input or
    tts model folders only)."""
    return model_path(voice, voice_path, what="voice_path", folder=VOICE_FOLDER)


def _speaker_voice(value: str):
    """A speaker's voice: a registry id, or a .onnx path as for voice_path."""
    return given_path(value, "speaker_voices", VOICE_FOLDER) if value.endswith(".onnx") else entry_path(value)


class PodiumPiperTTS:
    """Piper text-to-speech: fast on any CPU, the draft preset's voice."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "voice": (piper_voice_ids(), {"default": engine.DEFAULT_VOICE,
                                              "tooltip": "A voice from models.yaml (podium models list)."}),
                "length_scale": ("FLOAT", {"default": 1.0, "min": 0.5, "max": 2.0, "step": 0.05,
                                           "tooltip": "Above 1 speaks slower, below 1 faster."}),
                "sentence_pause": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 3.0, "step": 0.05,
                                             "tooltip": "Silence between sentences, in seconds."}),
            },
            "optional": {
                "voice_path": ("STRING", {"default": "", "tooltip": "Any Piper .onnx voice (its .onnx.json beside it; inside ComfyUI: in the input folder or models/tts); overrides 'voice'."}),
                "speaker_id": ("INT", {"default": -1, "min": -1, "max": 10000,
                                       "tooltip": "Speaker of a multi-speaker voice; -1 for its default."}),
                "noise_scale": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 2.0, "step": 0.01,
                                          "tooltip": "Variation in the voice; -1: the voice's own. 0 with noise_w 0: the same audio on every run."}),
                "noise_w": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 2.0, "step": 0.01,
                                      "tooltip": "Variation in timing; -1: the voice's own."}),
                "speaker_voices": ("STRING", {"multiline": True, "default": "",
                                              "tooltip": "Dialogue: one 'Speaker: voice id or .onnx path' per line; others use 'voice'."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SPEECH", "AUDIO")
    RETURN_NAMES = ("speech", "audio")
    FUNCTION = "speak"
    CATEGORY = "Podium/voice"
    DESCRIPTION = "Speak the script with a Piper voice; keeps every sentence's exact timing."

    @classmethod
    def IS_CHANGED(cls, voice="", voice_path="", speaker_voices="", **_):
        def files():
            mains = [_voice(voice, voice_path)]
            mains += [_speaker_voice(v)
                      for v in engine.parse_speaker_voices(speaker_voices or "").values()]
            return [f for m in mains for f in (m, m.with_name(m.name + ".json"))]
        return stat_stamp(files)

    @classmethod
    def VALIDATE_INPUTS(cls, voice_path="", speaker_voices=""):
        if voice_path and not voice_path.endswith(".onnx"):
            return f"voice_path must be a Piper .onnx voice, got {voice_path!r}"
        try:
            engine.parse_speaker_voices(speaker_voices or "")
        except PodiumError as err:
            return str(err)
        return True

    @reported_stage("voice")
    def speak(self, script, voice, length_scale, sentence_pause, voice_path="", speaker_id=-1,
              noise_scale=-1.0, noise_w=-1.0, speaker_voices=""):
        piper = engine.load_voice(_voice(voice, voice_path))
        others = {name: engine.load_voice(_speaker_voice(v))
                  for name, v in engine.parse_speaker_voices(speaker_voices).items()}
        if speaker_id >= 0 and speaker_id >= piper.config.num_speakers:
            raise PodiumError(f"speaker_id {speaker_id} is out of range: this voice has "
                              f"{piper.config.num_speakers} speaker(s)")
        speech = engine.synthesize(
            piper, script, length_scale=length_scale,
            speaker_id=speaker_id if speaker_id >= 0 else None, sentence_pause=sentence_pause,
            speaker_voices=others,
            noise_scale=noise_scale if noise_scale >= 0 else None,
            noise_w=noise_w if noise_w >= 0 else None,
        )
        return speech, audio_from_samples(speech.samples, speech.sample_rate)
