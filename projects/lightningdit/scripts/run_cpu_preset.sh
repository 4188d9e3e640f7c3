#!/usr/bin/env bash
# The CPU preset end to end (bundled photos): VAE checkpoint -> latents -> micro DiT (sample grids every 100
# iterations) -> FID report and FID-vs-step curve. All outputs under work_dirs/lightningdit_cpu/.
#
# Usage: bash projects/lightningdit/scripts/run_cpu_preset.sh [VAE_CHECKPOINT]
#   VAE_CHECKPOINT: a checkpoint of configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py (the main job);
#   default: the main job's last checkpoint (work_dirs/demo), else 250 iterations of it are trained here first.
# Env: PYTHON (default .venv/bin/python), FID_SAMPLES (200), FID_STEPS (50).
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=work_dirs/lightningdit_cpu
VAE_CFG=configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py
DIT_CFG=projects/lightningdit/configs/lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py
N=${FID_SAMPLES:-200}
STEPS=${FID_STEPS:-50}
mkdir -p "$OUT"

# 1. the VAE of the latents
VAE_CKPT=${1:-}
if [ -z "$VAE_CKPT" ] && [ -f work_dirs/demo/last_checkpoint ]; then VAE_CKPT=$(cat work_dirs/demo/last_checkpoint); fi
if [ -z "$VAE_CKPT" ]; then
  echo "== no VAE checkpoint given and no main-job run found: training the micro TransVAE for 250 iterations"
  nice -n 10 "$PY" tools/train.py "$VAE_CFG" --max-iters 250 --work-dir "$OUT/vae_train" --cfg-options 'custom_hooks=[]'
  VAE_CKPT=$OUT/vae_train/iter_250.pth
fi
cp "$VAE_CKPT" "$OUT/vae.pth"  # the preset's LatentSampleGridHook decodes with this file

# 2. latents: deterministic 128² centre crops of the training photos + stored h-flips (labels = source)
"$PY" tools/extract_latents.py "$VAE_CFG" "$OUT/vae.pth" --out "$OUT/latents" --split train --flip \
  --resolution 128 --shard-size 64 --batch-size 16 --num-workers 0

# 3. the micro DiT through the core trainer (fixed 600 iterations; grids in $OUT/dit/vis/)
nice -n 10 "$PY" tools/train.py "$DIT_CFG" --preset cpu --work-dir "$OUT/dit"

# 4. FID of the last checkpoint against the training photos (128² centre crops; statistics cached in $OUT)
FID_ARGS=(--preset cpu --vae-config "$VAE_CFG" --vae-checkpoint "$OUT/vae.pth" --latent-dir "$OUT/latents"
          --ref data/sample_photos/train --ref-size 128 --ref-cache-dir "$OUT" --num-samples "$N"
          --num-steps "$STEPS" --classes-from-latents --batch-size 50)
LAST=$(ls "$OUT"/dit/iter_*.pth | sort -t_ -k2 -n | tail -1)
nice -n 10 "$PY" projects/lightningdit/tools/eval_fid.py "$DIT_CFG" "$LAST" "${FID_ARGS[@]}" \
  --report "$OUT/fid_report.md" --out "$OUT/fid_report.json" --grid "$OUT/fid_samples.png"

# 5. FID of every checkpoint, and the curve
nice -n 10 "$PY" projects/lightningdit/tools/fid_vs_step.py eval "$DIT_CFG" "$OUT/dit" --label "micro DiT, CPU preset" \
  --json "$OUT/fid_vs_step.json" "${FID_ARGS[@]}"
"$PY" projects/lightningdit/tools/fid_vs_step.py plot "$OUT/fid_vs_step.json" --png "$OUT/fid_vs_step.png" \
  --title "micro DiT on the bundled photos (FID-$N, not comparable with Fig. 6)"
echo "== done: $OUT/fid_report.md, $OUT/fid_vs_step.png, $OUT/dit/vis/"
