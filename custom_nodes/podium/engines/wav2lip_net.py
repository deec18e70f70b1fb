"""The Wav2Lip generator in torch, for exporting to ONNX (tests and scripts/ only).

The architecture of Rudrabha/Wav2Lip `models/wav2lip.py` (96x96 faces), with the same module
names and shapes, so the published checkpoints (wav2lip.pth, wav2lip_gan.pth) load into it:
    model.load_state_dict({k.replace("module.", ""): v for k, v in ckpt["state_dict"].items()})

Inputs: mel (B, 1, 80, 16), one 0.2 s window of Wav2Lip's normalised mel spectrogram; face
(B, 6, 96, 96) in [0, 1], BGR channels (Wav2Lip was trained on cv2 frames): the target crop with
its lower half zeroed, then the reference crop. Output (B, 3, 96, 96) BGR in [0, 1].

The lip sync engine never imports this module: it runs the exported .onnx with ONNX Runtime.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

# Input names of the widely shared wav2lip.onnx / wav2lip_gan.onnx exports (the
# "wav2lip-onnx-HQ" ones), in the order of the torch forward(). FaceFusion's exports name the
# same tensors "source" and "target"; the engine accepts either by shape.
INPUT_NAMES = ("mel_spectrogram", "video_frames")
OUTPUT_NAME = "output"


class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU, optionally residual (Wav2Lip's `models/conv.py`)."""

    def __init__(self, cin, cout, kernel_size, stride, padding, residual=False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding),
                                        nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv_block(x))


def _res(c: int, n: int) -> list:
    return [Conv2d(c, c, 3, 1, 1, residual=True) for _ in range(n)]


def _up(cin: int, cout: int, n_res: int, stride: int = 2) -> nn.Sequential:
    if stride == 1:
        return nn.Sequential(Conv2dTranspose(cin, cout, 3, 1, 0), *_res(cout, n_res))
    return nn.Sequential(Conv2dTranspose(cin, cout, 3, 2, 1, output_padding=1), *_res(cout, n_res))


class Wav2Lip(nn.Module):
    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, 16, 7, 1, 3)),                                  # 96x96
            nn.Sequential(Conv2d(16, 32, 3, 2, 1), *_res(32, 2)),                   # 48x48
            nn.Sequential(Conv2d(32, 64, 3, 2, 1), *_res(64, 3)),                   # 24x24
            nn.Sequential(Conv2d(64, 128, 3, 2, 1), *_res(128, 2)),                 # 12x12
            nn.Sequential(Conv2d(128, 256, 3, 2, 1), *_res(256, 2)),                # 6x6
            nn.Sequential(Conv2d(256, 512, 3, 2, 1), *_res(512, 1)),                # 3x3
            nn.Sequential(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),    # 1x1
        ])
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), *_res(32, 2),
            Conv2d(32, 64, 3, (3, 1), 1), *_res(64, 2),
            Conv2d(64, 128, 3, 3, 1), *_res(128, 2),
            Conv2d(128, 256, 3, (3, 2), 1), *_res(256, 1),
            Conv2d(256, 512, 3, 1, 0),
            Conv2d(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(512, 512, 1, 1, 0)),                               # 1x1
            _up(1024, 512, 1, stride=1),                                            # 3x3
            _up(1024, 512, 2),                                                      # 6x6
            _up(768, 384, 2),                                                       # 12x12
            _up(512, 256, 2),                                                       # 24x24
            _up(320, 128, 2),                                                       # 48x48
            _up(160, 64, 2),                                                        # 96x96
        ])
        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1),
                                          nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0),
                                          nn.Sigmoid())

    def forward(self, audio_sequences, face_sequences):
        """(B, 1, 80, 16) mel and (B, 6, 96, 96) faces -> (B, 3, 96, 96). The original's
        5-D (B, T, ...) sequence form is not needed for inference and not supported."""
        x = self.audio_encoder(audio_sequences)  # (B, 512, 1, 1)
        feats = []
        f = face_sequences
        for block in self.face_encoder_blocks:
            f = block(f)
            feats.append(f)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)


def export_onnx(model: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Write `model` as ONNX: inputs mel_spectrogram (B,1,80,16) and video_frames (B,6,96,96),
    output (B,3,96,96), batch dimension dynamic. Uses the TorchScript exporter (dynamo=False)."""
    path = Path(path)
    model = model.eval()
    mel = torch.zeros(1, 1, 80, 16)
    face = torch.zeros(1, 6, 96, 96)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate
        torch.onnx.export(
            model, (mel, face), str(path), dynamo=False, opset_version=opset,
            input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAMES[0]: {0: "batch"}, INPUT_NAMES[1]: {0: "batch"},
                          OUTPUT_NAME: {0: "batch"}},
        )
    return path
