"""Scene shots: a generated picture for the narration of a `[scene: ...]` segment.

Best first, per what is installed: Wan2.2-TI2V-5B text-to-video (the idle clip's pipeline, loaded
through the memory manager; image-to-video on the presenter's portrait for `with the presenter`),
a clip per shot at the video's aspect by area, 24 fps, looped with a cross-fade at its
best-matching frames for a longer narration (never a frozen frame); no video model: a still from a
text-to-image model with a Ken Burns move; no image model either (the CPU draft): a title card of
the prompt with the camera move, so a draft shows where each shot will be.

Each shot is a lazy visual (`render(t)`), so memory stays flat: a clip's frames, or one picture.
`SceneTrack` plays a script's shots over its segments' spans (from the speech) and the fallback
(slides, the presenter) elsewhere.
"""
from __future__ import annotations

import bisect
import textwrap
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
from PIL import Image, ImageDraw

from . import idle_motion as wan
from .fonts import font
from .scene_spec import SceneSpec

ZOOM = 1.2  # a moving still is drawn this much larger than the frame: room for the move
STATIC_DRIFT = 0.03  # a `static` still pushes in this little, so a still never freezes
CLIP_SECONDS = 5.0  # Wan2.2 TI2V-5B's clip: 121 frames at 24 fps
TITLE_BACKGROUND = (54, 28, 84)  # a title card's colour (deep violet: no slide uses it)
SCENE_NEGATIVE = ("text, watermark, subtitles, logo, blurry, low quality, distorted, jittery, "
                  "flicker, frozen frame, static image")


@dataclass(frozen=True)
class Shot:
    """A shot made: the visual and the one line saying which generator made it."""

    visual: object
    generator: str


def _ease(p: float) -> float:
    p = min(max(p, 0.0), 1.0)
    return p * p * (3 - 2 * p)


def window(move: str, p: float) -> tuple[float, float, float]:
    """(size, centre x, centre y) of the view as shares of the picture, `p` of the way through
    the move (eased): the camera move as a window over a picture ZOOM times the frame."""
    p, small = _ease(p), 1 / ZOOM
    if move == "push-in":
        return 1 - (1 - small) * p, 0.5, 0.5
    if move == "pull-out":
        return small + (1 - small) * p, 0.5, 0.5
    edge = small / 2
    if move in ("pan left", "pan right"):
        x = 1 - edge - (1 - small) * p if move == "pan left" else edge + (1 - small) * p
        return small, x, 0.5
    if move in ("tilt up", "tilt down"):
        y = 1 - edge - (1 - small) * p if move == "tilt up" else edge + (1 - small) * p
        return small, 0.5, y
    return 1 - STATIC_DRIFT * p, 0.5, 0.5  # static


class MovingStill:
    """A Visual: one picture with a camera move across `duration` seconds (then held at the
    move's end, which a segment never reaches: its duration is the narration's)."""

    def __init__(self, image: np.ndarray, move: str, duration: float, width: int, height: int):
        self.width, self.height, self.move = int(width), int(height), move
        self.duration = max(float(duration), 1e-3)
        self.picture = wan.cover(np.ascontiguousarray(image), int(round(width * ZOOM)), int(round(height * ZOOM)))

    def render(self, t: float) -> np.ndarray:
        size, cx, cy = window(self.move, t / self.duration)
        ph, pw = self.picture.shape[:2]
        scale = self.width / (size * pw)
        x0, y0 = cx * pw - size * pw / 2, cy * ph - size * ph / 2
        matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
        return cv2.warpAffine(self.picture, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def title_card(spec: SceneSpec, width: int, height: int) -> np.ndarray:
    """The draft's stand-in for a shot: the prompt in large type on a violet card with a faint
    grid (so a pan or a push shows), the camera move named under it."""
    w, h = int(round(width * ZOOM)), int(round(height * ZOOM))
    image = Image.new("RGB", (w, h), TITLE_BACKGROUND)
    draw = ImageDraw.Draw(image)
    step = max(min(w, h) // 8, 8)
    for x in range(0, w, step):
        draw.line([(x, 0), (x, h)], fill=(70, 44, 104), width=max(h // 360, 1))
    for y in range(0, h, step):
        draw.line([(0, y), (w, y)], fill=(70, 44, 104), width=max(h // 360, 1))
    big, small = font(max(h // 14, 10), bold=True), font(max(h // 26, 8))
    chars = max(int(width * 0.6 / (big.size * 0.55)), 8)  # inside the view however it moves
    lines = textwrap.wrap(spec.prompt, chars)[:4]
    y = h // 2 - len(lines) * big.size * 0.7
    for line in lines:
        width_px = draw.textlength(line, font=big)
        draw.text(((w - width_px) / 2, y), line, font=big, fill=(255, 240, 220))
        y += int(big.size * 1.3)
    label = f"scene · camera {spec.move}" + (" · with the presenter" if spec.with_presenter else "")
    draw.text(((w - draw.textlength(label, font=small)) / 2, y + small.size), label, font=small,
              fill=(200, 170, 230))
    return np.asarray(image).copy()


def clip_seconds(spec: SceneSpec, narration_s: float, longest: float = CLIP_SECONDS) -> float:
    """How long a clip to make: the mark's length, else the narration's, at most one clip."""
    return min(spec.seconds or narration_s, longest)


def video_shot(folder, spec: SceneSpec, narration_s: float, width: int, height: int, seed: int = 0,
               steps: int = 0, long_side: int = wan.LONG_SIDE, portrait: Optional[np.ndarray] = None,
               longest: float = CLIP_SECONDS) -> np.ndarray:
    """The shot's frames (N, h, w, 3) at 24 fps from the Wan TI2V pipeline: text-to-video, or
    image-to-video on `portrait` (the video's framing) for a scene with the presenter."""
    seconds = clip_seconds(spec, narration_s, longest)
    if spec.with_presenter and portrait is not None:
        return wan.make_clip(folder, portrait, seconds, steps, -1.0, seed, long_side,
                             prompt=spec.model_prompt, negative=SCENE_NEGATIVE)
    return _text_to_video(folder, spec.model_prompt, seconds, width, height, seed, steps, long_side)


def _text_to_video(folder, prompt: str, seconds: float, width: int, height: int, seed: int, steps: int,
                   long_side: int) -> np.ndarray:
    """Text-to-video with the idle clip's transformer and VAE (one load, kept by the memory
    manager) and its text encoding (loaded, used, let go)."""
    import diffusers
    import torch

    folder = wan.check_folder(folder)
    embeds, negative_embeds = wan.prompt_embeds(folder, prompt, SCENE_NEGATIVE)
    i2v = wan.load_pipeline(folder)
    pipe = diffusers.WanPipeline(tokenizer=None, text_encoder=None, vae=i2v.vae, scheduler=i2v.scheduler,
                                 transformer=i2v.transformer, expand_timesteps=i2v.config.expand_timesteps)
    pipe.set_progress_bar_config(disable=True)
    multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
    w, h = wan.generation_size(width, height, long_side, multiple)
    device, dtype = torch.device(wan.get_manager().device), pipe.transformer.dtype
    with torch.inference_mode():
        video = pipe(prompt_embeds=embeds.to(device, dtype),
                     negative_prompt_embeds=negative_embeds.to(device, dtype),
                     height=h, width=w, num_frames=wan.frame_count(seconds, wan.CLIP_FPS, pipe.vae_scale_factor_temporal),
                     num_inference_steps=int(steps or wan.STEPS), guidance_scale=wan.GUIDANCE, output_type="np",
                     generator=torch.Generator("cpu").manual_seed(int(seed))).frames[0]
    if not np.isfinite(video).all():
        raise wan.PodiumError("the scene shot came out as NaN: try another seed, or the CPU")
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class SceneTrack:
    """A Visual: each segment's shot over its span of the speech (`bounds`: (start, end) per
    segment; a shot's own time starts at 0 with its narration), `fallback` where a segment
    has no scene."""

    def __init__(self, shots: list[Optional[object]], bounds: list[tuple[float, float]], fallback,
                 width: int, height: int):
        self.shots, self.fallback = shots, fallback
        self.width, self.height = int(width), int(height)
        self._starts = [start for start, _ in bounds]

    def segment_at(self, t: float) -> int:
        return max(bisect.bisect_right(self._starts, t) - 1, 0)

    def render(self, t: float) -> np.ndarray:
        i = self.segment_at(t)
        shot = self.shots[i] if i < len(self.shots) else None
        if shot is None:
            return self.fallback.render(t)
        return shot.render(t - self._starts[i])

    def page_key(self, t: float):
        """A PiP placement per segment (a shot moves: the box keeps one place over it)."""
        i = self.segment_at(t)
        inner = getattr(self.fallback, "page_key", None)
        if self.shots[i] is None and callable(inner):
            return ("fallback", inner(t))
        return ("segment", i)


class Blank:
    """A Visual: black frames (a scene track with nothing to fall back on)."""

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self._frame = np.zeros((self.height, self.width, 3), np.uint8)

    def render(self, t: float) -> np.ndarray:
        return self._frame


def make_shot(spec: SceneSpec, narration_s: float, width: int, height: int,
              makers: list[tuple[str, Callable[[], object]]]) -> Shot:
    """The first generator in `makers` ((name, make) pairs, best first) that makes the shot;
    each that cannot (a ModelMissingError, or `make` giving a reason as a str) is passed over
    and named in the line, one turned off (None) silently; the title card is the last resort."""
    from ..errors import ModelMissingError

    skipped = []
    for name, make in makers:
        try:
            made = make()
        except ModelMissingError as err:
            made = str(err).split(":")[0]
        if made is None:  # not asked for (off)
            continue
        if isinstance(made, str):
            skipped.append(f"{name}: {made}")
            continue
        return Shot(made, f"scene {spec.prompt[:40]!r}: {name}" + _passed(skipped))
    card = MovingStill(title_card(spec, width, height), spec.move, narration_s, width, height)
    return Shot(card, f"scene {spec.prompt[:40]!r}: title card with the camera {spec.move}" + _passed(skipped))


def _passed(skipped: list[str]) -> str:
    return f" (not {'; '.join(skipped)})" if skipped else ""


@dataclass(frozen=True)
class ShotRequest:
    """What a core-node video graph (ComfyUI's Wan22ImageToVideoLatent + KSampler) is asked for
    one shot: the segment it is for, the prompt, the generation size (multiples of 32: the Wan 2.2
    VAE's 16x times the 2x patch), its frames (4k + 1 at 24 fps) and, for a scene `with the
    presenter`, the portrait framed at that size (else None: text-to-video)."""

    segment: int
    prompt: str
    width: int
    height: int
    frames: int
    start_image: Optional[np.ndarray]


def first_scene(scenes: list[str]) -> int:
    """The index of the first segment with a scene mark (-1: none). One shot a run: a server
    job is one segment, so the core graph makes that segment's shot."""
    return next((i for i, scene in enumerate(scenes) if scene), -1)


def shot_request(scenes: list[str], bounds: list[tuple[float, float]], width: int, height: int,
                 long_side: int = wan.LONG_SIDE, longest: float = CLIP_SECONDS,
                 still: Optional[np.ndarray] = None) -> Optional[ShotRequest]:
    """The first scene's request, sized as the in-process path sizes it (the video's aspect by
    area, a clip of the narration's length up to `longest`); None when no segment has a scene."""
    from .scene_spec import read_scene

    index = first_scene(scenes)
    if index < 0 or index >= len(bounds):
        return None
    spec = read_scene(scenes[index])
    start, end = bounds[index]
    w, h = wan.generation_size(width, height, long_side, 32)
    frames = wan.frame_count(clip_seconds(spec, end - start, longest), wan.CLIP_FPS, 4)
    portrait = wan.cover(np.asarray(still), w, h) if spec.with_presenter and still is not None else None
    return ShotRequest(index, spec.model_prompt, w, h, frames, portrait)
