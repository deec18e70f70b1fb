"""Output nodes: the finished MP4 (and its subtitles), pictures and audio in the output folder."""

from PIL import Image

from ..profiling import reported_stage
from ..engines.output import AUDIO_FORMATS, encode_video, frames_for, load_preset, write_audio
from ..engines.captions import Captions, to_ass
from ..engines.subtitles import to_srt
from ..errors import PodiumError
from ..files import atomic_write_text, writing
from ..paths import next_output_path
from ..progress import Progress
from .comfy_types import channels_from_audio, rgb_from_image, samples_from_audio

SUBTITLE_MODES = ["none", "srt", "burn", "srt+burn"]


def _captions(subtitles) -> Captions | None:
    """The Subtitles node's captions (a bare list of cues, from older graphs: sentence mode)."""
    if subtitles is None or isinstance(subtitles, Captions):
        return subtitles
    return Captions(list(subtitles))


def _margins(visual, captions: Captions) -> tuple[int, int] | None:
    """Pixels the captions keep clear of on each side (a picture-in-picture box on their side)."""
    at = getattr(visual, "caption_margins_at", None)
    return at(captions.style.position) if at else getattr(visual, "caption_margins", None)


class PodiumSaveVideo:
    """Stream the presenter's frames and the narration into an H.264/AAC MP4; both streams
    end on the same frame. Subtitles go beside it (.srt) and/or into the picture."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "visual": ("PODIUM_VISUAL",),
                "audio": ("AUDIO",),
                "fps": ("INT", {"default": 25, "min": 1, "max": 120}),
                "filename_prefix": ("STRING", {"default": "podium/video"}),
                "subtitle_mode": (SUBTITLE_MODES, {"default": "srt"}),
            },
            "optional": {
                "subtitles": ("PODIUM_SUBTITLES",),
                "intermediate": ("BOOLEAN", {"default": False, "tooltip": (
                    "On: a segment for Podium's orchestrator to stitch, H.264 with lossless PCM "
                    "audio in a .mov, so the audio is encoded to AAC once, in the stitched MP4. "
                    "Off: a finished H.264/AAC MP4 that plays everywhere.")}),
            },
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "Podium/output"
    DESCRIPTION = "Write the video (H.264/AAC MP4) and its subtitles to the output folder."
    PRESETS = {False: "h264_aac", True: "h264_pcm"}  # by `intermediate`

    @reported_stage("encode")
    def save(self, visual, audio, fps, filename_prefix, subtitle_mode, subtitles=None,
             intermediate=False):
        if subtitle_mode != "none" and subtitles is None:
            raise PodiumError(f"subtitle_mode is {subtitle_mode!r} but no subtitles are connected")
        samples, sample_rate = samples_from_audio(audio)
        if not len(samples):
            raise PodiumError("the audio is empty: nothing to make a video of")
        captions = _captions(subtitles)
        srt = to_srt(captions.cues) if captions is not None else None
        size = (visual.width, visual.height)
        ass = to_ass(captions, size, _margins(visual, captions)) if captions is not None else None
        preset = self.PRESETS[bool(intermediate)]
        settings = load_preset(preset)
        path, subfolder, name = next_output_path(filename_prefix, settings["extension"])
        n_frames = frames_for(len(samples) / sample_rate, fps)
        progress = Progress(n_frames)
        encode_video(
            path, visual.render, (visual.width, visual.height), samples, sample_rate, fps,
            burn_ass=ass if "burn" in subtitle_mode else None, preset=preset,
            on_frame=progress.update,
        )
        ui = {"images": [{"filename": name, "subfolder": subfolder, "type": "output",
                          "format": settings["mime"], "frames": n_frames, "fps": fps,
                          "duration": n_frames / fps}],
              "animated": [True]}
        if "srt" in subtitle_mode.split("+"):
            srt_path = path.with_suffix(".srt")
            atomic_write_text(srt_path, srt)
            atomic_write_text(path.with_suffix(".ass"), ass)
            ui["subtitles"] = [{"filename": p.name, "subfolder": subfolder, "type": "output"}
                               for p in (srt_path, path.with_suffix(".ass"))]
        return {"ui": ui}


class PodiumSaveImage:
    """Save a picture (e.g. the presenter drawn once for every segment) as PNG."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "filename_prefix": ("STRING", {"default": "podium/presenter"})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "Podium/output"
    DESCRIPTION = "Write the first image of the batch as a PNG in the output folder."

    def save(self, image, filename_prefix):
        path, subfolder, name = next_output_path(filename_prefix, "png")
        with writing(path) as tmp:
            Image.fromarray(rgb_from_image(image)).save(tmp, format="PNG")
        return {"ui": {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}]}}


class PodiumSaveAudio:
    """Save audio (a generated music bed or sound effect) as FLAC or WAV, every channel kept."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",),
                             "filename_prefix": ("STRING", {"default": "podium/music"})},
                "optional": {"format": (list(AUDIO_FORMATS), {"default": "flac", "tooltip": (
                    "flac: 24-bit lossless, clipped to full scale; wav: 32-bit float, unclipped.")})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "Podium/output"
    DESCRIPTION = "Write the first audio of the batch as FLAC (or WAV) in the output folder."

    def save(self, audio, filename_prefix, format="flac"):
        if format not in AUDIO_FORMATS:
            raise PodiumError(f"format must be one of {', '.join(AUDIO_FORMATS)}, not {format!r}")
        channels, sample_rate = channels_from_audio(audio)
        if not channels.shape[-1]:
            raise PodiumError("the audio is empty: nothing to save")
        path, subfolder, name = next_output_path(filename_prefix, format)
        write_audio(path, channels, sample_rate, format)
        return {"ui": {"audio": [{"filename": name, "subfolder": subfolder, "type": "output",
                                  "format": AUDIO_FORMATS[format][2], "sample_rate": sample_rate,
                                  "channels": int(channels.shape[0]),
                                  "duration": channels.shape[-1] / sample_rate}]}}
