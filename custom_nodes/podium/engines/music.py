"""Music and sound effects from ACE-Step 1.5 (MIT), run through diffusers' AceStepPipeline.

`load_pipeline` reads a diffusers-format folder (model_index.json, one sub-folder per
component) with local files only and hands it to the memory manager, which places and caches
it; `generate` makes stereo audio of exactly the asked length at the model's rate (48 kHz for
the real model), the same for the same seed on any device (the noise is drawn on the CPU).
Music beds are instrumental by default (lyrics "[Instrumental]"): they go under a voice.
Sound effects are ACE-Step prompted for a sound; no separately licensed sound model is needed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..memory import get_manager
from ..progress import Progress

GiB = 1024**3
PIPELINE = "AceStepPipeline"
MAX_SECONDS = 600.0  # ACE-Step 1.5 makes up to 10 minutes
INSTRUMENTAL = "[Instrumental]"
SFX_PROMPT = "sound effect, no music, no vocals: {}"
# steps, working memory beyond the weights at 30 s (latents are small; the VAE decode is not)
TURBO_STEPS, BASE_STEPS = 8, 30
WORK_BYTES = int(2 * GiB)


def _check_folder(folder: Path) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelMissingError(f"no diffusers model in {folder}: model_index.json not found. Download one with "
                                "`podium models pull <id>` (see `podium models list`)")
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (ValueError, OSError) as exc:
        raise PodiumError(f"{index} is unreadable: {exc}") from None
    if name != PIPELINE:
        raise PodiumError(f"{folder} holds a {name or 'unknown'} pipeline, not ACE-Step ({PIPELINE})")


def load_pipeline(folder: str | Path):
    """The ACE-Step pipeline in `folder`, cached and placed by the memory manager: bf16 on CUDA
    (the released weights' dtype), fp32 on the CPU."""
    import torch

    folder = Path(folder).expanduser()
    _check_folder(folder)
    manager = get_manager()
    cuda = manager.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    weights = [p for p in folder.glob("*/*") if p.suffix in (".safetensors", ".bin")]
    size = sum(p.stat().st_size for p in weights) * (1 if cuda else 2)  # bf16 files, fp32 on the CPU

    def loader():
        import diffusers
        from diffusers.utils import deprecation_utils
        # newer diffusers name it `dtype` and warn about `torch_dtype`; older ones know only that
        extra = {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}
        cls = getattr(diffusers, PIPELINE, None)
        if cls is None:
            raise PodiumError(f"diffusers {diffusers.__version__} has no {PIPELINE}: "
                              "pip install 'diffusers>=0.38'")
        try:
            pipe = cls.from_pretrained(folder, local_files_only=True, **extra)
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the ACE-Step model in {folder} (incomplete or damaged?): "
                                    f"{exc}. Pull it again with `podium models pull <id>`") from None
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return manager.load(f"ace-step:{folder.resolve()}:{str(dtype)[6:]}", loader, kind="torch",
                        stage="music", size_bytes=size, work_bytes=WORK_BYTES)


def n_samples(seconds: float, sample_rate: int) -> int:
    """The sample count of `seconds` at `sample_rate` (rounded to the nearest sample)."""
    return int(round(float(seconds) * int(sample_rate)))


def generate(pipe, prompt: str, seconds: float, seed: int = 0, steps: int = 0,
             lyrics: Optional[str] = None, guidance: Optional[float] = None) -> tuple[np.ndarray, int]:
    """(float32 array (channels, samples), sample rate): `seconds` of audio for `prompt`.

    `steps` 0: the model's default (8 turbo, 30 base/SFT); `lyrics` None: instrumental;
    `guidance` None: the pipeline's for base/SFT models, 1 (none) for turbo models, which are
    guidance-distilled.
    """
    import torch

    seconds = float(seconds)
    if not prompt or not prompt.strip():
        raise PodiumError("the music prompt is empty: describe the music (genre, mood, instruments)")
    if not 0 < seconds <= MAX_SECONDS:
        raise PodiumError(f"seconds must be more than 0 and at most {MAX_SECONDS:g}, got {seconds:g}")
    steps = int(steps) or (TURBO_STEPS if pipe.is_turbo else BASE_STEPS)
    if steps < 1:
        raise PodiumError(f"steps must be 1 or more (0: the model's default), got {steps}")
    rate = int(pipe.sample_rate)
    want = n_samples(seconds, rate)
    if want < 1:
        raise PodiumError(f"{seconds:g} s is less than one sample at {rate} Hz")
    progress = Progress(steps)

    def on_step(_pipe, _step, _timestep, tensors):
        progress.update()
        return tensors

    kwargs = dict(prompt=prompt.strip(), lyrics=INSTRUMENTAL if lyrics is None else lyrics,
                  audio_duration=seconds, num_inference_steps=steps, output_type="pt",
                  callback_on_step_end=on_step,
                  generator=torch.Generator("cpu").manual_seed(int(seed)))  # same noise on any device
    if guidance is not None or pipe.is_turbo:
        kwargs["guidance_scale"] = 1.0 if guidance is None else float(guidance)
    with torch.inference_mode():
        audio = pipe(**kwargs).audios[0]  # (channels, ceil(seconds * latent rate) * downsampling)
    audio = audio.float().cpu().numpy()
    if audio.shape[-1] < want:  # the pipeline rounds the latent count up, so this is a bug if seen
        raise PodiumError(f"the model made {audio.shape[-1]} samples, {want} were asked for")
    audio = np.ascontiguousarray(audio[:, :want], np.float32)
    if not np.isfinite(audio).all():
        raise PodiumError("the audio came out as NaN (fp16 overflow?): try the CPU or another model")
    return audio, rate


def sound_effect(pipe, prompt: str, seconds: float, seed: int = 0, steps: int = 0) -> tuple[np.ndarray, int]:
    """A sound effect: ACE-Step asked for the sound alone, no music and no vocals."""
    if not prompt or not prompt.strip():
        raise PodiumError("the sound-effect prompt is empty: name the sound (e.g. applause, door slam)")
    return generate(pipe, SFX_PROMPT.format(prompt.strip()), seconds, seed, steps)
