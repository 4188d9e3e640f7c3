#!/usr/bin/env bash
# The CPU preset end to end on the bundled photos: the main job's VAE -> latents -> micro DiT (sample grids during
# training) -> FID report through the core tools/test.py; optionally the FID-vs-step curve. Outputs under
# work_dirs/lightningdit_cpu/; the wall time of each step is printed and kept in work_dirs/lightningdit_cpu/timings.txt.
#
# Usage: bash projects/lightningdit/scripts/run_cpu_preset.sh [VAE_CHECKPOINT]
#   VAE_CHECKPOINT: a checkpoint of configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py (the main job,
#   `bash scripts/run_demo.sh`); default: work_dirs/demo/last_checkpoint. Without one, the main job's training is run
#   here first (1250 fixed iterations into work_dirs/demo: about 10 more minutes on 2 cores).
# Env: PYTHON (.venv/bin/python), OMP_NUM_THREADS (default 1), FID_CURVE=1 (also the FID of every
#   checkpoint and its plot: 6 checkpoints, about 13 more minutes on the shared 2-core machine), extra tools/test.py options in FID_OPTIONS.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
# one thread by default: with 2 on the 2-core machine shared with other jobs, the micro DiT's iterations took ~2 s of
# wall time each instead of 0.2 s
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=work_dirs/lightningdit_cpu
VAE_CFG=configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py
DIT_CFG=projects/lightningdit/configs/lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py
mkdir -p "$OUT"
: > "$OUT/timings.txt"
t_start=$(date +%s)
step() {  # step NAME COMMAND...: run it and record its wall time
  local name=$1 t0 t1; shift
  echo "== $name: $*"
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  echo "$name: $((t1 - t0)) s" | tee -a "$OUT/timings.txt"
}

# 1. the VAE of the latents: the main job's checkpoint
VAE_CKPT=${1:-}
if [ -z "$VAE_CKPT" ] && [ -f work_dirs/demo/last_checkpoint ]; then VAE_CKPT=$(cat work_dirs/demo/last_checkpoint); fi
if [ -z "$VAE_CKPT" ]; then
  echo "== no VAE checkpoint given and no main-job run in work_dirs/demo: training the main job's VAE first" \
       "(1250 fixed iterations, about 10 more minutes on 2 cores)"
  step vae_training "$PY" tools/train.py "$VAE_CFG" --work-dir work_dirs/demo --resume auto
  VAE_CKPT=$(cat work_dirs/demo/last_checkpoint)
fi
cp "$VAE_CKPT" "$OUT/vae.pth"  # the preset's sample-grid hook and FID metric decode with this file

# 2. latents: deterministic 64² centre crops of the 165 training photos + stored h-flips (labels = the 21 sources)
rm -rf "$OUT/latents"
step latents "$PY" tools/extract_latents.py "$VAE_CFG" "$OUT/vae.pth" --out "$OUT/latents" --split train --flip \
  --resolution 64 --shard-size 64 --batch-size 16 --num-workers 0

# 3. the micro DiT through the core trainer (fixed iterations; sample grids in $OUT/dit/vis/)
rm -rf "$OUT/dit"
step dit_training "$PY" tools/train.py "$DIT_CFG" --preset cpu --work-dir "$OUT/dit"

# 4. FID of the last checkpoint through the core tools/test.py (the preset's test set: N = 200 class-balanced samples,
#    50 Euler steps, against the 64² centre crops of the training photos; statistics cached in $OUT)
LAST=$(cat "$OUT/dit/last_checkpoint")
# shellcheck disable=SC2086
step fid_report "$PY" tools/test.py "$DIT_CFG" "$LAST" --preset cpu --work-dir "$OUT/fid" \
  --report "$OUT/fid_report.md" --out "$OUT/fid_report.json" ${FID_OPTIONS:-}

# 5. (FID_CURVE=1) FID of every checkpoint through the same tools/test.py, and the curve
if [ "${FID_CURVE:-0}" = 1 ]; then
  # shellcheck disable=SC2086
  step fid_curve "$PY" projects/lightningdit/tools/fid_vs_step.py eval "$DIT_CFG" "$OUT/dit" \
    --label "micro DiT, CPU preset" --json "$OUT/fid_vs_step.json" -- --preset cpu ${FID_OPTIONS:-}
  "$PY" projects/lightningdit/tools/fid_vs_step.py plot "$OUT/fid_vs_step.json" --png "$OUT/fid_vs_step.png" \
    --title "micro DiT on the bundled photos (small N: not comparable with Fig. 6)"
fi
echo "total: $(( $(date +%s) - t_start )) s" | tee -a "$OUT/timings.txt"
echo
cat "$OUT/fid_report.md"
echo "== done: $OUT/fid_report.md, $OUT/fid_samples.png, $OUT/dit/vis/ (grids), $OUT/timings.txt"
