"""The first drills of the fault drill (:mod:`.drills`): each returns rows
``{fault, attempts, survived, lost, check}``."""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import threading
import time
from typing import Optional

from . import lib as L


def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def _images(ctx: dict, name: str, n: int, bad: float = 0.0) -> tuple[str, dict]:
    root = osp.join(ctx['out'], 'images', name)
    info_path = root + '.json'
    if osp.exists(info_path):
        return root, json.load(open(info_path))
    info = L.write_images(root, n, bad)
    json.dump(info, open(info_path, 'w'))
    return root, info


def _tmp_files(d: str) -> list[str]:
    return glob.glob(osp.join(d, '.*.tmp'))


def _reference(ctx: dict, root: str, iters: int, workers: int) -> dict:
    key = f'ref_{iters}_{workers}'
    if key not in ctx:
        d = osp.join(ctx['out'], key)
        cfg = L.write_config(osp.join(d + '.py'), root, iters=iters, workers=workers)
        rc = L.train([cfg, '--work-dir', d], d + '.log')
        if rc != 0:
            raise RuntimeError(f'reference run failed ({rc}); see {d}.log')
        ctx[key] = (cfg, L.last_state(d, f'iter_{iters}.pth'))
    return ctx[key]


# ---------------------------------------------------------------------------------------------------------------------
def drill_sigkill_resume(ctx: dict, workers: int = 0) -> dict:
    """SIGKILL after a random iteration, then ``--resume``: the end state must equal an uninterrupted run's."""
    iters = 4 if ctx['quick'] else 8
    root, _ = _images(ctx, 'clean', 24)
    cfg, ref = _reference(ctx, root, iters, workers)
    ok = 0
    for a in range(ctx['attempts']):
        k = ctx['rng'].randint(1, iters - 1)
        wd = osp.join(ctx['out'], f'sigkill_w{workers}_{a}')
        kcfg = L.write_config(wd + '.py', root, iters=iters, workers=workers,
                              hooks=[dict(type='FaultInjectionHook', kill_at_iter=k)])
        rc1 = L.train([kcfg, '--work-dir', wd], wd + '.log')
        rc2 = L.train([cfg, '--work-dir', wd, '--resume'], wd + '.log')
        ok += int(rc1 == -9 and rc2 == 0 and L.same_training_state(ref, L.last_state(wd, f'iter_{iters}.pth')))
    what = 'num_workers=2, workers reseeded' if workers else 'num_workers=0'
    return _row(f'SIGKILL at a random iteration, then --resume ({what})', ctx['attempts'], ok,
                'weights + AdamW moments bit-identical to an uninterrupted run')


def _fsdp_config(path: str, root: str, iters: int, hooks: Optional[list] = None) -> str:
    """The drill config on the FSDP strategy (``TransVAEFlexibleRunner`` + ``TransVAEFSDPStrategy``, full checkpoints)."""
    L.write_config(path, root, iters=iters, hooks=hooks, extra="\nrunner_type = 'TransVAEFlexibleRunner'\n")
    fsdp = osp.join(L.REPO, 'configs', '_base_', 'strategies', 'fsdp.py')
    with open(path) as f:
        text = f.read()
    head, rest = text.split('\n', 1)  # the first line is `_base_ = [runtime]`
    with open(path, 'w') as f:
        f.write(head[:-1] + f', {fsdp!r}]\n' + rest)
    return path


def drill_sigkill_resume_fsdp(ctx: dict) -> dict:
    """2-rank FSDP (gloo): SIGKILL rank 0 after a random iteration, torchrun ends the job, ``--resume`` on 2 ranks;
    the end state must equal an uninterrupted 2-rank FSDP run's."""
    iters = 4 if ctx['quick'] else 6
    root, _ = _images(ctx, 'clean', 24)
    ref_dir = osp.join(ctx['out'], 'fsdp_ref')
    cfg = _fsdp_config(ref_dir + '.py', root, iters)
    if _launch('train', [cfg, '--work-dir', ref_dir], 2, ref_dir + '.log') != 0:
        raise RuntimeError(f'FSDP reference run failed; see {ref_dir}.log')
    ref = L.last_state(ref_dir, f'iter_{iters}.pth')
    ok = 0
    for a in range(ctx['attempts']):
        k = ctx['rng'].randint(1, iters - 1)
        wd = osp.join(ctx['out'], f'sigkill_fsdp_{a}')
        kcfg = _fsdp_config(wd + '.py', root, iters, hooks=[dict(type='FaultInjectionHook', kill_at_iter=k, rank=0)])
        rc1 = _launch('train', [kcfg, '--work-dir', wd], 2, wd + '.log')
        rc2 = _launch('train', [cfg, '--work-dir', wd, '--resume'], 2, wd + '.log')
        ok += int(rc1 != 0 and rc2 == 0 and L.same_training_state(ref, L.last_state(wd, f'iter_{iters}.pth')))
    return _row('SIGKILL of rank 0 at a random iteration under FSDP (2 gloo ranks), then --resume', ctx['attempts'],
                ok, 'weights + AdamW moments bit-identical to an uninterrupted 2-rank FSDP run')


def drill_kill_in_write(ctx: dict) -> dict:
    """SIGKILL while a (padded, slow) checkpoint is written; resume; no .tmp left behind."""
    iters = 4 if ctx['quick'] else 6
    root, _ = _images(ctx, 'clean', 24)
    cfg, ref = _reference(ctx, root, iters, 0)
    ok, hit = 0, 0
    for a in range(ctx['attempts']):
        k = ctx['rng'].randint(1, iters - 1)
        wd = osp.join(ctx['out'], f'killwrite_{a}')
        delay = ctx['rng'].uniform(0.005, 0.05)
        kcfg = L.write_config(wd + '.py', root, iters=iters, hooks=[dict(
            type='FaultInjectionHook', kill_in_save_at_iter=k, pad_mb=32 if ctx['quick'] else 96, kill_delay_s=delay)])
        rc1 = L.train([kcfg, '--work-dir', wd], wd + '.log')
        hit += int(bool(_tmp_files(wd)))
        try:
            loadable = L.last_state(wd) is not None
        except Exception:  # noqa: BLE001
            loadable = False
        rc2 = L.train([cfg, '--work-dir', wd, '--resume'], wd + '.log')
        ok += int(rc1 == -9 and loadable and rc2 == 0 and not _tmp_files(wd)
                  and L.same_training_state(ref, L.last_state(wd, f'iter_{iters}.pth')))
    return _row('SIGKILL during a checkpoint write', ctx['attempts'], ok,
                f'last_checkpoint loadable, resume bit-identical, no .tmp left ({hit} of {ctx["attempts"]} kills '
                'landed inside the write)')


def _mount_tmpfs(path: str, size_bytes: int) -> bool:
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return False
    size = max(64 * 1024, (size_bytes // 4096 + 1) * 4096)
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', path],
                          capture_output=True).returncode == 0


def drill_disk_full(ctx: dict) -> dict:
    """The disk fills up during a checkpoint write (a size-limited tmpfs, or a simulated ENOSPC without root)."""
    iters = 4 if ctx['quick'] else 6
    root, _ = _images(ctx, 'clean', 24)
    cfg, ref = _reference(ctx, root, iters, 0)
    ref_dir = osp.join(ctx['out'], f'ref_{iters}_0')
    ckpt_size = osp.getsize(osp.join(ref_dir, f'iter_{iters}.pth'))
    mnt = osp.join(ctx['out'], 'diskfull_mnt')
    wd = osp.join(mnt, 'wd')
    mounted = _mount_tmpfs(mnt, int(2.5 * ckpt_size) + 256 * 1024)  # room for ~2 checkpoints and the logs
    try:
        if mounted:
            rc1 = L.train([cfg, '--work-dir', wd], osp.join(ctx['out'], 'diskfull.log'))
            how = f'tmpfs of {int(2.5 * ckpt_size) // 1024 + 256} KiB'
        else:
            fcfg = L.write_config(osp.join(ctx['out'], 'diskfull.py'), root, iters=iters,
                                  hooks=[dict(type='FaultInjectionHook', enospc_in_save_at_iter=3)])
            rc1 = L.train([fcfg, '--work-dir', wd], osp.join(ctx['out'], 'diskfull.log'))
            how = 'simulated ENOSPC (no tmpfs mount without root)'
        log = open(osp.join(ctx['out'], 'diskfull.log')).read()
        failed_on_space = rc1 != 0 and 'No space left on device' in log
        loadable = osp.exists(osp.join(wd, 'last_checkpoint')) and L.last_state(wd) is not None
        no_tmp = not _tmp_files(wd)
        safe = osp.join(ctx['out'], 'diskfull_freed')  # "free space": move the work dir to a roomy disk
        subprocess.run(['cp', '-a', wd, safe], check=True)
        pointer = open(osp.join(safe, 'last_checkpoint')).read().strip().replace(wd, safe)
        rc2 = L.train([cfg, '--work-dir', safe, '--resume', pointer], osp.join(ctx['out'], 'diskfull.log'))
        same = rc2 == 0 and L.same_training_state(ref, L.last_state(safe, f'iter_{iters}.pth'))
    finally:
        if mounted:
            subprocess.run(['umount', mnt], capture_output=True)
    ok = int(failed_on_space and loadable and no_tmp and same)
    return _row(f'disk full during a checkpoint write ({how})', 1, ok,
                'run stops with ENOSPC, previous checkpoint loadable, no .tmp, resume elsewhere bit-identical')


def drill_corrupt(ctx: dict) -> list[dict]:
    """10% corrupt / truncated / zero-byte / non-image files (+ mislabelled JPEGs) in train, test, extract_latents."""
    n = 40
    root, info = _images(ctx, 'corrupt', n, bad=0.1)
    n_bad, n_good = len(info['bad']), len(info['good'])
    ranks = 1 if ctx['quick'] else 2
    d = osp.join(ctx['out'], 'corrupt')
    cfg = L.write_config(d + '.py', root, iters=n // 4, workers=0 if ctx['quick'] else 2)
    rows = []
    # train: one epoch; the skip summary is summed over the ranks
    rc = _launch('train', [cfg, '--work-dir', d], ranks, d + '_train.log')
    log = open(d + '_train.log').read()
    ok = rc == 0 and f'over {n_bad} distinct file(s) (all ranks)' in log
    rows.append(_row(f'{n_bad}/{n} unreadable files in training ({ranks} rank(s))', 1, int(ok),
                     f'run completes; the log counts the {n_bad} distinct skipped files over all ranks'))
    # test: every readable image evaluated once, the bad ones counted
    out = d + '_test.json'
    rc = _launch('test', [cfg, osp.join(d, f'iter_{n // 4}.pth'), '--work-dir', d + '_test', '--out', out], ranks,
                 d + '_test.log')
    rep = json.load(open(out)) if rc == 0 and osp.exists(out) else {}
    s = (rep.get('settings') or [{}])[0]
    ok = s.get('num_images') == n_good and s.get('num_skipped') == n_bad
    rows.append(_row(f'{n_bad}/{n} unreadable files in tools/test.py ({ranks} rank(s))', 1, int(ok),
                     f'{n_good} images evaluated once, {n_bad} reported skipped'))
    # extract_latents: shards hold exactly the readable images
    lat = d + '_latents'
    rcs = [L.tool('extract_latents', [cfg, osp.join(d, f'iter_{n // 4}.pth'), '--out', lat, '--batch-size', '4',
                                      '--num-workers', '0', '--rank', str(r), '--world-size', str(ranks),
                                      '--shard-size', '16'], d + '_extract.log') for r in range(ranks)]
    from safetensors.torch import load_file
    idx = sorted(int(i) for f in glob.glob(osp.join(lat, 'latents_0*.safetensors')) for i in load_file(f)['indices'])
    ok = all(r == 0 for r in rcs) and len(idx) == n_good and len(set(idx)) == n_good
    rows.append(_row(f'{n_bad}/{n} unreadable files in extract_latents ({ranks} process(es))', 1, int(ok),
                     f'{n_good} latents, each index once'))
    return rows


def _launch(tool: str, argv: list, ranks: int, log: str) -> int:
    if ranks == 1:
        return L.tool(tool, argv, log)
    proc = L.run([sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={ranks}',
                  f'--master_port={_free_port()}', f'tools/{tool}.py', *argv, '--launcher', 'pytorch'], timeout=900)
    with open(log, 'a') as f:
        f.write(proc.stdout + proc.stderr)
    return proc.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def drill_nan(ctx: dict) -> dict:
    """NaN / Inf injected in the loss, one gradient, and an input batch: skipped, counted, weights stay finite."""
    import torch
    root, _ = _images(ctx, 'clean', 24)
    wd = osp.join(ctx['out'], 'nan_inf')
    at = dict(nan_loss_at_iters=(2, ), nan_grad_at_iters=(4, ), nan_batch_at_iters=(6, ))  # one run, 3 faults
    cfg = L.write_config(wd + '.py', root, iters=7, hooks=[dict(type='FaultInjectionHook', **at)])
    rc = L.train([cfg, '--work-dir', wd], wd + '.log')
    ok = 0
    if rc == 0:
        log = open(wd + '.log').read()
        last = L.last_state(wd, 'iter_7.pth')
        finite = all(bool(torch.isfinite(v).all()) for v in last['state_dict'].values())
        counted = last['message_hub']['runtime_info'].get('nonfinite_steps') == len(at)
        ok = sum(int(finite and counted and f'Non-finite loss or gradients at iteration {it[0] - 1}' in log)
                 for it in at.values())
    return _row('NaN / Inf in the loss, a gradient, an input batch', len(at), ok,
                'each step skipped and counted (nonfinite_steps=3), run completes, weights finite')


def drill_configs(ctx: dict) -> dict:
    """Malformed configs end with a clear error before anything is trained or written."""
    root, _ = _images(ctx, 'clean', 24)
    d = osp.join(ctx['out'], 'configs')
    os.makedirs(d, exist_ok=True)
    good = L.write_config(osp.join(d, 'good.py'), root, iters=2)
    typo_file = L.write_config(osp.join(d, 'typo.py'), root, iters=2, extra='optim_wraper = dict(type="SafeOptimWrapper")\n')
    syntax = osp.join(d, 'syntax.py')
    open(syntax, 'w').write(open(good).read() + '\nmodel = dict(type=\n')
    nobase = osp.join(d, 'nobase.py')
    open(nobase, 'w').write("_base_ = ['./does_not_exist.py']\n")
    cases = [
        ([good, '--cfg-options', 'train_cfgg.max_iters=1'], "Did you mean 'train_cfg'?"),
        ([good, '--cfg-options', 'optim_wrapper.optimizer.lrr=1e-3'], "Did you mean 'lr'?"),
        ([good, '--cfg-options', 'model.arch.widthz=[8,16,16]'], "unknown argument 'widthz'"),
        ([typo_file], "Did you mean 'optim_wrapper'?"),
        ([good, '--cfg-options', 'model.encoder.type=TransVAEEncodr'], 'TransVAEEncodr'),
        ([syntax], 'syntax.py'),
        ([nobase], 'does_not_exist.py'),
    ]
    ok = 0
    for i, (argv, expect) in enumerate(cases):
        wd, log = osp.join(d, f'wd{i}'), osp.join(d, f'case{i}.log')
        rc = L.train([*argv, '--work-dir', wd], log)
        text = open(log).read() if osp.exists(log) else ''
        ok += int(rc not in (0, -9, -999) and expect in text and not glob.glob(osp.join(wd, 'iter_*.pth')))
    return _row('malformed configs (misspelt top-level / nested keys, typo in a file, unknown type, syntax error, '
                'missing _base_)', len(cases), ok, 'non-zero exit naming the problem (and the fix where one exists), '
                'nothing trained')


def drill_inputs(ctx: dict) -> dict:
    """transvae.apis with empty / non-finite / odd image inputs: a result or a clear error, never garbage."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from PIL import Image

    from transvae.apis import init_model, reconstruct
    d = osp.join(ctx['out'], 'inputs')
    os.makedirs(d, exist_ok=True)
    import copy
    cnn_only = copy.deepcopy(L.DRILL_MODEL)
    cnn_only['arch']['num_cnn_stages'] = 3  # no global attention: a 4097² image costs linear time
    model = init_model(Config(dict(model=cnn_only)))
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert('CMYK').save(osp.join(d, 'cmyk.jpg'))
    Image.fromarray(rgb[..., 0]).convert('LA').save(osp.join(d, 'gray_alpha.png'))
    pal = Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=16)
    pal.info['transparency'] = 0
    pal.save(osp.join(d, 'palette.png'), transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(rgb).save(osp.join(d, 'exif_rot.jpg'), exif=exif)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(osp.join(d, 'anim.gif'), save_all=True, append_images=frames[1:], duration=50)
    big, big_tile = (513, None) if ctx['quick'] else (4097, None)  # whole image: ~3 GB, linear time (no attention)
    expect_shape = {'cmyk.jpg': (3, 20, 28), 'gray_alpha.png': (3, 20, 28), 'palette.png': (3, 20, 28),
                    'exif_rot.jpg': (3, 28, 20), 'anim.gif': (3, 20, 28)}
    cases = [('empty tensor', torch.zeros(0, 3, 16, 16), ValueError), ('empty list', [], ValueError),
             ('NaN image', torch.full((3, 16, 16), float('nan')), ValueError),
             ('Inf image', torch.full((3, 16, 16), float('inf')), ValueError),
             ('missing file', osp.join(d, 'nope.png'), FileNotFoundError),
             ('PIL I;16', Image.fromarray(np.full((16, 16), 30000, np.uint16)), (3, 16, 16)),
             (f'{big}x{big}', torch.rand(3, big, big), (3, big, big))]
    cases += [(name, osp.join(d, name), shape) for name, shape in expect_shape.items()]
    ok = 0
    for name, value, expect in cases:
        try:
            out = reconstruct(model, value, tile=big_tile if name.startswith(str(big)) else None)
            good = isinstance(expect, tuple) and tuple(out.shape) == expect and bool(torch.isfinite(out).all())
            if name == 'PIL I;16':  # 30000/65535 = 0.458, not saturated
                from transvae.apis.inference import to_image_tensor
                good = good and abs(float(to_image_tensor(value)[0].mean()) - 30000 / 65535) < 0.01
        except Exception as e:  # noqa: BLE001
            good = isinstance(expect, type) and isinstance(e, expect) and len(str(e)) < 400
        ok += int(good)
    return _row('odd image inputs to transvae.apis (empty, NaN, Inf, missing path, I;16, '
                f'{big}²{" tiled" if big_tile else ""}, CMYK, gray+alpha, palette, EXIF-rotated, animated)', len(cases), ok,
                'correct shape and finite output, or a clear ValueError / FileNotFoundError')


def drill_rank_killed(ctx: dict, bound_s: float = 120.0) -> dict:
    """2-rank gloo training, rank 1 SIGKILLed: the job must end with a clear error within ``bound_s``."""
    root, _ = _images(ctx, 'clean', 24)
    wd = osp.join(ctx['out'], 'rank_killed')
    cfg = L.write_config(wd + '.py', root, iters=20, hooks=[dict(type='FaultInjectionHook', kill_at_iter=3, rank=1)])
    t0 = time.time()
    proc = L.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                  f'--master_port={_free_port()}', 'tools/train.py', cfg, '--work-dir', wd, '--launcher', 'pytorch'],
                 timeout=bound_s + 60)
    took = time.time() - t0
    text = proc.stdout + proc.stderr
    with open(wd + '.log', 'w') as f:
        f.write(text)
    clear = 'Signal 9' in text or 'SIGKILL' in text or 'exitcode  : -9' in text
    ok = proc.returncode != 0 and took < bound_s and clear
    return _row('2-rank gloo run, rank 1 SIGKILLed', 1, int(ok),
                f'torchrun exits non-zero naming the killed rank in {took:.0f} s (bound {bound_s:.0f} s), no hang')


# ---------------------------------------------------------------------------------------------------------------------
def _tree_rss_mb(pid: int) -> float:
    """Sum of the RSS of ``pid`` and its descendants (Linux /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f'/proc/{p}/statm') as f:
                total += int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            with open(f'/proc/{p}/task/{p}/children') as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return total / 2**20


def load_test(n: int, out: str) -> dict:
    """tools/test.py over ``n`` generated 32² images, 2 ranks x 2 workers: count and peak RSS of the process tree."""
    root = osp.join(out, 'images')
    if not osp.isdir(root) or len(os.listdir(root)) != n:
        L.write_images(root, n, size=32)
    cfg = L.write_config(osp.join(out, 'cfg.py'), root, iters=1, workers=2)
    wd = osp.join(out, 'train')
    if L.train([cfg, '--work-dir', wd], osp.join(out, 'train.log')) != 0:
        raise RuntimeError(f'training the load-test checkpoint failed; see {out}/train.log')
    report = osp.join(out, 'report.json')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
           'tools/test.py', cfg, osp.join(wd, 'iter_1.pth'), '--work-dir', osp.join(out, 'test'), '--out', report,
           '--batch-size', '32', '--num-workers', '2', '--launcher', 'pytorch']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=L.REPO)
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=L.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, samples = 0.0, []
    reader = threading.Thread(target=lambda: samples.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.2)
    reader.join()
    with open(osp.join(out, 'test.log'), 'w') as f:
        f.write(''.join(samples))
    rep = json.load(open(report)) if osp.exists(report) else {}
    s = (rep.get('settings') or [{}])[0]
    return dict(images=n, returncode=proc.returncode, evaluated=s.get('num_images'), skipped=s.get('num_skipped'),
                peak_rss_mb=round(peak, 1), seconds=round(time.time() - t0, 1))
