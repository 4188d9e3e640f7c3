"""Entry point of one peak-memory measurement: ``python -m transvae.benchmark.memory_worker SPEC_JSON``.

Prints :func:`transvae.benchmark.memory.run_worker`'s result as one JSON line (kept out of the package's
``__init__`` so the measured process imports only what the measurement needs).
"""
import json
import sys

from transvae.benchmark.memory import run_worker

if __name__ == '__main__':
    print(json.dumps(run_worker(json.loads(sys.argv[1]))))
