"""Soundtrack nodes: a music file from the input folder, and the mix of voice and music."""
from ..engines import soundtrack
from ..engines.speech import resample
from ..errors import PodiumError
from ..paths import resolve_input
from ..profiling import reported_stage
from .comfy_types import audio_from_samples, audio_seconds, samples_from_audio
from .fingerprint import check_upload, content_hash, upload_combo

RATE = 48000  # what the mix is made at (the stitched video's audio rate)
MAX_TRACK_S = 1200.0  # with no voice linked: a longer video loops these 20 minutes (~230 MB)
LEAD_MARGIN_S = 15.0  # read past the voice's length: the mix trims silence at the track's start
_DEFAULTS = soundtrack.MixSettings()


class PodiumMusicFile:
    """A music track you have (WAV, FLAC, MP3, OGG, M4A ...), decoded by ffmpeg on the CPU:
    the draft preset's music, no model or download needed. Only what the video can use is
    decoded (a small upload can hold hours of audio): as long as the voice when it is linked,
    else at most MAX_TRACK_S."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": upload_combo("audio", "The track, from ComfyUI's input folder (upload it "
                                     "with the button); outside ComfyUI a path.", default="music.mp3"),
            },
            "optional": {
                "max_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 7200.0, "step": 1.0,
                                          "tooltip": "Read at most this much of it; 0: as long as the "
                                                     "voice (linked), else the first "
                                                     f"{MAX_TRACK_S / 60:g} minutes."}),
                "voice": ("AUDIO", {"tooltip": "The narration the music goes under: only as much of "
                                               "the track as it lasts is read (the mix loops or trims "
                                               "to the voice anyway)."}),
            },
        }

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("music",)
    FUNCTION = "load"
    CATEGORY = "Podium/soundtrack"
    DESCRIPTION = "Load a music track (any format ffmpeg reads) as AUDIO, mono, 48 kHz."

    @classmethod
    def IS_CHANGED(cls, file="", **_):
        return content_hash(file, "file")

    @classmethod
    def VALIDATE_INPUTS(cls, file=None):
        return check_upload(file, "file")

    @reported_stage("music")
    def load(self, file, max_seconds=0.0, voice=None):
        path = resolve_input(file, "file")
        if not path.is_file():
            raise PodiumError(f"music file {path} not found: give the name of an audio file")
        samples = soundtrack.decode(path, RATE, max_seconds=music_seconds(max_seconds, voice))
        return (audio_from_samples(samples, RATE),)


def music_seconds(max_seconds: float, voice=None) -> float:
    """How much of the track to decode: what the user asked for, never more than the voice
    (and a margin for the silence the mix trims from the track's start) or MAX_TRACK_S."""
    need = MAX_TRACK_S
    if voice is not None:
        need = audio_seconds(voice) + LEAD_MARGIN_S
    return min(max_seconds, need) if max_seconds and max_seconds > 0 else need


class PodiumMix:
    """Music under the narration: looped (equal-power cross-fade at a quiet point) or trimmed
    to the voice, faded in and out, ducked while someone speaks, and the mix brought to a
    loudness target with a true-peak ceiling. One whole narration at a time: Podium's command
    line mixes the stitched video itself (`--music`), so a graph it renders per segment does
    not need this node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "voice": ("AUDIO",),
                "music": ("AUDIO",),
                "music_volume": ("FLOAT", {"default": _DEFAULTS.music_volume_db, "min": -40.0, "max": 10.0,
                                           "step": 0.5, "tooltip": "The music in the pauses, dB relative to the voice."}),
                "duck": ("FLOAT", {"default": _DEFAULTS.duck_db, "min": 0.0, "max": 40.0, "step": 0.5,
                                   "tooltip": "How far the music drops while someone speaks, dB."}),
                "loudness": ("FLOAT", {"default": _DEFAULTS.loudness_lufs, "min": -40.0, "max": -5.0,
                                       "step": 0.5, "tooltip": "Integrated loudness of the mix, LUFS (-16: online video, -23: broadcast)."}),
            },
            "optional": {
                "true_peak": ("FLOAT", {"default": _DEFAULTS.true_peak_db, "min": -9.0, "max": 0.0, "step": 0.1,
                                        "tooltip": "Highest true peak of the mix, dBTP."}),
                "fade_in": ("FLOAT", {"default": _DEFAULTS.fade_in_s, "min": 0.0, "max": 30.0, "step": 0.1}),
                "fade_out": ("FLOAT", {"default": _DEFAULTS.fade_out_s, "min": 0.0, "max": 30.0, "step": 0.1}),
                "loop_crossfade": ("FLOAT", {"default": _DEFAULTS.loop_crossfade_s, "min": 0.01, "max": 5.0,
                                             "step": 0.01, "tooltip": "Cross-fade where a short track loops, seconds."}),
            },
        }

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "mix"
    CATEGORY = "Podium/soundtrack"
    DESCRIPTION = "Mix music under the voice (ducked, faded, looped) at a loudness target."

    @reported_stage("mix")
    def mix(self, voice, music, music_volume, duck, loudness, true_peak=_DEFAULTS.true_peak_db,
            fade_in=_DEFAULTS.fade_in_s, fade_out=_DEFAULTS.fade_out_s,
            loop_crossfade=_DEFAULTS.loop_crossfade_s):
        speech, speech_rate = samples_from_audio(voice)
        track, track_rate = samples_from_audio(music)
        if not len(speech):
            raise PodiumError("the voice is empty: nothing to mix the music under")
        settings = soundtrack.MixSettings(music_volume_db=music_volume, duck_db=duck,
                                          loudness_lufs=loudness, true_peak_db=true_peak,
                                          fade_in_s=fade_in, fade_out_s=fade_out,
                                          loop_crossfade_s=loop_crossfade)
        mixed = soundtrack.mix(resample(speech, speech_rate, RATE), RATE,
                               resample(track, track_rate, RATE), settings=settings)
        return (audio_from_samples(mixed, RATE),)
