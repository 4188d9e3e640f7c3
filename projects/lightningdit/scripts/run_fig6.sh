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
PANEL=$1; GPUS=$2; DATA=$3; REF=$4; shift 4
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
case $PANEL in
  a) DIT_CFG=projects/lightningdit/configs/lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py; MIN=60000 ;;
  b) DIT_CFG=projects/lightningdit/configs/lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py; MIN=40000 ;;
  c) DIT_CFG=projects/lightningdit/configs/lightningdit-xl1_transvae-l-f16d32_32xb32-100k_in1k.py; MIN=40000 ;;
  *) echo "PANEL must be a, b or c"; exit 2 ;;
esac
JSONS=()
for spec in "$@"; do
  NAME=${spec%%=*}; REST=${spec#*=}; VAE_CFG=${REST%%:*}; VAE_CKPT=none
  [[ "$REST" == *:* ]] && VAE_CKPT=${REST#*:}
  OUT=work_dirs/fig6${PANEL}/$NAME
  mkdir -p "$OUT"
  # latents of the training set: one process per GPU, shard i on rank i % GPUS
  for ((r = 0; r < GPUS; r++)); do
    CUDA_VISIBLE_DEVICES=$r "$PY" tools/extract_latents.py "$VAE_CFG" "$VAE_CKPT" --out "$OUT/latents" \
      --data-root "$DATA" --split train --flip --resolution 256 --rank $r --world-size "$GPUS" &
  done
  wait
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
