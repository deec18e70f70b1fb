"""Every node of the pack, by the class name workflows use, and its editor name."""
from .guided import PodiumGuidedScript, PodiumOllamaSettings
from .lipsync import PodiumLipSync
from .output import PodiumSaveImage, PodiumSaveVideo
from .presenter import PodiumPresenter
from .presenter_image import PodiumPresenterImage
from .script import PodiumDirectScript
from .subtitles import PodiumSubtitles
from .upscale import PodiumUpscale, PodiumUpscaleImage
from .voice import PodiumPiperTTS
from .voice_clone import PodiumF5VoiceClone
from .timing import PodiumFrameCount, PodiumRetime
from .color_match import PodiumColorMatch
from .frames import PodiumFrames

NODE_CLASS_MAPPINGS = {
    "PodiumDirectScript": PodiumDirectScript,
    "PodiumGuidedScript": PodiumGuidedScript,
    "PodiumOllamaSettings": PodiumOllamaSettings,
    "PodiumPiperTTS": PodiumPiperTTS,
    "PodiumF5VoiceClone": PodiumF5VoiceClone,
    "PodiumLipSync": PodiumLipSync,
    "PodiumPresenter": PodiumPresenter,
    "PodiumPresenterImage": PodiumPresenterImage,
    "PodiumSubtitles": PodiumSubtitles,
    "PodiumUpscale": PodiumUpscale,
    "PodiumUpscaleImage": PodiumUpscaleImage,
    "PodiumSaveVideo": PodiumSaveVideo,
    "PodiumSaveImage": PodiumSaveImage,
    "PodiumFrameCount": PodiumFrameCount,
    "PodiumColorMatch": PodiumColorMatch,
    "PodiumRetime": PodiumRetime,
    "PodiumFrames": PodiumFrames,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PodiumDirectScript": "Podium Direct Script",
    "PodiumGuidedScript": "Podium Guided Script (Ollama)",
    "PodiumOllamaSettings": "Podium Ollama Settings",
    "PodiumPiperTTS": "Podium Piper Voice",
    "PodiumF5VoiceClone": "Podium Voice Clone (F5-TTS)",
    "PodiumLipSync": "Podium Lip Sync (Wav2Lip)",
    "PodiumPresenter": "Podium Presenter (portrait or slides)",
    "PodiumPresenterImage": "Podium Presenter Image (SD1.5 / SDXL / FLUX)",
    "PodiumSubtitles": "Podium Subtitles",
    "PodiumUpscale": "Podium Upscale (Real-ESRGAN)",
    "PodiumUpscaleImage": "Podium Upscale Image (Real-ESRGAN)",
    "PodiumSaveVideo": "Podium Save Video (MP4)",
    "PodiumSaveImage": "Podium Save Image (PNG)",
    "PodiumFrameCount": "Podium Frame Count (Wan 4n+1)",
    "PodiumColorMatch": "Podium Color Match",
    "PodiumRetime": "Podium Retime (to output fps)",
    "PodiumFrames": "Podium Frames (IMAGE batch to visual)",
}
