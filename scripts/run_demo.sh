#!/usr/bin/env bash
# README command 1: set up the environment, train the micro TransVAE on the bundled photos for a fixed number of
# iterations (about 10 minutes on 2 CPU cores; the same result on every machine up to float rounding), then evaluate
# it on the held-out photos and write a report (PSNR / SSIM / LPIPS) and reconstruction grids.
# Options: TIME_BUDGET_S=600 bash scripts/run_demo.sh  -- stop at 600 s of training or at the fixed iteration count,
# whichever comes first (the result then depends on the machine); extra arguments go to tools/train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
CONFIG=configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py
WORK_DIR=${WORK_DIR:-work_dirs/demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
t0=$(date +%s)
budget=()
if [ -n "${TIME_BUDGET_S:-}" ]; then budget=(--cfg-options "custom_hooks.0.seconds=$TIME_BUDGET_S"); fi
.venv/bin/python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --resume auto "${budget[@]}" "$@"
t1=$(date +%s)
ckpt="$(cat "$WORK_DIR/last_checkpoint")"
.venv/bin/python tools/test.py "$CONFIG" "$ckpt" --work-dir "$WORK_DIR/test" \
    --out "$WORK_DIR/report.json" --report "$WORK_DIR/report.md" --show-dir "$WORK_DIR/test/reconstructions"
t2=$(date +%s)
echo
cat "$WORK_DIR/report.md"
echo
echo "train: $((t1 - t0)) s, evaluation: $((t2 - t1)) s; grids: $WORK_DIR/vis/ and $WORK_DIR/test/reconstructions/"
