"""The cinema take: one Wan talking-video model (InfiniteTalk, S2V or HuMo) over audio of any
length, as chained generations that continue each other, sized from the real audio.

PodiumWanChain counts the chunks (engines/chunks.py, ComfyUI's own arithmetic) when it runs,
from the audio it is given, and expands into ComfyUI's own nodes (node expansion, as
comfy_execution/graph_utils.GraphBuilder makes it): the template chains of
`video_wan2_1_infinitetalk` (previous_frames, 9-frame overlap), `video_wan2_2_14B_s2v`
(WanSoundImageToVideoExtend + LatentConcat) and, for HuMo, pieces of the audio cut at pauses
with the last frame carried over. No take is refused for length and slow speech only adds
chunks.
"""
from __future__ import annotations

import sys

import numpy as np

from ..engines.chunks import KINDS, MOTION_FRAMES, NATIVE_FPS, plan_chunks
from ..errors import PodiumError
from .comfy_types import audio_from_samples, samples_from_audio
from .timing import audio_seconds

MIN_SIDE = {"s2v": 64, "infinitetalk": 16, "humo": 16}  # S2V's motion packer: 4x8x8 latent kernel


def _sampler_lists():
    """KSampler's own lists inside ComfyUI (which has always imported comfy.samplers by then);
    outside it (the orchestrator's in-process port, unit tests) the names the graphs use,
    without importing ComfyUI (that would probe for a GPU)."""
    samplers = sys.modules.get("comfy.samplers")
    if samplers is not None:
        return samplers.KSampler.SAMPLERS, samplers.KSampler.SCHEDULERS
    return ["uni_pc", "euler"], ["simple", "normal"]


def quiet_cut(samples: np.ndarray, rate: int, fps: float) -> callable:
    """cut(lo, hi): the frame boundary between lo and hi (frames) where the speech is quietest
    over 80 ms: a pause between words, so no word is split across two generations."""
    half = int(0.04 * rate)

    def cut(lo: int, hi: int) -> int:
        best, where = None, hi
        for frame in range(hi, lo - 1, -1):  # later first: pieces as long as allowed
            centre = int(frame / fps * rate)
            window = samples[max(centre - half, 0):centre + half]
            energy = float(np.sqrt(np.mean(window ** 2))) if len(window) else 0.0
            if best is None or energy < best - 1e-6:
                best, where = energy, frame
        return where
    return cut


class PodiumWanChain:
    """Frames for the whole audio from a Wan talking-video model, as chained generations."""

    @classmethod
    def INPUT_TYPES(cls):
        samplers, schedulers = _sampler_lists()
        return {
            "required": {
                "kind": (list(KINDS), {"tooltip": "The model the graph loads: infinitetalk, s2v or humo."}),
                "model": ("MODEL",),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "vae": ("VAE",),
                "audio": ("AUDIO", {"tooltip": "The narration; its real length sets the chunks."}),
                "audio_encoder": ("AUDIO_ENCODER",),
                "portrait": ("IMAGE", {"tooltip": "The first frame's reference (already at the generation aspect)."}),
                "width": ("INT", {"default": 832, "min": 16, "max": 4096, "step": 16}),
                "height": ("INT", {"default": 480, "min": 16, "max": 4096, "step": 16}),
                "steps": ("INT", {"default": 4, "min": 1, "max": 200}),
                "cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 30.0, "step": 0.1}),
                "sampler_name": (samplers,),
                "scheduler": (schedulers,),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 1001,
                                       "tooltip": "Frames per generation; 0: the model's trained length "
                                                  "(InfiniteTalk 81, S2V 77, HuMo 97)."}),
            },
            "optional": {
                "model_patch": ("MODEL_PATCH", {"tooltip": "InfiniteTalk's patch (ModelPatchLoader)."}),
                "clip_vision_output": ("CLIP_VISION_OUTPUT",),
            },
            "hidden": {"unique_id": "UNIQUE_ID", "dynprompt": "DYNPROMPT"},
        }

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    FUNCTION = "chain"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "Any length of speech on InfiniteTalk / S2V / HuMo: chained, continuing generations."

    def chain(self, kind, model, positive, negative, vae, audio, audio_encoder, portrait, width, height,
              steps, cfg, sampler_name, scheduler, seed, max_frames, model_patch=None, clip_vision_output=None,
              unique_id=None, dynprompt=None):
        from comfy_execution.graph_utils import GraphBuilder

        check_inputs(kind, width, height, model_patch)
        inputs = dynprompt.get_node(unique_id)["inputs"]  # the links into this node, reused below
        samples, rate = samples_from_audio(audio)
        seconds = len(samples) / rate
        cut = quiet_cut(samples, rate, NATIVE_FPS[kind]) if kind == "humo" else None
        try:
            plan = plan_chunks(kind, seconds, max_frames or None, cut)
        except ValueError as err:  # a max_frames the model cannot chain with
            raise PodiumError(f"PodiumWanChain: {err}; raise max_frames (0: the model's own)") from None
        links = _Links(GraphBuilder(), inputs, dict(width=width, height=height),
                       dict(seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, denoise=1.0))
        build = {"infinitetalk": _infinitetalk, "s2v": _s2v, "humo": _humo}[kind]
        frames = build(links, plan)
        return {"result": (frames, plan.fps), "expand": links.graph.finalize()}


def check_inputs(kind: str, width: int, height: int, model_patch) -> None:
    """One line for a chain that cannot run, before ComfyUI would fail deep inside."""
    if kind not in KINDS:
        raise PodiumError(f"PodiumWanChain: unknown kind {kind!r}: one of {', '.join(KINDS)}")
    if min(width, height) < MIN_SIDE[kind] or width % 16 or height % 16:
        raise PodiumError(f"PodiumWanChain: {kind} cannot draw {width}x{height}: both sides must be "
                          f"multiples of 16 and at least {MIN_SIDE[kind]}")
    if kind == "infinitetalk" and model_patch is None:
        raise PodiumError("PodiumWanChain: infinitetalk needs its model_patch (ModelPatchLoader with "
                          "the InfiniteTalk file): connect it")


class _Links:
    """The chain node's own input links (from the prompt), which the expanded nodes take as
    theirs: an expansion names links or literals, never live objects."""

    def __init__(self, graph, inputs: dict, size: dict, sampling: dict):
        self.graph, self.inputs, self.size, self.sampling = graph, inputs, size, sampling

    def __getattr__(self, name):
        inputs = self.__dict__.get("inputs") or {}
        if name in ("model", "positive", "negative", "vae", "audio", "audio_encoder", "portrait"):
            return inputs[name]
        raise AttributeError(name)

    def optional(self, name: str) -> dict:
        return {name: self.inputs[name]} if self.inputs.get(name) is not None else {}

    def sample(self, model, positive, negative, latent):
        return self.graph.node("KSampler", model=model, positive=positive, negative=negative,
                               latent_image=latent, **self.sampling).out(0)


def _infinitetalk(links, plan):
    encoded = links.graph.node("AudioEncoderEncode", audio_encoder=links.audio_encoder, audio=links.audio).out(0)
    frames = None
    for chunk in plan.chunks:
        extra = links.optional("clip_vision_output")
        if frames is not None:
            extra["previous_frames"] = frames  # every frame so far: its length sets the audio offset
        talk = links.graph.node("WanInfiniteTalkToVideo", mode="single_speaker", model=links.model,
                                model_patch=links.inputs["model_patch"], positive=links.positive, negative=links.negative,
                                vae=links.vae, length=chunk.length, start_image=links.portrait,
                                audio_encoder_output_1=encoded, motion_frame_count=MOTION_FRAMES,
                                audio_scale=1.0, **links.size, **extra)
        latent = links.sample(talk.out(0), talk.out(1), talk.out(2), talk.out(3))
        decoded = links.graph.node("VAEDecode", samples=latent, vae=links.vae).out(0)
        if frames is None:
            frames = decoded
        else:
            new = links.graph.node("ImageFromBatch", image=decoded, batch_index=chunk.skip, length=chunk.keep).out(0)
            frames = links.graph.node("ImageBatch", image1=frames, image2=new).out(0)
    return frames


def _s2v(links, plan):
    encoded = links.graph.node("AudioEncoderEncode", audio_encoder=links.audio_encoder, audio=links.audio).out(0)
    made = None
    for chunk in plan.chunks:
        common = dict(positive=links.positive, negative=links.negative, vae=links.vae, length=chunk.length,
                      audio_encoder_output=encoded, ref_image=links.portrait)
        if made is None:
            step = links.graph.node("WanSoundImageToVideo", batch_size=1, **links.size, **common)
        else:  # the template's Extend: every latent so far (its motion context and audio offset)
            step = links.graph.node("WanSoundImageToVideoExtend", video_latent=made, **common)
        latent = links.sample(links.model, step.out(0), step.out(1), step.out(2))
        made = latent if made is None else links.graph.node("LatentConcat", samples1=made, samples2=latent, dim="t").out(0)
    return links.graph.node("VAEDecode", samples=made, vae=links.vae).out(0)


def _humo(links, plan):
    frames, reference = None, links.portrait
    for chunk in plan.chunks:
        piece = links.graph.node("PodiumAudioSlice", audio=links.audio, start_s=chunk.audio_start,
                                 end_s=chunk.audio_end).out(0)
        encoded = links.graph.node("AudioEncoderEncode", audio_encoder=links.audio_encoder, audio=piece).out(0)
        humo = links.graph.node("WanHuMoImageToVideo", positive=links.positive, negative=links.negative,
                                vae=links.vae, length=chunk.length, batch_size=1, audio_encoder_output=encoded,
                                ref_image=reference, **links.size)
        latent = links.sample(links.model, humo.out(0), humo.out(1), humo.out(2))
        decoded = links.graph.node("VAEDecode", samples=latent, vae=links.vae).out(0)
        kept = links.graph.node("ImageFromBatch", image=decoded, batch_index=0, length=chunk.keep).out(0)
        reference = links.graph.node("ImageFromBatch", image=kept, batch_index=chunk.keep - 1, length=1).out(0)
        frames = kept if frames is None else links.graph.node("ImageBatch", image1=frames, image2=kept).out(0)
    return frames


class PodiumAudioSlice:
    """The audio from start_s to end_s (HuMo's pieces: its audio always starts at frame 0)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",),
                             "start_s": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.001}),
                             "end_s": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1e6, "step": 0.001})}}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "slice"
    CATEGORY = "Podium/cinema"

    def slice(self, audio, start_s, end_s):
        samples, rate = samples_from_audio(audio)
        piece = samples[int(round(start_s * rate)):int(round(end_s * rate))]
        if len(piece) == 0:
            raise PodiumError(f"PodiumAudioSlice: {start_s:.2f}-{end_s:.2f} s is past the audio's "
                              f"{audio_seconds(audio):.2f} s")
        return (audio_from_samples(piece, rate),)
