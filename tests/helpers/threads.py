"""How many torch CPU threads a test process uses: at most 2, shared out among pytest-xdist's workers.

``scripts/run_tests.sh`` runs the suite in one worker per CPU core (pytest-xdist); each worker then runs its tests on
``cpu_count // workers`` threads (1 on a 2-core machine), so that the workers do not oversubscribe the cores. A plain
``pytest`` run (no xdist) keeps 2 threads.
"""
from __future__ import annotations

import os


def threads_per_test_process(max_threads: int = 2) -> int:
    """Threads for this test process: ``min(max_threads, cores) // xdist workers``, at least 1."""
    workers = max(1, int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')))
    return max(1, min(max_threads, os.cpu_count() or 1) // workers)
