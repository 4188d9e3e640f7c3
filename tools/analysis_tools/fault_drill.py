"""Fault drill: inject real faults into real training / evaluation runs and count what survives.

``PYTHONPATH=. python tools/analysis_tools/fault_drill.py [--out DIR] [--quick] [--only NAME ...] [--attempts N]
[--seed S]``; ``--load 10000 [1000]``: the tools/test.py load test (not in CI). Run from the repository root: the drill
is a project outside the library, ``projects/fault_drill/fault_drill/`` (the drills, their helpers and the
``FaultInjectionHook`` they add to their configs; see :mod:`projects.fault_drill.fault_drill.drills`). It prints a
Markdown table (attempts / survived / lost per fault) and exits 1 if any fault was lost.
"""
import sys

from projects.fault_drill.fault_drill.drills import build_parser, main

if __name__ == '__main__':
    sys.exit(main(build_parser().parse_args()))
