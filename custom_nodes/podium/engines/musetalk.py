"""Lip sync with MuseTalk 1.5: one UNet step in the latent space of sd-vae-ft-mse, driven by
Whisper-tiny's encoder features (MIT code, weights usable commercially).

Facts of the published model (TMElyralab/MuseTalk), which the weights expect:
- the face is a 256x256 crop; the VAE (AutoencoderKL, sd-vae-ft-mse) encodes it twice, once
  with its lower half blacked out (the mouth to redraw) and once whole (the reference), to
  32x32x4 latents times the VAE's scaling factor; the UNet (UNet2DConditionModel, musetalk.json:
  in_channels 8 = masked + reference latents, cross_attention_dim 384) runs once at timestep 0
  and its output is decoded as the new face;
- the audio: Whisper's feature extractor (16 kHz, 30 s windows) and encoder; every hidden state
  (the embedding output and each of tiny's 4 layers: 5 x 384) at 50 frames per second; a video
  frame at time t gets the 10 encoder frames from floor(50 t) - 4 (two 25 fps frames before it,
  two after; zeros past either end), flattened time-major to 50 tokens, plus the sinusoidal
  position encoding (d_model 384) over the token index;
- file layout: musetalkV15/unet.pth (a state_dict) + musetalk.json, sd-vae-ft-mse/ (diffusers
  folder), whisper-tiny/ (config.json, weights, preprocessor_config.json).

Here the window is taken at each frame's own timestamp, so any fps stays in sync (MuseTalk
itself indexes by an integer fps). Every frame with a face is rendered by the model, as upstream:
where the audio is quieter than `silence_db` it reaches Whisper as digital silence, so the model
itself draws the closed mouth (no swap to the sharp input face, no texture pop at pauses). The
latents are the VAE's mean (not a sample), so a frame renders the same every time. The crop and
the paste mask come from face landmarks as MuseTalk was trained (musetalk_face.py).
All three models load through the memory manager; torch is imported only when they load.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..memory import get_manager
from .lipsync import Box, FaceSyncVisual, paste_face
from .musetalk_face import (EXTRA_MARGIN, Face, FaceFraming, box_locator, detector_locator,
                            mesh_locator)
from .speech import Speech, resample
from .frames import Visual

CROP = 256  # face crop side, px
SAMPLE_RATE = 16000  # Whisper's
AUDIO_FPS = 50  # encoder frames per second (hop 160, stride 2)
SEGMENT_S = 30  # Whisper's window
WINDOW, LEFT = 10, 4  # encoder frames per video frame, and how many lie before its time
LATENT_CACHE = 64  # reference latents kept (a still portrait or a looped clip repeats faces)
log = logging.getLogger("podium.musetalk")


@dataclass(frozen=True)
class MuseTalkFiles:
    """Where the published files are: the UNet's state_dict and config, the VAE and Whisper
    folders (diffusers / transformers layout)."""

    unet: Path
    config: Path
    vae: Path
    whisper: Path

    def check(self) -> "MuseTalkFiles":
        for path, what in ((self.unet, "MuseTalk UNet weights (unet.pth)"),
                           (self.config, "MuseTalk UNet config (musetalk.json)"),
                           (self.vae / "config.json", "VAE config (sd-vae-ft-mse/config.json)"),
                           (self.whisper / "config.json", "Whisper config (whisper-tiny/config.json)"),
                           (self.whisper / "preprocessor_config.json",
                            "Whisper feature extractor (whisper-tiny/preprocessor_config.json)")):
            if not Path(path).is_file():
                raise ModelMissingError(f"{what} not found: {path}")
        return self


def _dtype():
    import torch
    return torch.float16 if get_manager().device.startswith("cuda") else torch.float32


def _unet_loader(files: MuseTalkFiles, dtype) -> Callable:
    def load():
        import torch
        from diffusers import UNet2DConditionModel

        try:
            config = json.loads(Path(files.config).read_text(encoding="utf-8"))
            state = torch.load(str(files.unet), map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise PodiumError(f"cannot read the MuseTalk UNet ({files.unet}, {files.config}): "
                              f"{err}; pull it again (podium models pull)") from None
        if config.get("in_channels") != 8:
            raise PodiumError(f"{files.config} is not a MuseTalk UNet config: in_channels is "
                              f"{config.get('in_channels')}, MuseTalk's is 8 (masked + reference latents)")
        with torch.device("meta"):  # no random init of ~0.8 B weights that are replaced at once
            unet = UNet2DConditionModel.from_config(config)
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        try:
            unet.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            raise PodiumError(f"{files.unet} does not fit {files.config}: "
                              f"{str(err).splitlines()[0]}") from None
        return unet.eval().requires_grad_(False)
    return load


def _vae_loader(folder: Path, dtype) -> Callable:
    def load():
        from diffusers import AutoencoderKL
        try:
            vae = AutoencoderKL.from_pretrained(str(folder), torch_dtype=dtype)
        except (OSError, ValueError, EnvironmentError) as err:
            raise ModelMissingError(f"cannot load the VAE in {folder} (incomplete or damaged?): "
                                    f"{str(err).splitlines()[0]}") from None
        return vae.eval().requires_grad_(False)
    return load


def _whisper_loader(folder: Path, dtype) -> Callable:
    def load():
        from transformers import WhisperModel
        try:
            model = WhisperModel.from_pretrained(str(folder), torch_dtype=dtype)
        except (OSError, ValueError, EnvironmentError) as err:
            raise ModelMissingError(f"cannot load Whisper in {folder} (incomplete or damaged?): "
                                    f"{str(err).splitlines()[0]}") from None
        return model.get_encoder().eval().requires_grad_(False)  # the decoder is never used
    return load


class MuseTalkModels:
    """The three models, asked of the memory manager each time (so it may evict them
    between batches and reload them): `unet()`, `vae()`, `whisper()`, `extractor()`."""

    def __init__(self, files: MuseTalkFiles):
        self.files = files.check()
        self.dtype = _dtype()
        tag = str(self.dtype).rpartition(".")[2]
        self._keys = {name: f"musetalk-{name}:{Path(p).resolve()}:{tag}" for name, p in
                      (("unet", files.unet), ("vae", files.vae), ("whisper", files.whisper))}

    def unet(self):
        return get_manager().load(self._keys["unet"], _unet_loader(self.files, self.dtype),
                                  kind="torch", stage="lipsync",
                                  size_bytes=os.path.getsize(self.files.unet))

    def vae(self):
        return get_manager().load(self._keys["vae"], _vae_loader(self.files.vae, self.dtype),
                                  kind="torch", stage="lipsync")

    def whisper(self):
        return get_manager().load(self._keys["whisper"],
                                  _whisper_loader(self.files.whisper, self.dtype),
                                  kind="torch", stage="lipsync")

    def extractor(self):
        def load():
            from transformers import WhisperFeatureExtractor
            return WhisperFeatureExtractor.from_pretrained(str(self.files.whisper))
        return get_manager().load(f"whisper-features:{Path(self.files.whisper).resolve()}", load,
                                  kind="other", size_bytes=0, stage="lipsync")

    def load_all(self) -> "MuseTalkModels":
        """Load (and check) everything now, not halfway through the video."""
        unet, whisper = self.unet(), self.whisper()
        self.vae(), self.extractor()
        width = whisper.config.d_model
        if unet.config.cross_attention_dim != width:
            raise PodiumError(f"the MuseTalk UNet attends to {unet.config.cross_attention_dim}-wide "
                              f"audio features but {self.files.whisper} gives {width}: use "
                              "whisper-tiny (d_model 384)")
        return self


def position_encoding(length: int, width: int) -> np.ndarray:
    """The transformer's sinusoidal encoding (length, width): sin on even, cos on odd columns."""
    position = np.arange(length, dtype=np.float64)[:, None]
    rate = np.exp(np.arange(0, width, 2, dtype=np.float64) * (-math.log(10000.0) / width))
    table = np.zeros((length, width), np.float64)
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate)[:, : width // 2]
    return table.astype(np.float32)


def encoder_window(t: float) -> tuple[int, int]:
    """The encoder frames [start, stop) that drive the video frame at time t."""
    start = int(math.floor(t * AUDIO_FPS + 1e-6)) - LEFT
    return start, start + WINDOW


class WhisperFeatures:
    """Whisper encoder features of the speech, computed a 30 s window at a time when a frame
    needs them; the two most recent windows are kept (memory stays flat for any length)."""

    def __init__(self, samples_16k: np.ndarray, models: MuseTalkModels):
        self.samples, self.models = np.asarray(samples_16k, np.float32), models
        self.n_frames = math.ceil(len(self.samples) / (SAMPLE_RATE // AUDIO_FPS))
        self._segments: "OrderedDict[int, np.ndarray]" = OrderedDict()

    def _segment(self, k: int) -> np.ndarray:
        if k in self._segments:
            self._segments.move_to_end(k)
            return self._segments[k]
        import torch
        chunk = self.samples[k * SEGMENT_S * SAMPLE_RATE:(k + 1) * SEGMENT_S * SAMPLE_RATE]
        mel = self.models.extractor()(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        encoder = self.models.whisper()
        param = next(encoder.parameters())
        with torch.inference_mode():
            states = encoder(mel.to(param.device, param.dtype), output_hidden_states=True).hidden_states
        features = torch.stack(states, dim=2)[0].float().cpu().numpy()  # (frames, layers, width)
        self._segments[k] = features
        while len(self._segments) > 2:
            self._segments.popitem(last=False)
        return features

    def window(self, t: float) -> np.ndarray:
        """(WINDOW * layers, width) tokens for the frame at time t, zeros outside the speech."""
        start, stop = encoder_window(t)
        per = SEGMENT_S * AUDIO_FPS
        rows = []
        for i in range(start, stop):
            if 0 <= i < self.n_frames:
                rows.append(self._segment(i // per)[i % per])
            else:
                rows.append(None)
        shape = next((r.shape for r in rows if r is not None), None) or self._segment(0)[0].shape
        return np.concatenate([r if r is not None else np.zeros(shape, np.float32) for r in rows])


def gate_silence(samples_16k: np.ndarray, silence_db: float) -> np.ndarray:
    """The speech with every 20 ms (one encoder frame) set to zero where the 0.2 s a video frame
    hears around it (its encoder window) is quieter than `silence_db` (RMS, dBFS): room noise
    and breaths reach Whisper as the silence the model closes the mouth on."""
    hop = SAMPLE_RATE // AUDIO_FPS
    samples = np.asarray(samples_16k, np.float32)
    n = math.ceil(len(samples) / hop)
    if n == 0:
        return samples.copy()
    power = np.zeros(n * hop, np.float64)
    power[:len(samples)] = np.square(samples, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(power.reshape(n, hop).sum(1))])
    start = np.clip(np.arange(n) - LEFT, 0, n)
    stop = np.clip(np.arange(n) - LEFT + WINDOW, 0, n)
    mean = (sums[stop] - sums[start]) / np.maximum((stop - start) * hop, 1)
    quiet = 10 * np.log10(np.maximum(mean, 1e-20)) < silence_db
    out = samples.copy()
    out[np.repeat(quiet, hop)[:len(samples)]] = 0.0
    return out


class MuseTalkVisual(FaceSyncVisual):
    """A Visual whose mouth follows the speech (MuseTalk 1.5), made in batches of `batch_size`
    frames as the video is written. `fps` must be the rate frames are pulled at. Faces are framed
    from landmarks (`face_mesh`, an object with `landmarks(rgb) -> (468, 3) | None`; by default
    MediaPipe's mesh when installed, else the detector's points); `face_box` (x1, y1, x2, y2: the
    face, brows to chin) skips detection. Pads (top, bottom, left, right) widen the crop; the
    bottom one is MuseTalk's extra margin under the chin (10 px)."""

    def __init__(self, base: Visual, speech: Speech, models: MuseTalkModels, fps: float,
                 pads: Sequence[int] = (0, EXTRA_MARGIN, 0, 0), smooth_frames: int = 5,
                 batch_size: int = 8, face_detector: str = "auto",
                 face_box: Optional[Box] = None, yunet_path: Optional[str] = None,
                 silence_db: float = -50.0, face_mesh=None):
        super().__init__(base, speech, fps, pads, smooth_frames, batch_size, face_detector,
                         face_box, yunet_path)
        if face_box is not None:
            locate, self.framing = box_locator(self.track.face_box), "face box"
        elif face_mesh is not None:
            locate, self.framing = mesh_locator(face_mesh), "face mesh"
        else:
            locate, self.framing = _auto_locator(self.track.detector)
        self.track = FaceFraming(self.width, self.height, locate, pads, smooth_frames)
        self.models, self.silence_db = models, float(silence_db)
        self.samples = resample(speech.samples, speech.sample_rate, SAMPLE_RATE)
        self.features = WhisperFeatures(gate_silence(self.samples, self.silence_db), models)
        self._latents: "OrderedDict[bytes, object]" = OrderedDict()

    def _sync(self, frames, faces: list[Face], indices):
        boxes = [f.box for f in faces]
        generated = self._generate(frames, boxes, [i / self.fps for i in indices])
        return [paste_face(frame, face, f.box, mask=f.mask())
                for frame, face, f in zip(frames, generated, faces)]

    @staticmethod
    def crop(frame: np.ndarray, box: Box) -> np.ndarray:
        x1, y1, x2, y2 = box
        region = frame[y1:y2, x1:x2]
        shrink = (x2 - x1) >= CROP and (y2 - y1) >= CROP
        return cv2.resize(region, (CROP, CROP),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)

    def _reference_latents(self, crops: list[np.ndarray], vae):
        """(B, 8, 32, 32): the masked crop's latents, then the whole crop's (MuseTalk's order)."""
        import torch
        param = next(vae.parameters())
        keys = [hashlib.blake2b(c.tobytes(), digest_size=16).digest() for c in crops]
        todo = [k for k in dict.fromkeys(keys) if k not in self._latents]
        if todo:
            first = {k: crops[keys.index(k)] for k in todo}
            pixels = torch.from_numpy(np.stack(list(first.values()))).permute(0, 3, 1, 2)
            pixels = pixels.to(param.device, torch.float32) / 127.5 - 1.0
            masked = pixels.clone()
            masked[:, :, CROP // 2:] = -1.0  # the lower half black, as MuseTalk masks it
            with torch.inference_mode():
                both = torch.cat([masked, pixels]).to(param.dtype)
                latents = vae.encode(both).latent_dist.mode() * vae.config.scaling_factor
            n = len(todo)
            for j, k in enumerate(todo):
                self._latents[k] = torch.cat([latents[j], latents[n + j]])
                while len(self._latents) > LATENT_CACHE:
                    self._latents.popitem(last=False)
        for k in keys:
            self._latents.move_to_end(k)
        return torch.stack([self._latents[k] for k in keys]).to(param.device)

    def _generate(self, frames, boxes, times) -> list[np.ndarray]:
        import torch
        unet, vae = self.models.unet(), self.models.vae()
        param = next(unet.parameters())
        crops = [self.crop(f, b) for f, b in zip(frames, boxes)]
        latents = self._reference_latents(crops, vae).to(param.dtype)
        audio = np.stack([self.features.window(t) for t in times])  # (B, tokens, width)
        audio = audio + position_encoding(audio.shape[1], audio.shape[2])[None]
        audio = torch.from_numpy(audio).to(param.device, param.dtype)
        with torch.inference_mode():
            step = torch.zeros(len(frames), dtype=torch.long, device=param.device)
            out = unet(latents, step, encoder_hidden_states=audio).sample
            vparam = next(vae.parameters())
            image = vae.decode(out.to(vparam.device, vparam.dtype) / vae.config.scaling_factor).sample
        image = ((image.float() / 2 + 0.5).clamp(0, 1) * 255.0).permute(0, 2, 3, 1).cpu().numpy()
        return list(image)


def _auto_locator(detector):
    """MediaPipe's face mesh over `detector` when it is installed, else the detector's points."""
    from .face_mesh import FaceMesh
    try:
        return mesh_locator(FaceMesh(detector=detector)), "face mesh"
    except PodiumError as err:  # not installed (or no LiteRT): say so once, frame from the points
        log.warning("MuseTalk framing from the face detector's points, not the face mesh: %s", err)
        return detector_locator(detector), "detector points"
