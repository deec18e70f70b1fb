"""Music and sound effects from diffusers audio pipelines: ACE-Step 1.5 (AceStepPipeline, MIT)
and, for sound effects, Stable Audio Open 1.0 (StableAudioPipeline, Stability AI Community
License: see models.yaml).

`load_pipeline` reads a diffusers-format folder (model_index.json, one sub-folder per
component) with local files only and hands it to the memory manager, which places and caches
it; `generate` makes stereo audio of exactly the asked length at the model's rate (48 kHz for
ACE-Step, 44.1 kHz for Stable Audio), the same for the same seed on any device (the noise is
drawn on the CPU). Music beds are instrumental (ACE-Step lyrics "[Instrumental]"): they go
under a voice. ACE-Step makes sound effects too, prompted for the sound alone, so a cue needs
no model of another licence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..memory import get_manager
from ..models import diffusers_class
from ..progress import Progress

GiB = 1024**3
ACE_STEP, STABLE_AUDIO = "AceStepPipeline", "StableAudioPipeline"
PIPELINES = (ACE_STEP, STABLE_AUDIO)
MAX_SECONDS = 600.0  # ACE-Step 1.5 makes up to 10 minutes; Stable Audio Open 47.55 s
INSTRUMENTAL = "[Instrumental]"
SFX_PROMPT = "sound effect, no music, no vocals: {}"  # ACE-Step is a music model: say so
SFX_NEGATIVE = "music, speech, vocals, low quality"  # Stable Audio has a negative prompt
TURBO_STEPS, BASE_STEPS, STABLE_AUDIO_STEPS = 8, 30, 100
WORK_BYTES = int(2 * GiB)  # beyond the weights: the VAE decode (tiled past 20 s) dominates


def pipeline_class(folder: Path) -> str:
    """The supported pipeline class model_index.json names, or a clear error."""
    name = diffusers_class(folder, f"no diffusers model in {folder}: model_index.json not found. Download one with "
                            "`podium models pull <id>` (see `podium models list`)")
    if name not in PIPELINES:
        raise PodiumError(f"{folder} holds a {name or 'unknown'} pipeline; supported: {', '.join(PIPELINES)}")
    return name


def load_pipeline(folder: str | Path):
    """The audio pipeline in `folder`, cached and placed by the memory manager: on CUDA bf16 for
    ACE-Step (its released dtype) and fp16 for Stable Audio; fp32 on the CPU."""
    import torch

    folder = Path(folder).expanduser()
    name = pipeline_class(folder)
    manager = get_manager()
    cuda = manager.device.startswith("cuda")
    dtype = (torch.bfloat16 if name == ACE_STEP else torch.float16) if cuda else torch.float32
    weights = [p for p in folder.glob("*/*") if p.suffix in (".safetensors", ".bin")]
    size = sum(p.stat().st_size for p in weights) * (1 if cuda else 2)  # 16-bit files, fp32 on the CPU

    def loader():
        import diffusers
        from diffusers.utils import deprecation_utils
        # newer diffusers name it `dtype` and warn about `torch_dtype`; older ones know only that
        extra = {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}
        cls = getattr(diffusers, name, None)
        if cls is None:
            raise PodiumError(f"diffusers {diffusers.__version__} has no {name}: pip install 'diffusers>=0.38'")
        try:
            pipe = cls.from_pretrained(folder, local_files_only=True, **extra)
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the audio model in {folder} (incomplete or damaged?): "
                                    f"{exc}. Pull it again with `podium models pull <id>`") from None
        pipe.set_progress_bar_config(disable=True)
        if hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()  # beyond 512 latents (20 s): long beds decode in bounded memory
        return pipe

    return manager.load(f"audio:{folder.resolve()}:{str(dtype)[6:]}", loader, kind="torch",
                        stage="music", size_bytes=size, work_bytes=WORK_BYTES)


def sample_rate_of(pipe) -> int:
    return int(pipe.vae.config.sampling_rate)


def max_seconds(pipe) -> float:
    """The longest audio the model makes in one go."""
    if type(pipe).__name__ == STABLE_AUDIO:
        return pipe.transformer.config.sample_size * pipe.vae.hop_length / sample_rate_of(pipe)
    return MAX_SECONDS


def n_samples(seconds: float, sample_rate: int) -> int:
    """The sample count of `seconds` at `sample_rate` (rounded to the nearest sample)."""
    return int(round(float(seconds) * int(sample_rate)))


def generate(pipe, prompt: str, seconds: float, seed: int = 0, steps: int = 0,
             lyrics: Optional[str] = None, guidance: Optional[float] = None,
             negative_prompt: str = "") -> tuple[np.ndarray, int]:
    """(float32 array (channels, samples), sample rate): `seconds` of audio for `prompt`.

    `steps` 0: the model's default (ACE-Step 8 turbo / 30 base and SFT; Stable Audio 100);
    `lyrics` None: instrumental (ACE-Step); `guidance` None: the model's (none for ACE-Step
    turbo, which is guidance-distilled); `negative_prompt`: Stable Audio only.
    """
    import torch

    seconds, stable_audio = float(seconds), type(pipe).__name__ == STABLE_AUDIO
    if not prompt or not prompt.strip():
        raise PodiumError("the prompt is empty: describe the music (genre, mood, instruments) or the sound")
    longest = max_seconds(pipe)
    if not 0 < seconds <= longest:
        raise PodiumError(f"seconds must be more than 0 and at most {longest:g} for this model, got {seconds:g}")
    steps = int(steps) or (STABLE_AUDIO_STEPS if stable_audio else TURBO_STEPS if pipe.is_turbo else BASE_STEPS)
    if steps < 1:
        raise PodiumError(f"steps must be 1 or more (0: the model's default), got {steps}")
    rate = sample_rate_of(pipe)
    want = n_samples(seconds, rate)
    if want < 1:
        raise PodiumError(f"{seconds:g} s is less than one sample at {rate} Hz")
    progress = Progress(steps)
    kwargs = dict(prompt=prompt.strip(), num_inference_steps=steps, output_type="pt",
                  generator=torch.Generator("cpu").manual_seed(int(seed)))  # same noise on any device
    if stable_audio:  # it cuts int(end * rate) samples: ask half a sample more, so none is missing
        kwargs.update(audio_end_in_s=(want + 0.5) / rate, negative_prompt=negative_prompt or None,
                      callback=lambda *_: progress.update())
        if guidance is not None:
            kwargs["guidance_scale"] = float(guidance)
    else:
        kwargs.update(lyrics=INSTRUMENTAL if lyrics is None else lyrics, audio_duration=seconds,
                      callback_on_step_end=lambda _p, _i, _t, tensors: progress.update() or tensors)
        if guidance is not None or pipe.is_turbo:
            kwargs["guidance_scale"] = 1.0 if guidance is None else float(guidance)
    with torch.inference_mode():
        audio = pipe(**kwargs).audios[0]  # (channels, samples): at least `want`, rounded up
    audio = audio.float().cpu().numpy()
    if audio.shape[-1] < want:
        raise PodiumError(f"the model made {audio.shape[-1]} samples, {want} were asked for")
    audio = np.ascontiguousarray(audio[:, :want], np.float32)
    if not np.isfinite(audio).all():
        raise PodiumError("the audio came out as NaN (fp16 overflow?): try the CPU or another model")
    return audio, rate


def sound_effect(pipe, prompt: str, seconds: float, seed: int = 0, steps: int = 0) -> tuple[np.ndarray, int]:
    """A sound effect: the sound alone, no music and no vocals."""
    if not prompt or not prompt.strip():
        raise PodiumError("the sound-effect prompt is empty: name the sound (e.g. applause, door slam)")
    if type(pipe).__name__ == STABLE_AUDIO:
        return generate(pipe, prompt, seconds, seed, steps, negative_prompt=SFX_NEGATIVE)
    return generate(pipe, SFX_PROMPT.format(prompt.strip()), seconds, seed, steps)
