#!/usr/bin/env bash
# README command 2: set up the environment, then run the test suite (CPU only; GPU tests skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# one pytest-xdist worker per CPU core (TEST_WORKERS=N to choose; 1: no xdist). Work stealing: each worker starts
# on one half of the tests in collection order and takes from the end of the other's queue when it runs dry, so the
# run ends within one test of each other and a module rarely splits (its fixtures are then built twice). Each worker
# runs torch on cores / workers threads (tests/helpers/threads.py), and so do the processes the tests start
# (OMP_NUM_THREADS)
workers=${TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}
if [ "$workers" -gt 1 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  xdist=(-n "$workers" --dist worksteal)
else
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
  xdist=(-p no:xdist)
fi
# no path given: pytest runs its testpaths (pyproject.toml): tests/ and every projects/*/tests/
exec .venv/bin/python -m pytest -q "${xdist[@]}" "$@"
