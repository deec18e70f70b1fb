"""Every node of the pack, by the class name workflows use, and its editor name."""
from .chain import PodiumAudioSlice, PodiumWanChain
from .color_match import PodiumColorMatch
from .compose import PodiumCompose
from .scene import PodiumScene
from .scene_shot import PodiumSceneShot
from .deck import PodiumDeck, PodiumDeckSlides
from .framing import PodiumFitPortrait
from .frames import PodiumFrames
from .guided import PodiumGuidedScript, PodiumOllamaSettings
from .idle_motion import PodiumIdleClip, PodiumSaveIdleClip
from .lipsync import PodiumLipSync
from .mouth import PodiumMouth
from .musetalk import PodiumMuseTalk
from .music import PodiumMusicGenerate, PodiumSoundEffect
from .output import PodiumSaveAudio, PodiumSaveImage, PodiumSaveVideo
from .presenter import PodiumPresenter
from .presenter_image import PodiumPresenterImage
from .script import PodiumDirectScript
from .soundtrack import PodiumMix, PodiumMusicFile
from .subtitles import PodiumSubtitles
from .timing import PodiumFrameCount, PodiumRetime
from .upscale import PodiumUpscale, PodiumUpscaleImage
from .voice import PodiumPiperTTS
from .voice_clone import PodiumF5VoiceClone
from .voice_csm import PodiumCsmVoiceClone

NODE_CLASS_MAPPINGS = {
    "PodiumDirectScript": PodiumDirectScript,
    "PodiumGuidedScript": PodiumGuidedScript,
    "PodiumOllamaSettings": PodiumOllamaSettings,
    "PodiumPiperTTS": PodiumPiperTTS,
    "PodiumF5VoiceClone": PodiumF5VoiceClone,
    "PodiumCsmVoiceClone": PodiumCsmVoiceClone,
    "PodiumLipSync": PodiumLipSync,
    "PodiumMouth": PodiumMouth,
    "PodiumPresenter": PodiumPresenter,
    "PodiumPresenterImage": PodiumPresenterImage,
    "PodiumSubtitles": PodiumSubtitles,
    "PodiumUpscale": PodiumUpscale,
    "PodiumUpscaleImage": PodiumUpscaleImage,
    "PodiumSaveVideo": PodiumSaveVideo,
    "PodiumSaveImage": PodiumSaveImage,
    "PodiumMusicGenerate": PodiumMusicGenerate,
    "PodiumSoundEffect": PodiumSoundEffect,
    "PodiumSaveAudio": PodiumSaveAudio,
    "PodiumIdleClip": PodiumIdleClip,
    "PodiumSaveIdleClip": PodiumSaveIdleClip,
    "PodiumMuseTalk": PodiumMuseTalk,
    "PodiumMusicFile": PodiumMusicFile,
    "PodiumMix": PodiumMix,
    "PodiumFrameCount": PodiumFrameCount,
    "PodiumColorMatch": PodiumColorMatch,
    "PodiumRetime": PodiumRetime,
    "PodiumFrames": PodiumFrames,
    "PodiumDeck": PodiumDeck,
    "PodiumDeckSlides": PodiumDeckSlides,
    "PodiumCompose": PodiumCompose,
    "PodiumScene": PodiumScene,
    "PodiumSceneShot": PodiumSceneShot,
    "PodiumWanChain": PodiumWanChain,
    "PodiumAudioSlice": PodiumAudioSlice,
    "PodiumFitPortrait": PodiumFitPortrait,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PodiumDirectScript": "Podium Direct Script",
    "PodiumGuidedScript": "Podium Guided Script (Ollama)",
    "PodiumOllamaSettings": "Podium Ollama Settings",
    "PodiumPiperTTS": "Podium Piper Voice",
    "PodiumF5VoiceClone": "Podium Voice Clone (F5-TTS)",
    "PodiumCsmVoiceClone": "Podium Voice Clone, commercial use (CSM-1B)",
    "PodiumLipSync": "Podium Lip Sync (Wav2Lip)",
    "PodiumMouth": "Podium Talking Mouth (CPU draft)",
    "PodiumPresenter": "Podium Presenter (portrait or slides)",
    "PodiumPresenterImage": "Podium Presenter Image (SD1.5 / SDXL / FLUX)",
    "PodiumSubtitles": "Podium Subtitles",
    "PodiumUpscale": "Podium Upscale (Real-ESRGAN)",
    "PodiumUpscaleImage": "Podium Upscale Image (Real-ESRGAN)",
    "PodiumSaveVideo": "Podium Save Video (MP4)",
    "PodiumSaveImage": "Podium Save Image (PNG)",
    "PodiumMusicGenerate": "Podium Music (ACE-Step)",
    "PodiumSoundEffect": "Podium Sound Effect (ACE-Step / Stable Audio)",
    "PodiumSaveAudio": "Podium Save Audio (FLAC/WAV)",
    "PodiumIdleClip": "Podium Idle Clip (Wan 2.2 image-to-video)",
    "PodiumSaveIdleClip": "Podium Save Idle Clip",
    "PodiumMuseTalk": "Podium Lip Sync (MuseTalk 1.5)",
    "PodiumMusicFile": "Podium Music File",
    "PodiumMix": "Podium Mix (music under the voice)",
    "PodiumFrameCount": "Podium Frame Count (Wan 4n+1)",
    "PodiumColorMatch": "Podium Color Match",
    "PodiumRetime": "Podium Retime (to output fps)",
    "PodiumFrames": "Podium Frames (IMAGE batch to visual)",
    "PodiumDeck": "Podium Deck (PPTX / PDF)",
    "PodiumDeckSlides": "Podium Deck Slides",
    "PodiumCompose": "Podium Compose (picture-in-picture)",
    "PodiumScene": "Podium Scene (generated shots)",
    "PodiumSceneShot": "Podium Scene shot (for core video nodes)",
    "PodiumWanChain": "Podium Wan Talking Chain (InfiniteTalk / S2V / HuMo, any length)",
    "PodiumAudioSlice": "Podium Audio Slice",
    "PodiumFitPortrait": "Podium Fit Portrait (pad to aspect)",
}
