#!/usr/bin/env bash
# README command 1: set up the environment, train the micro TransVAE on the bundled photos for ~10 CPU minutes,
# then evaluate it on the held-out photos and write a report (PSNR / SSIM / LPIPS) and reconstruction grids.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
CONFIG=configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py
WORK_DIR=${WORK_DIR:-work_dirs/demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
t0=$(date +%s)
.venv/bin/python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --resume auto "$@"
t1=$(date +%s)
ckpt="$(cat "$WORK_DIR/last_checkpoint")"
.venv/bin/python tools/test.py "$CONFIG" "$ckpt" --work-dir "$WORK_DIR/test" \
    --out "$WORK_DIR/report.json" --report "$WORK_DIR/report.md" --show-dir "$WORK_DIR/test/reconstructions"
t2=$(date +%s)
echo
cat "$WORK_DIR/report.md"
echo
echo "train: $((t1 - t0)) s, evaluation: $((t2 - t1)) s; grids: $WORK_DIR/vis/ and $WORK_DIR/test/reconstructions/"
