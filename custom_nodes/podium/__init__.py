"""Podium: a presenter who speaks your script. ComfyUI loads the mappings below."""
from .nodes.output import PodiumSaveVideo
from .nodes.presenter import PodiumPresenter
from .nodes.script import PodiumDirectScript
from .nodes.subtitles import PodiumSubtitles
from .nodes.voice import PodiumPiperTTS

NODE_CLASS_MAPPINGS = {
    "PodiumDirectScript": PodiumDirectScript,
    "PodiumPiperTTS": PodiumPiperTTS,
    "PodiumPresenter": PodiumPresenter,
    "PodiumSubtitles": PodiumSubtitles,
    "PodiumSaveVideo": PodiumSaveVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PodiumDirectScript": "Podium Direct Script",
    "PodiumPiperTTS": "Podium Piper Voice",
    "PodiumPresenter": "Podium Presenter (portrait or slides)",
    "PodiumSubtitles": "Podium Subtitles",
    "PodiumSaveVideo": "Podium Save Video (MP4)",
}
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
