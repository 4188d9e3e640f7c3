"""Entry point of one tiling-quality run: ``python -m transvae.benchmark.tiling_worker SPEC_JSON``.

Prints :func:`transvae.benchmark.tiling_quality.run_worker`'s result as one line ``worker-result: JSON`` (the model
build may print its own lines before it).
"""
import json
import sys

from transvae.benchmark.tiling_quality import WORKER_RESULT, run_worker

if __name__ == '__main__':
    print(WORKER_RESULT + json.dumps(run_worker(json.loads(sys.argv[1]))), flush=True)
