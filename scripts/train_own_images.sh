#!/usr/bin/env bash
# Train the micro TransVAE on a folder of your own images on the CPU, then evaluate it on the held-out ones:
#   bash scripts/train_own_images.sh DIR [extra tools/train.py arguments, e.g. --max-iters 200]
# DIR is only read, never written. Layouts (SplitImageFolderDataset): DIR/train/ + DIR/val/, or a flat folder (images
# anywhere below DIR) of which 10% are held out for validation by a stable hash of each file's path (at least 2
# images). Config: configs/transvae/transvae-micro_f8d16_1xb16_own-images.py (1250 iterations of 64² crops, about
# 10 minutes on 2 cores; evaluation on 256² centre crops). WORK_DIR (default work_dirs/own_images_<name of DIR>) gets
# the checkpoints, report.md / report.json and reconstruction grids; running again resumes there.
# TIME_BUDGET_S=600 stops training at 600 s (or at the fixed iteration count, whichever comes first).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -lt 1 ] && exit 2 || exit 0
fi
DATA=$1
shift
if [ ! -d "$DATA" ]; then
    echo "error: image folder '$DATA' does not exist (or is not a folder)" >&2
    exit 2
fi
DATA=$(cd "$DATA" && pwd)  # absolute: the script changes directory
cd "$(dirname "$0")/.."
if [ -z "${SKIP_SETUP:-}" ]; then bash scripts/setup_env.sh; fi
PYTHON=${PYTHON:-.venv/bin/python}
CONFIG=configs/transvae/transvae-micro_f8d16_1xb16_own-images.py
WORK_DIR=${WORK_DIR:-work_dirs/own_images_$(basename "$DATA")}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
t0=$(date +%s)
budget=()
if [ -n "${TIME_BUDGET_S:-}" ]; then budget=(--cfg-options "custom_hooks.0.seconds=$TIME_BUDGET_S"); fi
"$PYTHON" tools/train.py "$CONFIG" --data-root "$DATA" --work-dir "$WORK_DIR" --resume auto "${budget[@]}" "$@"
t1=$(date +%s)
ckpt="$(cat "$WORK_DIR/last_checkpoint")"
"$PYTHON" tools/test.py "$CONFIG" "$ckpt" --data-root "$DATA" --work-dir "$WORK_DIR/test" \
    --out "$WORK_DIR/report.json" --report "$WORK_DIR/report.md" --show-dir "$WORK_DIR/test/reconstructions"
t2=$(date +%s)
echo
cat "$WORK_DIR/report.md"
echo
echo "train: $((t1 - t0)) s, evaluation: $((t2 - t1)) s"
echo "report: $WORK_DIR/report.md (and report.json); grids: $WORK_DIR/vis/ and $WORK_DIR/test/reconstructions/"
