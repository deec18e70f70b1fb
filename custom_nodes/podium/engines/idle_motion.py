"""Idle motion: one image-to-video clip of the presenter (blinks, breathing, small head turns,
no speech), made once per video from the still portrait, made loopable and played under the
lip sync for any length.

The model is Wan2.2-TI2V-5B through diffusers' `WanImageToVideoPipeline` (Apache-2.0, so it
stays under `--commercial`; 24 fps, 1280x704 native; custom_nodes/podium/README.md says why it
and not LTX-Video). The umT5 text encoder is its own memory-manager entry: the two prompts are
encoded once and the encoder is let go before the transformer and VAE are placed, so the peak
is the transformer's, not both. Where the model is missing or does not fit (its models.yaml
`vram_gb` against `memory.room_bytes()`), `unfit_reason` says why in one line and the caller
keeps the procedural motion.

A clip becomes a loop either by ping-pong (forward then back) or by a cross-fade at the
best-matching pose: the stretch [i, j) whose frames just before j look most like those just
before i, with its last frames blended into those, so the frame after the loop's end is the
natural successor of the one shown. `IdleLoop` plays the loop at the clip's own fps whatever
the video's fps (frame i of the video shows loop frame round(i / fps * clip_fps)).
"""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..files import writing
from ..memory import get_manager
from ..models import diffusers_class
from ..progress import Progress
from .ffmpeg_exe import find_ffmpeg

GiB = 1024**3
PIPELINE = "WanImageToVideoPipeline"
KNOWN_INDEXES = ("WanPipeline", "WanImageToVideoPipeline")  # TI2V-5B ships as WanPipeline
CLIP_FPS = 24  # Wan2.2's frame rate
LONG_SIDE = 1280  # TI2V-5B is trained at 1280x704 / 704x1280 (template video_wan2_2_5B_ti2v: 1280x704)
TRAINED_ASPECT = 704 / 1280
STEPS, GUIDANCE = 30, 5.0
WORK_BYTES = 3 * GiB  # activations and the tiled VAE decode at 720p, beyond the weights
LOOPS = ("crossfade", "ping-pong")
IDLE_PROMPT = ("the same person facing the camera, calm and listening, blinking naturally, breathing "
               "gently, tiny natural head movements, mouth closed, not speaking, static camera, "
               "steady background, same lighting")
IDLE_NEGATIVE = ("talking, speaking, open mouth, laughing, camera motion, zoom, pan, fast motion, hand "
                 "gestures, hands, walking, scene change, text, watermark, blurry, distorted face")
log = logging.getLogger("podium.idle")
_embeds: dict[tuple, tuple] = {}  # (folder, dtype, prompt, negative) -> prompt embeddings


def check_folder(folder: str | Path) -> Path:
    """`folder` if it holds a Wan pipeline in diffusers format, else a clear error."""
    folder = Path(folder).expanduser()
    name = diffusers_class(folder, f"no image-to-video model in {folder}: model_index.json not found; "
                            "pull one with `podium models pull wan2.2-ti2v-5b`")
    if name not in KNOWN_INDEXES:
        raise PodiumError(f"{folder} holds a {name or 'unknown'} pipeline; the idle clip needs a "
                          f"Wan 2.2 TI2V folder ({' or '.join(KNOWN_INDEXES)})")
    return folder


def _weights(folder: Path, part: str) -> int:
    return sum(p.stat().st_size for p in (folder / part).glob("*") if p.suffix in (".safetensors", ".bin"))


def estimate_bytes(folder: Path, vram_gb: Optional[float] = None) -> int:
    """Memory the clip needs at its peak: models.yaml's `vram_gb` when known, else the larger of
    the text encoder and transformer + VAE on disk (halved for fp32 files going to bf16 is not
    assumed: a guess must not be too small), plus the working memory."""
    if vram_gb is not None:
        return int(vram_gb * GiB)
    peak = max(_weights(folder, "text_encoder"), _weights(folder, "transformer") + _weights(folder, "vae"))
    return peak + (WORK_BYTES if get_manager().device.startswith("cuda") else 0)


def unfit_reason(need_bytes: int, registry_model: bool) -> Optional[str]:
    """Why the clip cannot be made on this device, in a few words; None when it can. A
    registry model (a real-size one) is not run on the CPU: it would take hours."""
    manager = get_manager()
    if registry_model and not manager.device.startswith("cuda"):
        return "no GPU here (a real-size image-to-video model would take hours on the CPU)"
    room = manager.room_bytes()
    if need_bytes > room:
        return (f"it needs about {need_bytes / GiB:.1f} GB and {room / GiB:.1f} GB is free on "
                f"{manager.device}")
    return None


def _dtypes():
    import torch

    cuda = get_manager().device.startswith("cuda")
    return (torch.bfloat16, torch.float32) if cuda else (torch.float32, torch.float32)


def _dtype_kwarg(dtype) -> dict:
    from diffusers.utils import deprecation_utils

    # newer diffusers name it `dtype` and warn about `torch_dtype`; older ones know only that
    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}


def prompt_embeds(folder: Path, prompt: str, negative: str):
    """(prompt, negative) embeddings from the text encoder, loaded through the memory manager
    for this and let go right after; remembered, so the encoder loads once per prompt."""
    import torch

    folder = check_folder(folder)
    dtype, _ = _dtypes()
    key = (str(folder.resolve()), str(dtype), prompt, negative)
    if key in _embeds:
        return _embeds[key]
    manager = get_manager()
    entry = f"wan-text:{folder.resolve()}:{str(dtype)[6:]}"

    def loader():
        import diffusers

        try:
            return getattr(diffusers, PIPELINE).from_pretrained(
                folder, transformer=None, vae=None, local_files_only=True, **_dtype_kwarg(dtype))
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the text encoder in {folder} (incomplete or damaged?): "
                                    f"{exc}. Pull it again with `podium models pull wan2.2-ti2v-5b`") from None

    text = manager.load(entry, loader, kind="torch", stage="idle_clip",
                        size_bytes=_weights(folder, "text_encoder"))
    try:
        with torch.inference_mode():
            embeds, negative_embeds = text.encode_prompt(
                prompt=prompt, negative_prompt=negative, do_classifier_free_guidance=True,
                device=torch.device(manager.device), dtype=dtype)
    finally:
        del text
        manager.evict(entry)  # the transformer wants the room
    _embeds[key] = (embeds.cpu(), negative_embeds.cpu())
    return _embeds[key]


def load_pipeline(folder: str | Path):
    """Transformer + VAE of the Wan folder (no text encoder), cached and placed by the memory
    manager: bf16 on CUDA (the VAE in fp32, as Wan's own code runs it), fp32 on the CPU."""
    folder = check_folder(folder)
    dtype, vae_dtype = _dtypes()
    manager = get_manager()

    def loader():
        import diffusers

        try:
            pipe = getattr(diffusers, PIPELINE).from_pretrained(
                folder, text_encoder=None, tokenizer=None, local_files_only=True, **_dtype_kwarg(dtype))
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the image-to-video model in {folder} (incomplete or "
                                    f"damaged?): {exc}. Pull it again with `podium models pull "
                                    "wan2.2-ti2v-5b`") from None
        pipe.vae.to(vae_dtype)
        pipe.vae.enable_tiling()  # 720p decodes in tiles: the decode fits beside the transformer
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return manager.load(f"wan-i2v:{folder.resolve()}:{str(dtype)[6:]}", loader, kind="torch", stage="idle_clip",
                        size_bytes=_weights(folder, "transformer") + _weights(folder, "vae"),
                        work_bytes=WORK_BYTES)


def generation_size(width: int, height: int, long_side: int = LONG_SIDE, multiple: int = 32) -> tuple[int, int]:
    """The clip's (width, height): the video's aspect with the trained area (long_side x
    long_side x 704/1280: 1280x704 at 1280), both sides multiples of `multiple` (the VAE's 16x
    times the 2x patch). By area, not by the long side: a square video gets 960x960, not
    1280x1280 (1.8x the pixels the model was trained on)."""
    area = long_side * long_side * TRAINED_ASPECT
    scale = (area / (width * height)) ** 0.5
    fit = lambda v: max(multiple, int(round(v * scale / multiple)) * multiple)
    return fit(width), fit(height)


def frame_count(seconds: float, fps: int = CLIP_FPS, temporal: int = 4) -> int:
    """Frames of a clip of about `seconds`: 4k + 1 (the VAE packs 4 frames a latent), at least 5."""
    return max(int(round(seconds * fps / temporal)), 1) * temporal + 1


def make_clip(folder: str | Path, still: np.ndarray, seconds: float = 3.0, steps: int = 0,
              guidance: float = -1.0, seed: int = 0, long_side: int = LONG_SIDE,
              prompt: str = IDLE_PROMPT, negative: str = IDLE_NEGATIVE) -> np.ndarray:
    """The idle clip of `still` (RGB uint8, the video's framing) as RGB uint8 frames
    (N, h, w, 3) at CLIP_FPS; the same seed gives the same clip (noise drawn on the CPU)."""
    import torch
    from PIL import Image

    folder = check_folder(folder)
    steps = int(steps or STEPS)
    guidance = GUIDANCE if guidance is None or guidance < 0 else float(guidance)
    embeds, negative_embeds = prompt_embeds(folder, prompt, negative)
    pipe = load_pipeline(folder)
    multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
    width, height = generation_size(still.shape[1], still.shape[0], long_side, multiple)
    image = Image.fromarray(cv2.resize(still, (width, height), interpolation=cv2.INTER_AREA))
    device, dtype = torch.device(get_manager().device), pipe.transformer.dtype
    progress = Progress(steps)

    def on_step(_pipe, _step, _timestep, tensors):
        progress.update()
        return tensors

    with torch.inference_mode():
        video = pipe(image=image, prompt_embeds=embeds.to(device, dtype),
                     negative_prompt_embeds=negative_embeds.to(device, dtype) if guidance > 1 else None,
                     height=height, width=width, num_frames=frame_count(seconds, CLIP_FPS,
                                                                         pipe.vae_scale_factor_temporal),
                     num_inference_steps=steps, guidance_scale=guidance, output_type="np",
                     generator=torch.Generator("cpu").manual_seed(int(seed)),
                     callback_on_step_end=on_step).frames[0]
    if not np.isfinite(video).all():
        raise PodiumError("the idle clip came out as NaN: try another seed, or the CPU")
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---- looping ---------------------------------------------------------------------------------

def _small(frames: np.ndarray) -> np.ndarray:
    """Grey thumbnails (N, 24, w) in float32 for comparing poses cheaply."""
    h, w = frames.shape[1:3]
    size = (max(int(round(24 * w / h)), 1), 24)
    return np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
                     for f in frames]).astype(np.float32)


def best_cut(frames: np.ndarray, fade: int) -> Optional[tuple[int, int]]:
    """(i, j): the loop frames[i:j] whose `fade` frames before j best match the `fade` frames
    before i (i >= fade, the loop at least half the clip); None if the clip is too short."""
    n = len(frames)
    small = _small(frames)
    best, cut = np.inf, None
    for i in range(fade, max(fade, n // 3) + 1):
        for j in range(i + max(n // 2, fade + 1), n):
            cost = float(np.mean(np.abs(small[j - fade:j] - small[i - fade:i])))
            if cost < best:
                best, cut = cost, (i, j)
    return cut


def loop_frames(frames: np.ndarray, mode: str = "crossfade", fade: int = 0) -> np.ndarray:
    """A loop of the clip that plays on from its last frame to its first without a jump."""
    frames = np.asarray(frames)
    if mode not in LOOPS:
        raise PodiumError(f"loop must be one of {', '.join(LOOPS)}, not {mode!r}")
    n = len(frames)
    if n < 3:
        return frames
    fade = int(fade or max(2, n // 6))
    cut = best_cut(frames, fade) if mode == "crossfade" and n >= 2 * fade + 2 else None
    if cut is None:  # ping-pong: forward, then back without repeating either end
        return np.concatenate([frames, frames[-2:0:-1]])
    i, j = cut
    loop = frames[i:j].astype(np.float32)
    for k in range(fade):  # the tail turns into the frames before i, so frames[i] follows
        a = (k + 1) / (fade + 1)
        loop[len(loop) - fade + k] = (1 - a) * loop[len(loop) - fade + k] + a * frames[i - fade + k]
    return np.clip(np.rint(loop), 0, 255).astype(np.uint8)


def loop_jump(loop: np.ndarray) -> tuple[float, float]:
    """(difference at the loop point, largest difference between neighbouring frames): mean
    absolute difference in 0..255, what a viewer sees as a jump."""
    f = loop.astype(np.float32)
    steps = np.mean(np.abs(np.diff(f, axis=0)), axis=(1, 2, 3))
    return float(np.mean(np.abs(f[0] - f[-1]))), float(steps.max() if len(steps) else 0.0)


# ---- the clip on disk (made once per video, cached by the orchestrator) -------------------------

def save_clip(path: str | Path, frames: np.ndarray, fps: float = CLIP_FPS) -> Path:
    """Write the loop losslessly (FFV1 in Matroska), whole or not at all."""
    path = Path(path)
    n, h, w = frames.shape[:3]
    with writing(path) as tmp:
        command = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
                   "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
                   "-c:v", "ffv1", "-pix_fmt", "bgr0", "-f", "matroska", str(tmp)]
        done = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
        if done.returncode != 0:
            raise PodiumError(f"ffmpeg could not write the idle clip: {done.stderr.decode(errors='replace')[-400:]}")
    return path


def load_clip(path: str | Path) -> tuple[np.ndarray, float]:
    """(frames RGB uint8, fps) of a clip written by save_clip (or any video ffmpeg reads)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"idle clip not found: {path}")
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    except (RuntimeError, OSError, StopIteration, KeyError) as exc:
        raise PodiumError(f"cannot read the idle clip {path}: {exc}; make it again (delete it)") from None
    if not frames:
        raise PodiumError(f"the idle clip {path} has no frames; make it again (delete it)")
    return np.stack(frames), float(meta.get("fps") or CLIP_FPS)


# ---- playing it -------------------------------------------------------------------------------

def cover(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` scaled to cover width x height, centred, the overflow cut off."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = max(width / w, height / h)
    sw, sh = max(int(round(w * scale)), width), max(int(round(h * scale)), height)
    big = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(big[y:y + height, x:x + width])


class IdleLoop:
    """A Visual: the looped idle clip at its own fps, for any length, at the video's size."""

    def __init__(self, loop: np.ndarray, fps: float, width: int, height: int):
        loop = np.asarray(loop)
        if loop.ndim != 4 or loop.shape[-1] != 3 or not len(loop):
            raise PodiumError(f"an idle clip must be (N, H, W, 3) frames, got shape {loop.shape}")
        self.loop, self.fps, self.width, self.height = loop, float(fps), int(width), int(height)
        self._last: tuple[int, Optional[np.ndarray]] = (-1, None)

    def index(self, t: float) -> int:
        return max(int(round(t * self.fps)), 0) % len(self.loop)

    def render(self, t: float) -> np.ndarray:
        i = self.index(t)
        if self._last[0] != i:
            self._last = (i, cover(self.loop[i], self.width, self.height))
        return self._last[1]


def looped(frames: np.ndarray, width: int, height: int, mode: str = "crossfade", fps: int = CLIP_FPS) -> IdleLoop:
    """A clip as a visual of any length, covering width x height: looped (`loop_frames`: a
    cross-fade where its frames match best, ping-pong when too short to cut) and played at its
    own rate. The idle clip and a scene's shot (in-process or from core nodes) all play this way."""
    loop = loop_frames(frames, mode)
    jump, step = loop_jump(loop)
    log.info("clip looped (%s): %d frames, loop point %.1f, neighbours up to %.1f", mode, len(loop), jump, step)
    return IdleLoop(loop, fps, width, height)


class ProceduralIdle:
    """The procedural motion kept in place of an idle clip, with the one line saying why."""

    def __init__(self, visual, note: str):
        self.visual, self.note = visual, note
        self.width, self.height = visual.width, visual.height

    def render(self, t: float) -> np.ndarray:
        return self.visual.render(t)
