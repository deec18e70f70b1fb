"""How a cinema graph covers audio of any length: the chained generations (chunks) each Wan
talking-video model makes, counted the way ComfyUI's nodes count them.

Pure arithmetic (no numpy, no torch): the node that builds the chain (nodes/chain.py), the
orchestrator's `--plan` and the tests all use it. The facts, from ComfyUI's
comfy_extras/nodes_wan.py and the official templates (comfyui-workflow-templates):

- Every Wan video node makes `((length - 1) // 4) + 1` latents, and the Wan VAE decodes `lt`
  latents to `4 * (lt - 1) + 1` frames (the first latent is one frame, each later one four).
- InfiniteTalk (WanInfiniteTalkToVideo; audio features at 25 fps, trained on 81 frames): a chunk
  with `previous_frames` re-makes the last `motion_frame_count` (9) of them, reads the audio from
  `len(previous_frames) - 9`, and says so in `trim_image`; so chunk k adds `length - 9` new
  frames and must get every frame made so far. It raises "Not enough previous frames" below 9.
- S2V (WanSoundImageToVideo + ...Extend, 16 fps; the template `video_wan2_2_14B_s2v` chains
  chunks of 77): each chunk reads `lt * 4` audio frames from `frame_offset` = 4 x the latents
  made so far, out of a bucket padded to a whole multiple of `lt * 4`, so chunks of one equal
  length always get full audio windows; the latents are concatenated and decoded once
  (`4 * LT - 3` frames).
- HuMo (WanHuMoImageToVideo, 25 fps, trained on 97 frames; template `video_humo`): no
  continuation input and its audio always starts at frame 0, so a long take is cut into audio
  pieces (at a pause, on a frame boundary), each its own generation whose reference is the
  previous piece's last frame; each piece keeps exactly its own frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict
from typing import Callable, Optional

KINDS = ("infinitetalk", "s2v", "humo")
NATIVE_FPS = {"infinitetalk": 25.0, "s2v": 16.0, "humo": 25.0}
MAX_FRAMES = {"infinitetalk": 81, "s2v": 77, "humo": 97}  # per generation, as trained / templated
MOTION_FRAMES = 9  # InfiniteTalk's motion_frame_count default (nodes_wan.py, upstream)
S2V_AUDIO_RATE = 30  # wan_sound_to_video resamples the wav2vec2 features to 30 per second
S2V_SCALE = S2V_AUDIO_RATE / NATIVE_FPS["s2v"]
# The node classes PodiumWanChain expands into: a server must have them all (0.3.64 lacks InfiniteTalk).
_COMMON = ("AudioEncoderEncode", "KSampler", "VAEDecode")
EXPANDS_TO = {"infinitetalk": ("WanInfiniteTalkToVideo", "ImageFromBatch", "ImageBatch") + _COMMON,
              "s2v": ("WanSoundImageToVideo", "WanSoundImageToVideoExtend", "LatentConcat") + _COMMON,
              "humo": ("WanHuMoImageToVideo", "PodiumAudioSlice", "ImageFromBatch", "ImageBatch") + _COMMON}


@dataclass
class Chunk:
    """One generation: `length` frames asked of the Wan node; of the frames it yields, `keep`
    from `skip` on are new; its audio starts at `audio_start` s."""

    length: int
    skip: int
    keep: int
    audio_start: float
    audio_end: float


@dataclass
class ChunkPlan:
    kind: str
    seconds: float
    fps: float
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def frames(self) -> int:
        """The frames the chain yields at the model's fps (what PodiumRetime reads)."""
        if self.kind == "s2v":
            return 4 * sum(latents(c.length) for c in self.chunks) - 3
        return sum(c.keep for c in self.chunks)

    @property
    def generated(self) -> int:
        """Frames sampled in all (with InfiniteTalk's re-made overlap): the cost."""
        return sum(c.length for c in self.chunks)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "seconds": round(self.seconds, 3), "fps": self.fps,
                "frames": self.frames, "generated_frames": self.generated,
                "chunks": [asdict(c) for c in self.chunks]}


def latents(length: int) -> int:
    """Latent frames a Wan node makes for `length` (nodes_wan.py: ((length - 1) // 4) + 1)."""
    return (length - 1) // 4 + 1


def four_n_plus_1(frames: int) -> int:
    """The fewest 4n+1 frames holding `frames` (the lengths the Wan VAE decodes exactly)."""
    return 4 * math.ceil((max(frames, 1) - 1) / 4) + 1


def cap_4n1(max_frames: int) -> int:
    return 4 * ((max_frames - 1) // 4) + 1


def frames_needed(seconds: float, fps: float) -> int:
    """Frames at `fps` whose span covers the audio: what PodiumRetime needs to find a source
    frame for every output frame."""
    return max(math.ceil(seconds * fps - 1e-6), 1)


def plan_chunks(kind: str, seconds: float, max_frames: Optional[int] = None,
                cut: Optional[Callable[[int, int], int]] = None) -> ChunkPlan:
    """The chain for `seconds` of audio on `kind`. `cut(lo, hi)` (HuMo only) picks where a
    piece ends, in frames from the start, between lo and hi inclusive (a pause in the speech);
    without it each piece is as long as the model allows."""
    if kind not in KINDS:
        raise ValueError(f"unknown cinema model {kind!r}: one of {', '.join(KINDS)}")
    cap = cap_4n1(max_frames or MAX_FRAMES[kind])
    plan = ChunkPlan(kind, seconds, NATIVE_FPS[kind])
    need = frames_needed(seconds, plan.fps)
    if kind == "infinitetalk":
        plan.chunks = _infinitetalk(need, cap, plan.fps)
    elif kind == "s2v":
        plan.chunks = _s2v(need, cap, plan.fps)
    else:
        plan.chunks = _humo(need, cap, plan.fps, cut)
    return plan


def _infinitetalk(need: int, cap: int, fps: float) -> list[Chunk]:
    if cap <= MOTION_FRAMES:
        raise ValueError(f"InfiniteTalk needs more than {MOTION_FRAMES} frames per chunk (got {cap})")
    first = min(four_n_plus_1(need), cap)
    chunks, made = [Chunk(first, 0, first, 0.0, first / fps)], first
    while made < need:
        length = min(four_n_plus_1(need - made + MOTION_FRAMES), cap)
        start = made - MOTION_FRAMES  # nodes_wan.py: audio_start = len(previous_frames) - motion
        chunks.append(Chunk(length, MOTION_FRAMES, length - MOTION_FRAMES, start / fps, (start + length) / fps))
        made += length - MOTION_FRAMES
    return chunks


def _s2v(need: int, cap: int, fps: float) -> list[Chunk]:
    total = math.ceil((need + 3) / 4)  # latents: 4 * LT - 3 frames decoded
    count = math.ceil(total / latents(cap))
    each = math.ceil(total / count)  # equal chunks: every audio window is whole (see above)
    length = 4 * (each - 1) + 1
    return [Chunk(length, 0, 4 * each if k else 4 * each - 3, 4 * each * k / fps, 4 * each * (k + 1) / fps)
            for k in range(count)]


def _humo(need: int, cap: int, fps: float, cut: Optional[Callable[[int, int], int]]) -> list[Chunk]:
    chunks, made = [], 0
    while made < need:
        left = need - made
        if left <= cap:
            piece = left
        else:
            lo, hi = made + max(cap // 2, 1), made + cap
            end = cut(lo, hi) if cut else hi
            piece = min(max(end, lo), hi) - made
        chunks.append(Chunk(four_n_plus_1(piece), 0, piece, made / fps, (made + piece) / fps))
        made += piece
    return chunks


def s2v_window_is_whole(plan: ChunkPlan, audio_frames_30: int) -> list[bool]:
    """For each S2V chunk, whether ComfyUI gives it a full audio window (get_audio_embed_bucket_fps
    pads the features to min_batch_num x batch_frames; chunk k reads [k*B, (k+1)*B)); a chunk
    past the audio's bucket gets none (it is then silent video, cut by the retime)."""
    out = []
    for k, chunk in enumerate(plan.chunks):
        batch = latents(chunk.length) * 4
        buckets = int(audio_frames_30 / (batch * S2V_SCALE)) + 1
        out.append((k + 1) * batch <= buckets * batch)
    return out
