#!/usr/bin/env python3
"""Export a Wav2Lip checkpoint (.pth, e.g. wav2lip_gan.pth) to the .onnx the lip sync node runs.

    .venv/bin/python scripts/export_wav2lip_onnx.py wav2lip_gan.pth models/lipsync/wav2lip_gan.onnx

The .onnx has inputs mel_spectrogram (B,1,80,16) and video_frames (B,6,96,96), output
(B,3,96,96), a dynamic batch. Needs torch and onnx (the dev extras). Wav2Lip's weights are
for non-commercial use only: see their license before publishing what you make with them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "custom_nodes"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="Wav2Lip .pth (a dict with 'state_dict', or the state dict)")
    parser.add_argument("output", type=Path, help="where to write the .onnx")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)

    import torch
    from podium.engines.wav2lip_net import Wav2Lip, export_onnx

    try:
        checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError: objects beyond tensors and plain data
        print(f"note: {err.__class__.__name__}; loading {args.checkpoint} as a full pickle, "
              "which trusts the file", file=sys.stderr)
        checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    model = Wav2Lip()
    model.load_state_dict({k.replace("module.", "", 1): v for k, v in state.items()})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    part = args.output.with_name(args.output.name + ".part")
    export_onnx(model, part, opset=args.opset)
    part.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
