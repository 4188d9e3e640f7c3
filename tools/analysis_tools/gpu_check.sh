#!/usr/bin/env bash
# The first thing to run on a GPU: 8 minutes wall on one H100-class GPU, each step under its own timeout (a failed
# step is recorded and the next one runs): 20 bf16 stage-1 iterations of TransVAE-T f16d32 at 256², 5 GAN-stage
# iterations, 20 of LightningDiT-B/1, the benchmark rows against SD-VAE at 256 / 512 / 1024, 20 of TransVAE-L with
# FSDP on one rank; MFU of each training step and the run planner's predicted vs measured peak memory.
# Report: OUT_DIR/gpu_check.{json,md}. Steps and options: tools/analysis_tools/gpu_check.py -h.
# Usage: bash tools/analysis_tools/gpu_check.sh [--dry-run] [OUT_DIR] [options]
#   --dry-run: the same steps on the CPU at tiny sizes (what CI runs, tests/test_tools/test_gpu_check.py).
# Without CUDA and without --dry-run: one `error:` line, nothing created.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"  # OUT_DIR stays relative to the caller's folder
# $PYTHON, else the repository's .venv python when there is one, else python3 on PATH
if [ -z "${PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; fi
exec "${PYTHON:-python3}" "$ROOT/tools/analysis_tools/gpu_check.py" "$@"
