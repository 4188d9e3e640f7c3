"""Train a study's variants, one ``tools/train.py`` subprocess per (variant, seed), resumable.

Layout under a study root ``ROOT``:

- ``ROOT/_configs/LABEL.py``: the overlay config (``_base_`` = the variant's config; the val evaluator plus
  :class:`~transvae.evaluation.metrics.ReconstructionLossMetric` with LPIPS-alex (prefix ``alex``) and the paper's
  LPIPS-vgg (prefix ``vgg``); val scalars keyed by iteration);
- ``ROOT/LABEL/seed_S/``: the work dir of one seed (``--resume auto``), ``driver.log`` and, once finished,
  ``done.json``. A finished (variant, seed) is skipped; an interrupted one resumes from its last checkpoint; a larger
  ``max_iters`` continues it. ``fingerprint.json`` records what the run trains (the overlay resolved with the preset,
  per top-level key, and the command-line overrides): when the config has changed since, the driver refuses to
  skip or resume that work dir (:class:`StaleRunError`) instead of reporting old numbers under the new config.
  ``per_photo.json``: each held-out photo's metrics at the last checkpoint (:mod:`.per_photo`), written when the
  run ends, or by re-evaluating the final checkpoint of a finished run that lacks it (the paired bootstrap's input).
"""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from transvae.utils.errors import UserInputError

from .study import REPO, Study, Variant, resolve_config

DONE = 'done.json'
FINGERPRINT = 'fingerprint.json'
#: The validation reconstruction losses every study logs: L1 + LPIPS with the paper's VGG and with AlexNet.
REC_LOSS_METRICS = (dict(type='ReconstructionLossMetric', net='vgg', prefix='vgg'),
                    dict(type='ReconstructionLossMetric', net='alex', prefix='alex'))
_ITER_RE = re.compile(r'Iter\((train|val)\)\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]')


@dataclass
class RunOptions:
    """How a study's variants are trained.

    Args:
        seeds: seeds per variant (work dirs ``seed_S``).
        preset: ``tools/train.py --preset`` (``None``: paper scale).
        max_iters / batch_size / val_interval: forwarded when given (the same for every variant).
        gpus: processes per variant (> 1: ``tools/dist_train.sh``); launcher ``slurm`` passes ``--launcher slurm``.
        cfg_options: extra ``--cfg-options`` for every variant (after the driver's own).
        force: retrain variants that have a ``done.json`` (resuming them).
        python: interpreter for ``tools/train.py``.
        env: extra environment of the child (e.g. ``OMP_NUM_THREADS``).
    """
    seeds: Sequence[int] = (0, 1)
    preset: Optional[str] = 'cpu'
    max_iters: Optional[int] = None
    batch_size: Optional[int] = None
    val_interval: Optional[int] = None
    gpus: int = 1
    launcher: str = 'none'
    cfg_options: list[str] = field(default_factory=list)
    force: bool = False
    python: Optional[str] = None
    env: dict = field(default_factory=dict)


def work_dir_of(root: str, label: str, seed: int) -> str:
    return osp.join(root, label, f'seed_{seed}')


def _eval_list(cfg) -> list[dict]:
    ev = cfg.get('val_evaluator', None)
    if ev is None:
        return []
    ev = ev if isinstance(ev, (list, tuple)) else [ev]
    return [e.to_dict() if hasattr(e, 'to_dict') else dict(e) for e in ev]


def write_overlay(variant: Variant, root: str) -> str:
    """Write ``ROOT/_configs/LABEL.py`` (only when its text changes) and return its path."""
    from mmengine.config import Config
    src = variant.config_path
    base = Config.fromfile(src)
    os.makedirs(osp.join(root, '_configs'), exist_ok=True)
    path = osp.join(root, '_configs', f'{variant.label}.py')
    evs = [e for e in _eval_list(base) if e.get('type') != 'ReconstructionLossMetric'] + [dict(m) for m in
                                                                                          REC_LOSS_METRICS]
    smooth = [dict(data_src=f"{m['prefix']}/rec_loss", method_name='mean', window_size=1) for m in REC_LOSS_METRICS]
    lines = [f'# Overlay written by paper_studies.run for variant {variant.label!r}.',
             f'_base_ = [{src!r}]',
             '# val scalars keyed by iteration (mmengine logs them by epoch = 0 otherwise under an iteration loop)',
             'default_hooks = dict(logger=dict(log_metric_by_epoch=False))',
             "# mmengine's LogProcessor smooths keys containing 'loss' over 10 values (val too): log the current one",
             f'log_processor = dict(custom_cfg={smooth!r})',
             f'val_evaluator = {evs!r}']
    if variant.model_from:
        model = Config.fromfile(resolve_config(variant.model_from)).model.to_dict()
        lines.append(f'model = {dict(model, _delete_=True)!r}')
    if variant.hooks:
        hooks = [h.to_dict() if hasattr(h, 'to_dict') else dict(h) for h in (base.get('custom_hooks', None) or [])]
        lines.append(f'custom_hooks = {hooks + [dict(h) for h in variant.hooks]!r}')
    text = '\n'.join(lines) + '\n'
    if not osp.isfile(path) or open(path).read() != text:
        with open(path, 'w') as f:
            f.write(text)
    return path


def _cfg_options(opts: RunOptions, variant: Optional[Variant]) -> list[str]:
    """The variant's ``--cfg-options`` then the study's (``train_command`` prepends ``val_interval``)."""
    return list(variant.cfg_options if variant else []) + list(opts.cfg_options)


def train_command(config: str, work_dir: str, seed: int, opts: RunOptions, variant: Optional[Variant] = None
                  ) -> list[str]:
    """The command line that trains ``config`` into ``work_dir`` with ``seed`` (always ``--resume auto``)."""
    extra = ['--work-dir', work_dir, '--resume', 'auto', '--seed', str(seed)]
    if opts.preset and opts.preset != 'none':
        extra += ['--preset', opts.preset]
    if opts.max_iters:
        extra += ['--max-iters', str(opts.max_iters)]
    if opts.batch_size:
        extra += ['--batch-size', str(opts.batch_size)]
    cfg_opts = []
    if opts.val_interval:
        cfg_opts.append(f'train_cfg.val_interval={opts.val_interval}')
    cfg_opts += _cfg_options(opts, variant)
    if cfg_opts:
        extra += ['--cfg-options', *cfg_opts]
    if opts.launcher == 'pytorch' or (opts.gpus > 1 and opts.launcher != 'slurm'):
        return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(max(opts.gpus, 1)), *extra]
    cmd = [opts.python or sys.executable, osp.join(REPO, 'tools', 'train.py'), config, *extra]
    if opts.launcher == 'slurm':
        cmd += ['--launcher', 'slurm']
    return cmd


def read_done(work_dir: str) -> Optional[dict]:
    try:
        with open(osp.join(work_dir, DONE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_done(work_dir: str, max_iters: Optional[int] = None) -> bool:
    """A ``done.json`` exists (and, when ``max_iters`` is given, records at least that many iterations)."""
    rec = read_done(work_dir)
    if rec is None:
        return False
    return max_iters is None or rec.get('max_iters') is None or int(rec['max_iters']) >= int(max_iters)


class BusyError(UserInputError, RuntimeError):
    """Another driver is training this (variant, seed) right now."""


class StaleRunError(UserInputError, RuntimeError):
    """A work dir was trained with another config than the variant resolves to now."""


def run_fingerprint(overlay: str, seed: int, opts: RunOptions, variant: Optional[Variant] = None) -> dict:
    """What one (variant, seed) trains: :func:`~transvae.engine.config_surgery.config_fingerprint` of the overlay
    resolved with ``opts.preset``, plus ``_cli``: the seed, batch size and ``--cfg-options`` of
    :func:`train_command`."""
    from mmengine.config import Config

    from transvae.engine.config_surgery import apply_preset, config_fingerprint
    cfg = Config.fromfile(overlay)
    if opts.preset and opts.preset != 'none':
        apply_preset(cfg, opts.preset)
    fp = config_fingerprint(cfg)
    # not max_iters / val_interval: a larger max_iters continues a finished run on purpose
    fp['_cli'] = json.dumps(dict(seed=seed, batch_size=opts.batch_size, cfg_options=_cfg_options(opts, variant)),
                            sort_keys=True)
    return fp


def check_fingerprint(work_dir: str, current: dict, record: bool = True) -> None:
    """Raise :class:`StaleRunError` naming the changed keys when ``work_dir`` holds a run of another config; write
    ``current`` when it holds none yet (``record``: only by the driver that owns the work dir). Work dirs from before
    fingerprints (none stored) are accepted as they are."""
    path = osp.join(work_dir, FINGERPRINT)
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        if record and read_done(work_dir) is None:  # a new (or interrupted, pre-fingerprint) run: record it
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(current, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        return
    changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if changed:
        raise StaleRunError(
            f'{work_dir} was trained with another config than its variant resolves to now (changed: '
            f'{", ".join(changed)}); its numbers would be reported under the new config. Move the directory away '
            f'(e.g. to {osp.basename(work_dir)}.old) to train it again.')


@contextlib.contextmanager
def _exclusive(work_dir: str):
    """Own ``work_dir/driver.lock`` (:class:`~transvae.engine.work_dir_lock.WorkDirLock`) before the driver writes
    there: two drivers never train one work dir at once (:class:`BusyError` names the other one: pid, host, start,
    command); a lock left by a killed driver is taken over (said on stderr). The ``tools/train.py`` child then owns
    ``run.lock`` in it as every training run does, so a ``tools/train.py`` started by hand there is refused too."""
    from transvae.engine.work_dir_lock import WorkDirBusyError, WorkDirLock
    lock = WorkDirLock(work_dir, name='driver.lock', hint='This driver skips it; run the study again once that one '
                       'has finished')
    try:
        lock.acquire()
    except WorkDirBusyError as e:
        raise BusyError(str(e)) from None
    if lock.took_over is not None:
        print(lock.takeover_message(), file=sys.stderr, flush=True)
    try:
        yield
    finally:
        lock.release()


def run_variant(variant: Variant, seed: int, root: str, opts: RunOptions,
                on_line: Optional[Callable[[str], None]] = None) -> dict:
    """Train one (variant, seed) unless done; returns its ``done.json`` record. Raises on a failed child and
    :class:`BusyError` when another driver holds the work dir."""
    work_dir = work_dir_of(root, variant.label, seed)
    overlay = write_overlay(variant, root)
    fingerprint = run_fingerprint(overlay, seed, opts, variant)
    if osp.isdir(work_dir):  # read only: the work dir may be another driver's
        check_fingerprint(work_dir, fingerprint, record=False)
    if not opts.force and is_done(work_dir, opts.max_iters):
        with _exclusive(work_dir):  # a finished run without per_photo.json: re-evaluate its final checkpoint
            _per_photo(work_dir, variant.label, seed)
        return read_done(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    with _exclusive(work_dir):
        check_fingerprint(work_dir, fingerprint)
        rec = _train(variant, seed, overlay, opts, work_dir, on_line)
        _per_photo(work_dir, variant.label, seed)
        return rec


def _per_photo(work_dir: str, label: str, seed: int) -> None:
    """Write (or keep) ``per_photo.json`` of a finished run (:func:`~.per_photo.ensure_per_photo`); a run without
    a checkpoint (e.g. recorded before checkpoints were kept) is said on stderr and left without one. A failed
    evaluation is raised as ``RuntimeError``, so :func:`run_study` reports it with the failed runs."""
    from .per_photo import ensure_per_photo
    try:
        ensure_per_photo(work_dir)
    except FileNotFoundError as e:
        print(f'[{label} seed {seed}] no per-photo data: {e}', file=sys.stderr, flush=True)
    except Exception as e:  # noqa: BLE001 - one run's evaluation must not stop the study's other runs
        raise RuntimeError(f'[{label} seed {seed}] per-photo evaluation of {work_dir} failed: '
                           f'{type(e).__name__}: {e}') from e


def _train(variant: Variant, seed: int, overlay: str, opts: RunOptions, work_dir: str,
           on_line: Optional[Callable[[str], None]]) -> dict:
    cmd = train_command(overlay, work_dir, seed, opts, variant)
    env = dict(os.environ, PYTHONUNBUFFERED='1', **{k: str(v) for k, v in opts.env.items()})
    log_path = osp.join(work_dir, 'driver.log')
    t0, last = time.time(), ''
    with open(log_path, 'a') as log:
        log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(cmd)}\n')
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if on_line is not None:
                    on_line(line)
                last = line
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if rc != 0:
        raise RuntimeError(f'[{variant.label} seed {seed}] tools/train.py exited with {rc}; see {log_path}\n{last}')
    rec = dict(label=variant.label, seed=seed, config=variant.config_path, max_iters=opts.max_iters,
               batch_size=opts.batch_size, wall_s=round(time.time() - t0, 1),
               finished_at=time.strftime('%Y-%m-%d %H:%M:%S'), loadavg_end=[round(x, 2) for x in os.getloadavg()],
               command=shlex.join(cmd))
    tmp = osp.join(work_dir, DONE + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(rec, f, indent=1)
    os.replace(tmp, osp.join(work_dir, DONE))
    return rec


def progress_printer(label: str, seed: int) -> Callable[[str], None]:
    """A line callback printing validation results and errors of one child, prefixed with its name."""
    def show(line: str) -> None:
        m = _ITER_RE.search(line)
        if ('Iter(val)' in line and m is None) or 'Error' in line or 'Traceback' in line or (
                m is not None and m.group(1) == 'train' and int(m.group(2)) % 250 == 0):
            print(f'[{label} s{seed}] {line.rstrip()}', flush=True)
    return show


def run_study(study: Study, root: str, opts: RunOptions, labels: Optional[Sequence[str]] = None) -> dict:
    """Train every selected variant for every seed, seed-major (all variants of seed 0 first, so a stopped study
    already has one complete seed); returns ``{(label, seed): done record}``. One failed child does not stop the
    others; the failures are raised together at the end."""
    os.makedirs(root, exist_ok=True)
    records, failures = {}, []
    t0, load0 = time.time(), os.getloadavg()
    for seed in opts.seeds:
        for v in study.select(labels):
            try:
                records[(v.label, seed)] = run_variant(v, seed, root, opts, progress_printer(v.label, seed))
            except BusyError as e:  # another driver trains it; a later run picks up its done.json
                print(f'{e}; skipped', file=sys.stderr, flush=True)
            except RuntimeError as e:
                failures.append(str(e))
                print(e, file=sys.stderr, flush=True)
    with open(osp.join(root, 'driver_runs.jsonl'), 'a') as f:
        f.write(json.dumps(dict(started=time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t0)),
                                wall_s=round(time.time() - t0, 1), preset=opts.preset, max_iters=opts.max_iters,
                                batch_size=opts.batch_size, seeds=list(opts.seeds),
                                variants=[v.label for v in study.select(labels)],
                                loadavg_start=[round(x, 2) for x in load0],
                                loadavg_end=[round(x, 2) for x in os.getloadavg()], cpus=os.cpu_count())) + '\n')
    if failures:
        raise RuntimeError(f'{len(failures)} run(s) failed:\n' + '\n'.join(failures))
    return records
