"""Every node of the pack, by the class name workflows use, and its editor name."""
from .guided import PodiumGuidedScript, PodiumOllamaSettings
from .lipsync import PodiumLipSync
from .output import PodiumSaveImage, PodiumSaveVideo
from .presenter import PodiumPresenter
from .script import PodiumDirectScript
from .subtitles import PodiumSubtitles
from .voice import PodiumPiperTTS

NODE_CLASS_MAPPINGS = {
    "PodiumDirectScript": PodiumDirectScript,
    "PodiumGuidedScript": PodiumGuidedScript,
    "PodiumOllamaSettings": PodiumOllamaSettings,
    "PodiumPiperTTS": PodiumPiperTTS,
    "PodiumLipSync": PodiumLipSync,
    "PodiumPresenter": PodiumPresenter,
    "PodiumSubtitles": PodiumSubtitles,
    "PodiumSaveVideo": PodiumSaveVideo,
    "PodiumSaveImage": PodiumSaveImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PodiumDirectScript": "Podium Direct Script",
    "PodiumGuidedScript": "Podium Guided Script (Ollama)",
    "PodiumOllamaSettings": "Podium Ollama Settings",
    "PodiumPiperTTS": "Podium Piper Voice",
    "PodiumLipSync": "Podium Lip Sync (Wav2Lip)",
    "PodiumPresenter": "Podium Presenter (portrait or slides)",
    "PodiumSubtitles": "Podium Subtitles",
    "PodiumSaveVideo": "Podium Save Video (MP4)",
    "PodiumSaveImage": "Podium Save Image (PNG)",
}
