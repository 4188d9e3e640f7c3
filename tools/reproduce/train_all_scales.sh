#!/usr/bin/env bash
# Fig. 5: train every configs/experiments/scaling/*.py (CNN / ViT / Swin / TransVAE x Tiny..Giant) with the study
# driver (projects/paper_studies): a run with ROOT/<name>/seed_S/done.json is skipped, an interrupted one resumes.
#
# Usage: tools/reproduce/train_all_scales.sh [driver flags...]
#   e.g. tools/reproduce/train_all_scales.sh --max-iters 100 --val-interval 50          # CPU micro run (default preset cpu)
#        tools/reproduce/train_all_scales.sh --seeds 0 1                                 # two seeds per model
#        PRESET=none tools/reproduce/train_all_scales.sh --gpus 8                        # paper scale, dist_train.sh
#        FILTER='transvae_*' tools/reproduce/train_all_scales.sh                          # a subset (shell glob)
# Env: ROOT (work_dirs/reproduce/scaling), PRESET (cpu; 'none' = paper scale), FILTER (*), PYTHON (the repo .venv).
# Then: PYTHONPATH=. .venv/bin/python tools/reproduce/plot_scaling_curves.py --root $ROOT
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROOT=${ROOT:-work_dirs/reproduce/scaling}
PRESET=${PRESET:-cpu}
FILTER=${FILTER:-*}
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; fi
PYTHON=${PYTHON:-python}

configs=( "$REPO"/configs/experiments/scaling/$FILTER.py )
n=${#configs[@]}
i=0
failed=()
for cfg in "${configs[@]}"; do
  [ -f "$cfg" ] || continue
  i=$((i + 1))
  name=$(basename "$cfg" .py)
  echo "[$i/$n] $name: $(date +%T)"
  if ! (cd "$REPO" && "$PYTHON" -m projects.paper_studies.paper_studies.cli "$cfg" --label "$name" --root "$ROOT" \
        --preset "$PRESET" --val-interval 0 "$@"); then
    echo "[$i/$n] $name: FAILED (see $ROOT/$name/seed_*/driver.log); continuing" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "all $n scaling configs done under $ROOT"
