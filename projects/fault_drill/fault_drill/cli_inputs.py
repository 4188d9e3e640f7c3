"""Fault-drill cases for command-line values, resume and output paths (issue 20, items 3, 5, 6, 8).

Each ``drill_*(ctx) -> list[dict]`` returns rows ``{fault, attempts, survived, lost, check}`` as the drills of
``cases.py`` do; the tools run in forked children (:func:`.lib.tool`) on the drill's tiny TransVAE
and real generated images.

* :func:`drill_cli_values`: zero / negative / non-numeric options and config values, and ``none`` checkpoints: the
  tool exits non-zero with an error naming the option or key, and nothing is trained or written.
* :func:`drill_resume_changed_config`: ``--resume`` with a model config of identical shapes but another RoPE theta,
  the latent DC shortcut off or the DC down-sampler swapped, of a finished run, past the schedule, of a
  ``.safetensors`` export.
* :func:`drill_output_over_input`: outputs aimed at the checkpoint, the config, the data root (directly, through a
  symlink or a hard link) or a read-only folder.
"""
from __future__ import annotations

import contextlib
import glob
import os
import os.path as osp
import subprocess
import tempfile
import time
from typing import Iterator, Optional

from . import lib as L

from transvae.utils.files import sha256_file


def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def _log_text(log: str) -> str:
    return open(log, encoding='utf-8', errors='replace').read() if osp.exists(log) else ''


def _named_error(log: str, needle: str) -> bool:
    """The log has an ``error:`` line naming ``needle`` and no traceback."""
    text = _log_text(log)
    return 'Traceback' not in text and any('error:' in ln and needle in ln for ln in text.splitlines())


def _snapshot(*paths: str) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or folders)."""
    out = {}
    for p in paths:
        files = [p] if osp.isfile(p) else [osp.join(r, f) for r, _, fs in os.walk(p) for f in fs]
        out.update({f: sha256_file(f) for f in files})
    return out


def _setup(ctx: dict, name: str, iters: int) -> tuple[str, str, str]:
    """``(images, config, checkpoint at iteration iters)`` of a drill-model run (cached in ``ctx``)."""
    key = f'cli_ref_{name}_{iters}'
    if key not in ctx:
        root = osp.join(ctx['out'], 'images', f'cli_{name}')
        if not osp.isdir(root):
            L.write_images(root, 8)
        d = osp.join(ctx['out'], key)
        cfg = L.write_config(d + '.py', root, iters=iters)
        rc = L.train([cfg, '--work-dir', d], d + '.log')
        if rc != 0:
            raise RuntimeError(f'reference run failed ({rc}); see {d}.log')
        ctx[key] = (root, cfg, osp.join(d, f'iter_{iters}.pth'))
    return ctx[key]


# ---------------------------------------------------------------------------------------------------------------------
def drill_cli_values(ctx: dict) -> list[dict]:
    """Zero / negative / non-numeric values and ``none`` checkpoints: refused, naming the option, nothing written."""
    root, cfg, ckpt = _setup(ctx, 'values', 1)
    train = [(['--max-iters', '0'], '--max-iters'), (['--max-iters', '-5'], '--max-iters'),
             (['--batch-size', '0'], '--batch-size'), (['--epochs', '0'], '--epochs'),
             (['--resolution', '0'], '--resolution'),
             (['--cfg-options', 'train_cfg.max_iters=ten'], 'train_cfg.max_iters'),
             (['--cfg-options', 'train_dataloader.batch_size=-1'], 'train_dataloader.batch_size'),
             (['--cfg-options', 'optim_wrapper.optimizer.lr=abc'], 'optim_wrapper.optimizer.lr')]
    other = [('test', [cfg, ckpt, '--max-images', '0'], '--max-images'),
             ('test', [cfg, 'none'], '--random-weights'),
             ('extract_latents', [cfg, ckpt, '--shard-size', '0'], '--shard-size'),
             ('extract_latents', [cfg, 'none'], '--random-weights')]
    if ctx['quick']:
        train, other = train[::3], other[1::2]
    ok = 0
    cases = [('train', argv, needle) for argv, needle in train] + other
    for i, (tool, argv, needle) in enumerate(cases):
        out = osp.join(ctx['out'], f'cli_value_case_{i}')
        log = out + '.log'
        full = [cfg, '--work-dir', out] + argv if tool == 'train' else argv + (
            ['--out', out] if tool == 'extract_latents' else ['--work-dir', out, '--out', out + '.json'])
        rc = L.tool(tool, full, log)
        written = osp.exists(out) and (glob.glob(osp.join(out, '*.pth')) or glob.glob(osp.join(out, 'latents_*')))
        ok += int(rc != 0 and _named_error(log, needle) and not written and not osp.exists(out + '.json'))
    return [_row('zero / negative / non-numeric command-line and config values (`--max-iters 0` / `-5`, '
                 '`--batch-size 0`, `--epochs 0`, `--resolution 0`, `max_iters=ten`, `batch_size=-1`, `lr=abc`, '
                 '`--max-images 0`, `--shard-size 0`), `test.py` / `extract_latents.py` with checkpoint `none`',
                 len(cases), ok, 'non-zero exit, one `error:` line naming the option or key (or `--random-weights`), '
                 'no checkpoint, shard or report written')]


# ---------------------------------------------------------------------------------------------------------------------
def drill_resume_changed_config(ctx: dict) -> list[dict]:
    """``--resume`` of a same-shape but different model config, of a finished run, past the end, of an export."""
    _, cfg, ckpt = _setup(ctx, 'resume', 2)
    changes = [('model.arch.pe_cfg.theta=100.0', 'model.arch.pe_cfg.theta'),
               ('model.arch.latent_shortcut=False', 'model.arch.latent_shortcut'),
               ('model.encoder.down_cfg.type=ConvPixelUnshuffleDown', 'model.encoder.down_cfg.type')]
    if ctx['quick']:
        changes = changes[:1]
    ok = 0
    for i, (option, key) in enumerate(changes):
        wd = osp.join(ctx['out'], f'resume_changed_{i}')
        rc = L.train([cfg, '--work-dir', wd, '--resume', ckpt, '--max-iters', '3', '--cfg-options', option],
                     wd + '.log')
        refused = rc == 1 and _named_error(wd + '.log', key) and not osp.exists(osp.join(wd, 'iter_3.pth'))
        rc2 = L.train([cfg, '--work-dir', wd, '--resume', ckpt, '--max-iters', '3', '--resume-allow-config-change',
                       '--cfg-options', option], wd + '.allowed.log')
        ok += int(refused and rc2 == 0 and osp.exists(osp.join(wd, 'iter_3.pth')))
    rows = [_row('`--resume` with a model config of identical shapes: RoPE theta 1e4 -> 100, latent DC shortcut off, '
                 'DC down-sampler swapped for the plain one', len(changes), ok,
                 'non-zero exit naming the differing key, nothing trained; resumes with '
                 '`--resume-allow-config-change`')]

    from transvae.engine.checkpoint_io import export_safetensors, load_checkpoint_file
    st = osp.join(ctx['out'], 'resume_export.safetensors')
    if not osp.exists(st):
        export_safetensors(load_checkpoint_file(ckpt), st)
    cases = [([], 0, 'nothing to train'), (['--max-iters', '1'], 1, 'beyond the end of the schedule'),
             (['--resume-path', st], 1, 'holds weights only')]
    ok = 0
    for i, (extra, want_rc, needle) in enumerate(cases):
        wd = osp.join(ctx['out'], f'resume_end_{i}')
        path = st if extra[:1] == ['--resume-path'] else ckpt
        extra = [] if extra[:1] == ['--resume-path'] else extra
        t0 = time.time()
        rc = L.train([cfg, '--work-dir', wd, '--resume', path] + extra, wd + '.log')
        text = _log_text(wd + '.log')
        ok += int(rc == want_rc and needle in text and 'Traceback' not in text and 'Advance dataloader' not in text
                  and not glob.glob(osp.join(wd, 'iter_*.pth')) and time.time() - t0 < 120)
    rows.append(_row('`--resume` of a finished run (iteration 2 of 2), with `--max-iters 1` (past the end), of a '
                     '`.safetensors` export', len(cases), ok,
                     'finished: says "nothing to train", exit 0; past the end / export: exit 1 with the reason '
                     '(no `KeyError`); no data skipped, no checkpoint written'))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def read_only_dir(parent: str) -> Iterator[Optional[str]]:
    """A folder nothing can be created in: a read-only tmpfs under root (which ignores permission bits), else a
    ``chmod 555`` folder; ``None`` when neither is possible."""
    path = tempfile.mkdtemp(dir=parent)
    if os.geteuid() == 0:
        ok = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', path],
                            capture_output=True).returncode == 0
        try:
            yield path if ok else None
        finally:
            if ok:
                subprocess.run(['umount', path], capture_output=True)
    else:
        os.chmod(path, 0o555)
        try:
            yield path
        finally:
            os.chmod(path, 0o755)


def drill_output_over_input(ctx: dict) -> list[dict]:
    """Outputs aimed at an input (checkpoint, config, data root; through links) or a read-only folder."""
    root, cfg, ckpt = _setup(ctx, 'outputs', 1)
    d = osp.join(ctx['out'], 'outputs_over_inputs')
    os.makedirs(d, exist_ok=True)
    link = osp.join(d, 'link_to_ckpt.json')
    if not osp.lexists(link):
        os.symlink(ckpt, link)
    st = osp.join(d, 'weights.safetensors')
    if not osp.exists(st):
        from transvae.engine.checkpoint_io import export_safetensors, load_checkpoint_file
        export_safetensors(load_checkpoint_file(ckpt), st)
    hard = osp.join(d, 'hard.safetensors')
    if not osp.exists(hard):
        os.link(st, hard)
    wd = osp.join(d, 'wd')
    cases = [('test', [cfg, ckpt, '--out', ckpt, '--work-dir', wd], '--out'),
             ('test', [cfg, ckpt, '--out', link, '--work-dir', wd], '--out'),
             ('test', [cfg, ckpt, '--report', cfg, '--work-dir', wd], '--report'),
             ('test', [cfg, ckpt, '--show-dir', osp.join(root, 'vis'), '--work-dir', wd], '--show-dir'),
             ('extract_latents', [cfg, ckpt, '--out', root], '--out'),
             ('extract_latents', [cfg, ckpt, '--out', osp.dirname(root)], '--out'),
             ('model_converters/to_safetensors', [st, hard, '--force'], 'is the checkpoint')]
    if ctx['quick']:
        cases = cases[::2]
    ok = 0
    for i, (tool, argv, needle) in enumerate(cases):
        before = _snapshot(root, cfg, ckpt, st)
        rc = L.tool(tool, argv, osp.join(d, f'case_{i}.log'))
        ok += int(rc != 0 and _named_error(osp.join(d, f'case_{i}.log'), needle) and _snapshot(root, cfg, ckpt, st)
                  == before and not osp.exists(wd))
    n = len(cases)
    with read_only_dir(d) as ro:
        if ro is not None:
            n += 1
            log = osp.join(d, 'read_only.log')
            t0 = time.time()
            rc = L.tool('test', [cfg, ckpt, '--out', osp.join(ro, 'metrics.json'), '--work-dir', wd], log)
            ok += int(rc != 0 and _named_error(log, ro) and 'metrics:' not in _log_text(log) and not osp.exists(wd)
                      and time.time() - t0 < 30)
    return [_row('outputs aimed at inputs: `test.py --out CKPT` (directly and through a symlink), `--report CONFIG`, '
                 '`--show-dir` inside the data root, `extract_latents --out` = / above the data root, '
                 '`to_safetensors` over its input through a hard link (`--force`), `--out` in a read-only folder',
                 n, ok, 'non-zero exit naming the option before any model is built (< 30 s), every input '
                 'byte-identical, no work dir created')]
