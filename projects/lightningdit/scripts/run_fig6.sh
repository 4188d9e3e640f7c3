#!/usr/bin/env bash
# Fig. 6 for a list of VAEs: extract ImageNet latents -> train the panel's DiT (DDP) -> FID-10K of every checkpoint
# -> one FID-vs-step plot next to the paper's series.
#
# Usage: bash projects/lightningdit/scripts/run_fig6.sh PANEL GPUS IMAGENET_ROOT REF_NPZ NAME=VAE_CONFIG[:VAE_CKPT] ...
#   PANEL: a (B/2, f8d16 VAEs), b (B/1, f16d32), c (XL/1, f16d32)
#   REF_NPZ: the ADM reference batch VIRTUAL_imagenet256_labeled.npz (mu / sigma), or a folder of real images
#   NAME=VAE_CONFIG[:VAE_CKPT]: e.g. transvae=configs/transvae/transvae-l_f8d16_8xb32-100e_in1k.py:ckpt.pth
#     flux=configs/benchmarks/flux-vae_f8d16.py  sd35=configs/benchmarks/sd35-vae_f8d16.py  (diffusers adapters load
#     their local weights themselves: no checkpoint)
# Env: PYTHON, FID_SAMPLES (10000), PORT. Global batch = GPUS x 32 (1024 as in the paper needs 32 GPUs, or set
# --batch-size through EXTRA_TRAIN_ARGS).
set -euo pipefail
cd "$(dirname "$0")/../../.."
usage() { echo "usage: bash projects/lightningdit/scripts/run_fig6.sh PANEL GPUS IMAGENET_ROOT REF_NPZ NAME=VAE_CONFIG[:VAE_CKPT] ..." >&2; }
if [ $# -lt 5 ]; then usage; echo "error: run_fig6.sh needs PANEL GPUS IMAGENET_ROOT REF_NPZ and at least one NAME=VAE_CONFIG" >&2; exit 2; fi
PANEL=$1; GPUS=$2; DATA=$3; REF=$4; shift 4
# $PYTHON, else the repository's .venv python when there is one, else python3 on PATH
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
PY=${PYTHON:-python3}
# check every input before hours of extraction and training: one line naming what is missing
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "error: run_fig6.sh: GPUS must be a positive integer, got '$GPUS'" >&2; exit 2; }
[ -d "$DATA/train" ] || { echo "error: run_fig6.sh: ImageNet training folder not found: $DATA/train" >&2; exit 2; }
[ -e "$REF" ] || { echo "error: run_fig6.sh: FID reference not found: $REF (the ADM VIRTUAL_imagenet256_labeled.npz or a folder of real images)" >&2; exit 2; }
for spec in "$@"; do
  [[ "$spec" == *=* ]] || { echo "error: run_fig6.sh: expected NAME=VAE_CONFIG[:VAE_CKPT], got '$spec'" >&2; exit 2; }
  REST=${spec#*=}; VCFG=${REST%%:*}
  [ -f "$VCFG" ] || { echo "error: run_fig6.sh: VAE config not found: $VCFG (in '$spec')" >&2; exit 2; }
  if [[ "$REST" == *:* ]] && [ ! -f "${REST#*:}" ]; then
    echo "error: run_fig6.sh: VAE checkpoint not found: ${REST#*:} (in '$spec')" >&2; exit 2
  fi
done
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
case $PANEL in
  a) DIT_CFG=projects/lightningdit/configs/lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py; MIN=60000 ;;
  b) DIT_CFG=projects/lightningdit/configs/lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py; MIN=40000 ;;
  c) DIT_CFG=projects/lightningdit/configs/lightningdit-xl1_transvae-l-f16d32_32xb32-100k_in1k.py; MIN=40000 ;;
  *) echo "error: run_fig6.sh: PANEL must be a, b or c, got '$PANEL'" >&2; exit 2 ;;
esac
JSONS=()
for spec in "$@"; do
  NAME=${spec%%=*}; REST=${spec#*=}; VAE_CFG=${REST%%:*}; VAE_CKPT=none
  [[ "$REST" == *:* ]] && VAE_CKPT=${REST#*:}
  OUT=work_dirs/fig6${PANEL}/$NAME
  mkdir -p "$OUT"
  # latents of the training set: one process per GPU, shard i on rank i % GPUS; every child's exit status is checked
  # (a bare `wait` returns 0 whatever the children did)
  PIDS=()
  for ((r = 0; r < GPUS; r++)); do
    CUDA_VISIBLE_DEVICES=$r "$PY" tools/extract_latents.py "$VAE_CFG" "$VAE_CKPT" --out "$OUT/latents" \
      --data-root "$DATA" --split train --flip --resolution 256 --rank $r --world-size "$GPUS" &
    PIDS+=($!)
  done
  FAILED=0
  for ((r = 0; r < GPUS; r++)); do
    if ! wait "${PIDS[$r]}"; then echo "error: run_fig6.sh: latent extraction of $NAME, rank $r failed" >&2; FAILED=1; fi
  done
  [ "$FAILED" = 0 ] || exit 1
  "$PY" tools/extract_latents.py "$VAE_CFG" "$VAE_CKPT" --out "$OUT/latents" --data-root "$DATA" --split train \
    --flip --resolution 256 --rank 0 --world-size 1  # all shards exist: only (re)writes the statistics
  bash tools/dist_train.sh "$DIT_CFG" "$GPUS" --work-dir "$OUT/dit" \
    --cfg-options train_dataloader.dataset.data_root="$OUT/latents" ${EXTRA_TRAIN_ARGS:-}
  # FID-10K of every checkpoint through the core tools/dist_test.sh (the config's generation-FID test set and metric)
  "$PY" projects/lightningdit/tools/fid_vs_step.py eval "$DIT_CFG" "$OUT/dit" --label "$NAME" \
    --json "$OUT/fid_vs_step.json" --gpus "$GPUS" --min-step "$MIN" -- --cfg-options \
    test_evaluator.vae_config="$VAE_CFG" test_evaluator.vae_checkpoint="$VAE_CKPT" \
    test_evaluator.latent_dir="$OUT/latents" test_evaluator.reference="$REF" \
    test_dataloader.dataset.num_samples="${FID_SAMPLES:-10000}"
  JSONS+=("$OUT/fid_vs_step.json")
done
"$PY" projects/lightningdit/tools/fid_vs_step.py plot "${JSONS[@]}" --panel "$PANEL" --png "work_dirs/fig6${PANEL}/fid_vs_step.png"
echo "== work_dirs/fig6${PANEL}/fid_vs_step.png"
