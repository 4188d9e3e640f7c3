#!/usr/bin/env bash
# Fig. 5: train every model of a scaling family with the study driver (projects/paper_studies): a run with
# ROOT/<name>/seed_S/done.json is skipped (its per_photo.json is written from its final checkpoint when missing),
# an interrupted one resumes.
#
# Families (sizes always distinct: a preset never trains two sizes as the same model):
#   --preset cpu (default): configs/experiments/scaling_cpu/*.py, TransVAE-micro and CNN-VAE-micro f8d16 at x0.5, x1
#       and x2 of the micro widths on the main job's recipe (1250 iterations of batch 16 at 64², held-out photos at
#       256²). These configs are CPU scale already: they are trained as they are (the driver gets --preset none).
#       ROOT defaults to work_dirs/reproduce/scaling_cpu.
#   --preset none: configs/experiments/scaling/*.py (CNN / ViT / Swin / TransVAE x Tiny..Giant, the paper's scaling
#       recipe; a GPU cluster). ROOT defaults to work_dirs/reproduce/scaling.
#   (Any other preset is refused: `--preset cpu` on the paper-scale configs trained Tiny..Giant as one 1.60M model.)
#
# Usage: tools/reproduce/train_all_scales.sh [--preset cpu|none] [driver flags...]
#   e.g. OMP_NUM_THREADS=1 nice -n 19 tools/reproduce/train_all_scales.sh --seeds 0 --threads 1       # CPU family
#        FILTER=transvae_x2 tools/reproduce/train_all_scales.sh --seeds 1 --threads 1                  # one model
#        tools/reproduce/train_all_scales.sh --preset none --gpus 8                                     # paper scale
# Env: ROOT, FILTER (shell glob of config names, default *), PYTHON (the repo .venv), PRESET (as --preset).
# Then: PYTHONPATH=. .venv/bin/python tools/reproduce/plot_scaling_curves.py --root $ROOT
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PRESET=${PRESET:-cpu}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) [ $# -ge 2 ] || { echo "error: --preset needs a value (cpu or none)" >&2; exit 2; }
              PRESET=$2; shift 2 ;;
    --preset=*) PRESET=${1#--preset=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$PRESET" in
  cpu) family_dir=scaling_cpu; ROOT=${ROOT:-work_dirs/reproduce/scaling_cpu}; driver_preset=none
       val_args=(--val-interval 250) ;;
  none) family_dir=scaling; ROOT=${ROOT:-work_dirs/reproduce/scaling}; driver_preset=none
        val_args=(--val-interval 0) ;;  # the config's own: one epoch
  *) echo "error: --preset must be 'cpu' (the CPU-scale family configs/experiments/scaling_cpu) or 'none' (the" \
          "paper-scale configs/experiments/scaling), got '$PRESET'" >&2; exit 2 ;;
esac
FILTER=${FILTER:-*}
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; fi
PYTHON=${PYTHON:-python}

configs=()
for cfg in "$REPO"/configs/experiments/$family_dir/$FILTER.py; do
  [ -f "$cfg" ] && configs+=("$cfg")
done
n=${#configs[@]}
if [ "$n" -eq 0 ]; then
  echo "error: no config matches configs/experiments/$family_dir/$FILTER.py" >&2
  exit 2
fi
i=0
failed=()
for cfg in "${configs[@]}"; do
  i=$((i + 1))
  name=$(basename "$cfg" .py)
  echo "[$i/$n] $name: $(date +%T)"
  if ! (cd "$REPO" && "$PYTHON" -m projects.paper_studies.paper_studies.cli "$cfg" --label "$name" --root "$ROOT" \
        --preset "$driver_preset" "${val_args[@]}" ${args[@]+"${args[@]}"}); then
    echo "[$i/$n] $name: FAILED (see $ROOT/$name/seed_*/driver.log); continuing" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "all $n $family_dir configs done under $ROOT"
