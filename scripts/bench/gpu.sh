#!/usr/bin/env bash
# Every GPU benchmark in one go, on a fresh GPU machine with nothing downloaded (each bench
# builds its models at their real size with random weights), in under 9 minutes, then one
# table: bench, exit status, wall seconds, its headline line. Each bench's own table follows.
#
#   COMFYUI_DIR=~/ComfyUI scripts/bench/gpu.sh            # CUDA, real sizes
#   COMFYUI_DIR=~/ComfyUI scripts/bench/gpu.sh --smoke    # CPU smoke sizes (checks every bench runs)
#
# Phases (GPU memory: the small benches together, the two big ones alone):
#   A  musetalk (fp16, batch 8), music (ACE-Step XL, 30 s), stages (presenter image, voice,
#      lip sync, upscale, encode): in parallel, 150 s at most
#   B  idle_clip (Wan2.2-TI2V-5B, 1280x704, 1 s clip, 4 steps): 150 s at most
#   C  cinema (S2V, HuMo, InfiniteTalk's base; 480p and 720p; fp8): 210 s at most
# A bench cut off by its limit shows rc 124 and whatever it printed.
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=$(mktemp -d "${TMPDIR:-/tmp}/podium-gpu-bench.XXXXXX")
: "${COMFYUI_DIR:?set COMFYUI_DIR to a ComfyUI source tree (cinema bench)}"

plan() {  # the five benches' arguments, then their limits in seconds, in the order of BENCHES
  local limits=($6) i
  CMD=([musetalk]="$PY scripts/bench/musetalk.py $1" [music]="$PY scripts/bench/music.py $2"
       [stages]="$PY scripts/bench/stages.py $3" [idle_clip]="$PY scripts/bench/idle_clip.py $4"
       [cinema]="$PY scripts/bench/cinema.py $5")
  for i in "${!BENCHES[@]}"; do LIMIT[${BENCHES[$i]}]=${limits[$i]}; done
}

BENCHES=(musetalk music stages idle_clip cinema)
declare -A CMD LIMIT
if [ "$SMOKE" = 1 ]; then
  plan "--device cpu --frames 4 --batch 2 --size 128" "--device cpu" \
       "--device cpu --size 128 --seconds 2 --nfe 2 --steps 1 --upscale-frames 2" "--tiny" "--smoke" \
       "900 900 900 900 900"
  PHASES=("${BENCHES[@]}")  # one at a time on a CPU
else
  plan "--frames 250 --batch 8" "--seconds 30" "--seconds 10" "--sizes 1280x704 --seconds 1 --steps 4" \
       "--sizes 832x480,1280x720 --measure-steps 1" "150 150 150 150 210"
  PHASES=("musetalk music stages" "idle_clip" "cinema")
fi

run_one() {  # name: runs it under its limit, records rc and wall seconds
  local name=$1 start end
  start=$(date +%s)
  timeout --kill-after=10 "${LIMIT[$name]}" bash -c "${CMD[$name]}" >"$OUT/$name.log" 2>&1
  echo $? >"$OUT/$name.rc"
  end=$(date +%s)
  echo $((end - start)) >"$OUT/$name.wall"
}

ALL=()
for phase in "${PHASES[@]}"; do
  pids=()
  for name in $phase; do
    ALL+=("$name")
    run_one "$name" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
done

printf '\n%-10s %-4s %-7s %s\n' bench rc wall_s headline
for name in "${ALL[@]}"; do
  headline=$(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | cut -c1-120)
  printf '%-10s %-4s %-7s %s\n' "$name" "$(cat "$OUT/$name.rc")" "$(cat "$OUT/$name.wall")" "$headline"
done
for name in "${ALL[@]}"; do
  printf '\n===== %s (rc %s) =====\n' "$name" "$(cat "$OUT/$name.rc")"
  tail -n 25 "$OUT/$name.log"
done
echo "(full logs: $OUT)"
