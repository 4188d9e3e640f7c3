"""Drill of issue 20, item 2: a work dir (and an ``extract_latents --out``) is owned by one run.

``drill_shared_work_dir(ctx)`` returns three rows (:mod:`.drills` conventions: ``ctx`` has ``out``, ``quick``,
``attempts``, ``rng``):

* two ``tools/train.py`` runs started together on one ``--work-dir`` (forked at the same instant): exactly one trains,
  the other exits non-zero naming the winner's pid, the directory holds one run's log only, and the winner's final
  checkpoint is bit-identical (weights + AdamW moments) to an undisturbed run's and resumes;
* the owner SIGKILLed at a random iteration: its ``run.lock`` stays behind, the next ``--resume`` takes it over (its
  log names the dead pid) and ends bit-identical to an uninterrupted run, no lock file left;
* two ``tools/extract_latents.py`` runs started together on one ``--out``: exactly one extracts, the other exits with
  ``error:`` naming it, every latent written once (an extraction is short: if the first one had finished before the
  second took the lock, the second must find every shard complete and write none; the row says how many overlapped).
"""
from __future__ import annotations

import glob
import json
import multiprocessing as mp
import os
import os.path as osp
import re

from . import lib as L
from .cases import _images, _reference, _row

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


def _together(tool: str, argvs: list[list], logs: list[str], timeout: float = 600) -> list[tuple[int, int]]:
    """Fork one ``tools/<tool>.py`` child per argv at once; ``[(pid, exit code)]`` (-999: hung, killed)."""
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=L._child_tool, args=(tool, list(a), log)) for a, log in zip(argvs, logs)]
    for p in procs:
        p.start()
    out = []
    for p in procs:
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join()
            out.append((p.pid, -999))
        else:
            out.append((p.pid, p.exitcode))
    return out


def _read(path: str) -> str:
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def _winner_and_loser(results: list[tuple[int, int]], logs: list[str]):
    """``(winner pid, loser's log text)`` when exactly one run exited 0 and the other refused naming it."""
    ok = [i for i, (_, rc) in enumerate(results) if rc == 0]
    if len(ok) != 1:
        return None, ''
    w = ok[0]
    loser = 1 - w
    text = _read(logs[loser])
    named = f'is in use by another run: pid {results[w][0]} on host' in text and results[loser][1] not in (0, -999)
    return (results[w][0], text) if named else (None, text)


def _one_log(wd: str) -> bool:
    """The work dir holds exactly one run's log: one timestamp folder, one ``.log`` file in it."""
    dirs = [d for d in os.listdir(wd) if _TIMESTAMP.match(d) and osp.isdir(osp.join(wd, d))]
    return len(dirs) == 1 and len(glob.glob(osp.join(wd, dirs[0], '*.log'))) == 1


def drill_shared_work_dir(ctx: dict) -> list[dict]:
    iters = 4 if ctx['quick'] else 6
    root, _ = _images(ctx, 'clean', 24)
    cfg, ref = _reference(ctx, root, iters, 0)
    rows = []

    # 1. two train.py runs started together on one work dir
    ok = 0
    for a in range(ctx['attempts']):
        wd = osp.join(ctx['out'], f'shared_wd_{a}')
        logs = [f'{wd}.{k}.log' for k in 'AB']
        winner, _ = _winner_and_loser(_together('train', [[cfg, '--work-dir', wd]] * 2, logs), logs)
        good = (winner is not None and _one_log(wd) and not osp.exists(osp.join(wd, 'run.lock'))
                and not glob.glob(osp.join(wd, '.*.tmp'))
                and L.same_training_state(ref, L.last_state(wd, f'iter_{iters}.pth'))
                and _read(osp.join(wd, 'last_checkpoint')).strip().endswith(f'iter_{iters}.pth'))
        if good:  # the winner's checkpoints resume
            rc = L.train([cfg, '--work-dir', wd, '--resume', '--max-iters', str(iters + 1)], f'{wd}.resume.log')
            good = rc == 0 and L.last_state(wd)['meta']['iter'] == iters + 1
        ok += int(good)
    rows.append(_row('two `tools/train.py` runs started together on one `--work-dir`', ctx['attempts'], ok,
                     'exactly one trains, the other exits non-zero naming its pid, host and start time and writes '
                     'nothing (one log in the dir); the winner ends bit-identical to an undisturbed run and resumes'))

    # 2. the owner SIGKILLed: the next run takes the lock over
    ok = 0
    for a in range(ctx['attempts']):
        k = ctx['rng'].randint(1, iters - 1)
        wd = osp.join(ctx['out'], f'takeover_wd_{a}')
        kcfg = L.write_config(wd + '.py', root, iters=iters, hooks=[dict(type='FaultInjectionHook', kill_at_iter=k)])
        rc1 = L.train([kcfg, '--work-dir', wd], wd + '.log')
        try:
            dead = json.loads(_read(osp.join(wd, 'run.lock')))['pid']
        except (ValueError, KeyError):
            dead = None
        size = os.path.getsize(wd + '.log')
        rc2 = L.train([cfg, '--work-dir', wd, '--resume'], wd + '.log')
        resumed_log = _read(wd + '.log')[size:]
        ok += int(rc1 == -9 and dead is not None and rc2 == 0
                  and f'took over the lock of a run that is gone (pid {dead} on host' in resumed_log
                  and not osp.exists(osp.join(wd, 'run.lock'))
                  and L.same_training_state(ref, L.last_state(wd, f'iter_{iters}.pth')))
    rows.append(_row('owner of the work dir SIGKILLed at a random iteration, then `--resume`', ctx['attempts'], ok,
                     'stale `run.lock` taken over (the log names the dead pid), resume bit-identical to an '
                     'uninterrupted run, no lock file left'))

    # 3. two extract_latents runs started together on one --out (an extraction is short: when the first has finished
    # before the second starts, the second must find every shard complete and write none)
    ok, overlapped, n = 0, 0, 120  # enough images that the first extraction outlasts the second's start-up
    ckpt = osp.join(ctx['out'], f'ref_{iters}_0', f'iter_{iters}.pth')
    ecfg = L.write_config(osp.join(ctx['out'], 'shared_out.py'), _images(ctx, 'extract', n)[0], iters=iters)
    from safetensors.torch import load_file
    for a in range(ctx['attempts']):
        lat = osp.join(ctx['out'], f'shared_out_{a}')
        logs = [f'{lat}.{k}.log' for k in 'AB']
        argv = [ecfg, ckpt, '--out', lat, '--flip', '--batch-size', '2', '--num-workers', '0', '--shard-size', '4']
        results = _together('extract_latents', [argv] * 2, logs)
        winner, text = _winner_and_loser(results, logs)
        idx = sorted(int(i) for f in glob.glob(osp.join(lat, 'latents_0*.safetensors'))
                     for i in load_file(f)['indices'])
        complete = idx == list(range(n)) and not glob.glob(osp.join(lat, '*.lock'))
        if winner is not None:
            overlapped += 1
            ok += int(complete and 'error: ' in text)
        elif all(rc == 0 for _, rc in results):  # one after the other: only one of them wrote shards
            ok += int(complete and sum('shard 0:' in _read(log) for log in logs) == 1)
    rows.append(_row('two `tools/extract_latents.py` runs started together on one `--out`', ctx['attempts'], ok,
                     f'exactly one extracts, the other exits with `error:` naming it ({overlapped} of '
                     f'{ctx["attempts"]} overlapped; otherwise the second found every shard complete and wrote '
                     f'none); {n} latents, each index once'))
    return rows
