#!/usr/bin/env bash
# README command 2: set up the environment, then run the test suite (CPU only; GPU tests skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# no path given: pytest runs its testpaths (pyproject.toml): tests/ and every projects/*/tests/
exec .venv/bin/python -m pytest -q "$@"
