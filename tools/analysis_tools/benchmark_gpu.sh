#!/usr/bin/env bash
# One-shot GPU benchmark (prepared for a CUDA machine; about 5-8 minutes on one H100/H200-class GPU):
# the bf16 table of TransVAE-T/B/L f16d32 and L f8d16 vs SD-VAE at 256-2048² (batch 1 and 8), fp32 rows at 256²
# for the ratio to the CPU run, tiled decode memory at 4096², and the micro training step.
# Usage: bash tools/analysis_tools/benchmark_gpu.sh [OUT_DIR]   (default work_dirs/benchmark/gpu)
# Needs: the repo's venv (.venv/bin/python, or $PYTHON; torch with CUDA), optional `pip install diffusers` for the SD-VAE rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-work_dirs/benchmark/gpu}
# $PYTHON, else the repository's .venv python when there is one, else python3 on PATH
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
PY=${PYTHON:-python3}
$PY -c "import sys, torch; torch.cuda.is_available() or sys.exit('error: no CUDA device (torch ' + torch.__version__
    + '); this benchmark needs a GPU, see tools/analysis_tools/benchmark.py for the CPU table')
print(torch.cuda.get_device_name())"
mkdir -p "$OUT"  # only once a GPU is there: a refused run leaves nothing behind
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true

M=configs/_base_/models
# 1) bf16 table: all sizes, SD-VAE reference, peak memory via torch.cuda.max_memory_allocated (fresh process each).
timeout 1500 $PY tools/analysis_tools/benchmark.py $M/transvae-t_f16d32.py $M/transvae-b_f16d32.py \
    $M/transvae-l_f16d32.py $M/transvae-l_f8d16.py \
    --device cuda --amp bf16 --resolutions 256 512 1024 2048 --batch-sizes 1 8 --repeats 10 --warmup 3 \
    --mem-resolutions 1024 2048 --mem-modes decode --tiled-mem-resolutions 4096 --tile 1024 --overlap 128 \
    --train-step --train-batch 16 --train-res 256 --json "$OUT/bf16.json" 2>&1 | tee "$OUT/bf16.log"
# 2) fp32 and the switches at 256² (TransVAE-T): channels-last, compile, sdpa math vs flash / efficient.
timeout 900 $PY tools/analysis_tools/benchmark.py $M/transvae-t_f16d32.py --device cuda \
    --resolutions 256 --batch-sizes 8 --repeats 10 --warmup 3 --mem-resolutions 256 --train-step \
    --switches --switch-list channels_last bf16 sdpa_math compile --json "$OUT/fp32_switches.json" \
    2>&1 | tee "$OUT/fp32_switches.log"
echo "results in $OUT"
