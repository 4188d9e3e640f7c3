"""Why does a study variant score as it does? Colour vs luminance error, latent SNR, loss shares, parameter counts.

Per checkpoint of a study (and once per variant, parameter counts)::

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python tools/analysis_tools/study_diagnostics.py \
        work_dirs/reproduce/fig1 --seeds 0 1 --steps 250 500 750 1000 1250 --out work_dirs/analysis/fig1.md

The computation and what each column means: ``projects/paper_studies/paper_studies/diagnostics.py`` (run from the
repository root with ``PYTHONPATH=.``: the project is imported as ``projects.paper_studies``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from projects.paper_studies.paper_studies.diagnostics import diagnose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('root', help='a study root, e.g. work_dirs/reproduce/fig1')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    ap.add_argument('--steps', type=int, nargs='+', default=[250, 500, 750, 1000, 1250])
    ap.add_argument('--crop', type=int, default=128)
    ap.add_argument('--only', nargs='+', default=None, help='variant folders to diagnose (default: all)')
    ap.add_argument('--out', default=None, help='write the Markdown report here too')
    args = ap.parse_args()
    if not osp.isdir(args.root):
        ap.error(f'not a directory: {args.root}')
    report = diagnose(args.root, args.seeds, args.steps, args.crop, args.only)
    print(report)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(report)


if __name__ == '__main__':
    main()
