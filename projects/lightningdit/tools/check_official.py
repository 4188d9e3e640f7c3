"""This project's LightningDiT against the official hustvl/LightningDiT code: one max |diff| per check.

``python -m projects.lightningdit.tools.check_official --official-repo DIR [--grid-points 250] [--seed 0]``

``DIR`` is a checkout of https://github.com/hustvl/LightningDiT (its ``models/`` and ``transport/`` are imported
from there; nothing of it is in this repository). A small official LightningDiT with random weights is saved as an
official checkpoint, converted with the converter and loaded into our model; then the forward pass, the transport's
loss terms and Euler / Heun samples from the same noise (with and without the reference's 3-channel CFG) are
compared. Modules the reference imports that this environment lacks (einops, fairscale, torchdiffeq) are replaced by
minimal stand-ins, named in the output; put the real packages on ``PYTHONPATH`` to use them. Exit status 1 when a
check exceeds 1e-5 or a control (a change that must make a difference) stays below 1e-4. The library side is
:mod:`projects.lightningdit.lightningdit.official_reference`.
"""
from __future__ import annotations

import argparse
import sys
import time

from transvae.engine.config_validation import config_errors
from transvae.utils.cli_types import positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='max |official - ours| of the LightningDiT forward, transport, samples')
    p.add_argument('--official-repo', required=True, help='a hustvl/LightningDiT checkout folder')
    p.add_argument('--grid-points', type=positive_int, default=250,
                   help="the reference's num_sampling_steps of the samples (default 250, its protocol)")
    p.add_argument('--seed', type=int, default=0, help='weights, inputs and noise')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with config_errors(exit_on_error=True):
        import projects.lightningdit.lightningdit  # noqa: F401  (registers the DiT)
        from projects.lightningdit.lightningdit.official_reference import CONTROLS, TOLERANCE, run_checks
        from transvae.apis import register_all_modules
        register_all_modules()
        start = time.perf_counter()
        diffs, stand_ins = run_checks(args.official_repo, seed=args.seed, grid_points=args.grid_points)
    failed = []
    print('| check | max abs diff |\n| --- | --- |')
    for name, d in diffs.items():
        ok = d > 10 * TOLERANCE if name in CONTROLS else d <= TOLERANCE
        failed += [] if ok else [name]
        print(f'| {name} | {d:.2e}{"" if ok else " FAILED"} |')
    print(f"stand-ins for absent modules: {', '.join(stand_ins) or 'none'}; {time.perf_counter() - start:.1f} s")
    if failed:
        print(f'error: {len(failed)} check(s) failed: {"; ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
