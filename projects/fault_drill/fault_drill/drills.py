"""The fault drill: inject real faults into real training / evaluation runs and count what survives.

Every drill runs the real stack (TransVAERunner, AtomicCheckpointHook, SafeOptimWrapper, ImageFolderDataset,
tools/train.py, tools/test.py, tools/extract_latents.py, transvae.apis) on a tiny TransVAE (widths 8-16-16, 32² crops
of generated images); :func:`run_drills` returns one row per fault (attempts / survived / lost, and what "survived"
was checked against) and :func:`table` prints them as Markdown. Faults come from :class:`.hook.FaultInjectionHook`
(SIGKILL, a killed or failing checkpoint write, NaN / Inf) or from the inputs themselves (corrupt files, malformed
configs, odd images). Training runs are forked children (a real process killed with SIGKILL; no interpreter start-up
per run); 2-rank runs use torchrun with gloo. :data:`QUICK` is the CI subset
(``tests/reliability/test_fault_drill.py``). The command line is ``tools/analysis_tools/fault_drill.py`` (:func:`main`).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import random
import shutil
import tempfile
import time
from typing import Callable

from .cases import (drill_configs, drill_corrupt, drill_disk_full, drill_inputs, drill_kill_in_write, drill_nan,
                    drill_rank_killed, drill_sigkill_resume, drill_sigkill_resume_fsdp, load_test)
from .cli_inputs import drill_cli_values, drill_output_over_input, drill_resume_changed_config
from .dit import drill_dit
from .docs import drill_documented_commands, drill_launch_without_inputs, drill_vae_without_dinov2
from .inputs import drill_api_contract, drill_image_bombs
from .lib import warm_up
from .remote import drill_malformed_checkpoints, drill_remote_checkpoints
from .user_data import drill_user_data_root
from .workdir import drill_shared_work_dir

# ---------------------------------------------------------------------------------------------------------------------
# the drill
# ---------------------------------------------------------------------------------------------------------------------
DRILLS: dict[str, Callable] = {
    'sigkill_resume': lambda ctx: drill_sigkill_resume(ctx, workers=0),
    'sigkill_resume_workers': lambda ctx: drill_sigkill_resume(ctx, workers=2),
    'sigkill_resume_fsdp': drill_sigkill_resume_fsdp,
    'kill_in_checkpoint_write': drill_kill_in_write,
    'disk_full': drill_disk_full,
    'corrupt_files': drill_corrupt,
    'nan_inf': drill_nan,
    'malformed_configs': drill_configs,
    'odd_image_inputs': drill_inputs,
    'rank_killed': drill_rank_killed,
    # issue 20 (reliability round 3): each also has its hostile case as a test in tests/reliability/
    'user_data_root': drill_user_data_root,
    'remote_checkpoints': drill_remote_checkpoints,
    'malformed_checkpoints': drill_malformed_checkpoints,
    'shared_work_dir': drill_shared_work_dir,
    'output_over_input': drill_output_over_input,
    'cli_values': drill_cli_values,
    'resume_changed_config': drill_resume_changed_config,
    'dit': drill_dit,
    'api_contract': drill_api_contract,
    'image_bombs': drill_image_bombs,
    'documented_commands': drill_documented_commands,
    'launch_without_inputs': drill_launch_without_inputs,
    'vae_without_dinov2': drill_vae_without_dinov2,
}
QUICK = ('sigkill_resume', 'kill_in_checkpoint_write', 'disk_full', 'corrupt_files', 'nan_inf', 'malformed_configs',
         'odd_image_inputs')


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ['| fault | attempts | survived | lost | checked |', '| --- | --- | --- | --- | --- |']
    for r in rows:
        lines.append(f"| {r['fault']} | {r['attempts']} | {r['survived']} | {r['lost']} | {r['check']} |")
    return '\n'.join(lines)


def run_drills(names: list[str], out: str, quick: bool, attempts: int, seed: int) -> list[dict]:
    """Run the drills ``names`` (keys of :data:`DRILLS`) under ``out``; a drill that crashes counts as lost."""
    os.makedirs(out, exist_ok=True)
    warm_up()
    ctx = dict(out=out, quick=quick, attempts=attempts, rng=random.Random(seed))
    rows = []
    for name in names:
        t0 = time.time()
        try:
            got = DRILLS[name](ctx)
        except Exception as e:  # noqa: BLE001 - a drill that crashes counts as lost, with the reason
            got = [dict(fault=name, attempts=1, survived=0, lost=1, check=f'drill crashed: {type(e).__name__}: {e}')]
        for r in (got if isinstance(got, list) else [got]):
            r['seconds'] = round(time.time() - t0, 1)
            rows.append(r)
            print(f"[{name}] {r['fault']}: {r['survived']}/{r['attempts']} survived, {r['lost']} lost "
                  f"({r['seconds']} s) -- {r['check']}", flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The options of ``tools/analysis_tools/fault_drill.py``."""
    p = argparse.ArgumentParser(description='Fault drill: inject real faults into real runs, count what survives')
    p.add_argument('--out', default=None, help='work directory (default: a temporary one)')
    p.add_argument('--quick', action='store_true', help='the CI subset, one attempt each')
    p.add_argument('--only', nargs='+', choices=sorted(DRILLS), help='run only these drills')
    p.add_argument('--attempts', type=int, default=3, help='attempts of the SIGKILL drills')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--load', type=int, nargs='+', metavar='N', help='run the tools/test.py load test at N images')
    p.add_argument('--json', help='write the rows as JSON here')
    return p


def main(args: argparse.Namespace) -> int:
    """Run the drills ``args`` (:func:`build_parser`) name, print the table; 0 if every fault was survived."""
    out = args.out or tempfile.mkdtemp(prefix='fault_drill_')
    if args.load:
        rows = [load_test(n, osp.join(out, f'load_{n}')) for n in args.load]
        print(json.dumps(rows, indent=1))
        return 0
    names = args.only or (list(QUICK) if args.quick else list(DRILLS))
    rows = run_drills(names, out, args.quick, 1 if args.quick else args.attempts, args.seed)
    print(table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if all(r['lost'] == 0 and r['survived'] == r['attempts'] for r in rows) else 1
