"""A work dir is owned by one run (issue 20, item 2): ``transvae.engine.work_dir_lock`` and where it is taken.

Every hostile case runs with real processes on a real directory: a holder is a second Python process (holding the lock
through the real runner path, or the lock itself), a contender is ``tools/train.py`` / ``tools/extract_latents.py`` or
this process; "killed" is a real SIGKILL.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

import tiny_vae_fixtures as tv
from transvae.apis import extract_latents_cli
from transvae.engine.atomic_io import remove_stale_tmp_files
from transvae.engine.work_dir_lock import (RUN_LOCK, WorkDirBusyError, WorkDirLock, boot_id,
                                           owned_by_other_process)
from transvae.utils.latent_shards import list_shards

# the lock module by its path: a child that needs only the lock starts in ~0.1 s (no torch / mmengine import)
LOAD_LOCK_MODULE = f'''
import importlib.util, sys
_spec = importlib.util.spec_from_file_location('work_dir_lock', {osp.join(tv.REPO, 'transvae', 'engine',
                                                                          'work_dir_lock.py')!r})
wdl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wdl)
'''

# a process that holds DIR's lock (WorkDirLock itself) until its stdin closes
HOLD_LOCK = LOAD_LOCK_MODULE + '''
lock = wdl.WorkDirLock(sys.argv[1], name=sys.argv[2]).acquire()
print('READY', flush=True)
sys.stdin.read()
'''

# a process that builds a real TransVAERunner on DIR (which takes the lock) and holds it until its stdin closes
HOLD_RUNNER = '''
import sys
import tiny_vae_fixtures as tv
runner = tv.build_runner(sys.argv[1], sys.argv[2])
print('READY', flush=True)
sys.stdin.read()
'''


def _start(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, '-c', code, *args], cwd=tv.REPO, env=tv.subprocess_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # its log lines come first (a runner logs its config and hooks)
        seen.append(line)
        if line.strip() == 'READY':
            return proc
    proc.kill()
    raise AssertionError('holder did not start:\n' + ''.join(seen[-40:]))


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def _snapshot(d: str) -> dict:
    """Every path under ``d`` with its size and mtime (ns): "wrote nothing" means this does not change."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = osp.join(root, name)
            st = os.stat(p)
            out[osp.relpath(p, d)] = (st.st_size, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# the lock itself
# ---------------------------------------------------------------------------------------------------------------------
def test_second_process_refused_with_owner_named_then_takes_over_after_sigkill(tmp_path):
    d = str(tmp_path / 'wd')
    holder = _start(HOLD_LOCK, d, RUN_LOCK)
    try:
        owner = owned_by_other_process(d)
        assert owner is not None and owner['pid'] == holder.pid
        t0 = time.monotonic()
        with pytest.raises(WorkDirBusyError) as info:
            WorkDirLock(d, wait_s=0.2).acquire()
        assert time.monotonic() - t0 < 5
        msg = str(info.value)
        assert f'pid {holder.pid} on host ' in msg and 'started 20' in msg and 'command: ' in msg, msg
        assert osp.join(osp.realpath(d), RUN_LOCK) in msg and '--work-dir' in msg, msg
        assert info.value.owner['pid'] == holder.pid and info.value.lock_path.endswith(RUN_LOCK)
    finally:
        _kill9(holder)
    # the kernel dropped the dead holder's flock: the stale lock is taken over, the dead owner reported
    assert osp.isfile(osp.join(d, RUN_LOCK)) and owned_by_other_process(d) is None
    lock = WorkDirLock(d).acquire()
    assert lock.took_over['pid'] == holder.pid
    assert f'pid {holder.pid}' in lock.takeover_message() and 'gone' in lock.takeover_message()
    record = json.load(open(osp.join(d, RUN_LOCK)))
    assert record['pid'] == os.getpid() and record['boot_id'] == boot_id()
    lock.release()
    assert not osp.exists(osp.join(d, RUN_LOCK))  # a normal release leaves nothing behind
    again = WorkDirLock(d).acquire()
    assert again.took_over is None  # ... so the next owner finds a free directory
    again.release()


def test_same_process_shares_and_releases_last(tmp_path):
    d = str(tmp_path / 'wd')
    a = WorkDirLock(d).acquire()
    b = WorkDirLock(d + '/.').acquire()  # same directory, another spelling: one lock, shared
    a.release()
    assert osp.isfile(osp.join(d, RUN_LOCK))
    probe = subprocess.run([sys.executable, '-c', HOLD_LOCK, d, RUN_LOCK], env=tv.subprocess_env(),
                           capture_output=True, text=True, input='', timeout=120)
    assert probe.returncode != 0 and f'pid {os.getpid()}' in probe.stderr, probe.stderr[-2000:]
    b.release()
    assert not osp.exists(osp.join(d, RUN_LOCK))


def test_forked_child_exit_does_not_release(tmp_path):
    """flock belongs to the open file description: a forked child (a DataLoader worker) exiting, even one that calls
    release() or is garbage-collected, leaves the parent's lock in place."""
    d = str(tmp_path / 'wd')
    lock = WorkDirLock(d).acquire()
    try:
        for how in ('exit', 'release', 'finalizer'):
            pid = os.fork()
            if pid == 0:  # child: exits the way a DataLoader worker does (os._exit), after release / its finalizer
                try:
                    if how == 'release':
                        lock.release()
                    elif how == 'finalizer':  # what garbage collection or interpreter exit would run
                        lock._finalizer()
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            assert osp.isfile(osp.join(d, RUN_LOCK)), how
            owner = subprocess.run([sys.executable, '-c', LOAD_LOCK_MODULE + 'print(wdl.owned_by_other_process('
                                    'sys.argv[1]))', d], env=tv.subprocess_env(), capture_output=True, text=True,
                                   timeout=120)
            assert f"'pid': {os.getpid()}" in owner.stdout, (how, owner.stdout, owner.stderr[-2000:])
    finally:
        lock.release()


def test_lock_of_another_machine_is_stale_only_after_its_heartbeat_stops(tmp_path):
    """A file system that does not pass flock between machines (NFS ``nolock``): the record decides."""
    d = tmp_path / 'wd'
    d.mkdir()
    path = d / RUN_LOCK
    path.write_text(json.dumps(dict(pid=4242, host='node-17', boot_id='another-kernel', started='2030-01-01 00:00:00',
                                    command='python tools/train.py cfg.py')))
    with pytest.raises(WorkDirBusyError, match=r'pid 4242 on host node-17.*another machine.*heartbeat'):
        WorkDirLock(str(d), stale_after_s=600).acquire()
    assert json.loads(path.read_text())['pid'] == 4242  # refused: the record is untouched
    old = time.time() - 3600
    os.utime(path, (old, old))  # its holder stopped touching it an hour ago
    lock = WorkDirLock(str(d), stale_after_s=600).acquire()
    assert lock.took_over['host'] == 'node-17' and lock.took_over['heartbeat_age_s'] >= 3500
    lock.release()


def test_heartbeat_touches_the_lock_file(tmp_path):
    d = str(tmp_path / 'wd')
    lock = WorkDirLock(d, heartbeat_s=0.05).acquire()
    path = osp.join(d, RUN_LOCK)
    old = time.time() - 3600
    os.utime(path, (old, old))
    time.sleep(0.5)
    assert time.time() - os.stat(path).st_mtime < 60
    lock.release()


def test_stale_tmp_cleanup_spares_a_directory_another_run_owns(tmp_path):
    d = str(tmp_path / 'wd')
    holder = _start(HOLD_LOCK, d, RUN_LOCK)
    inflight = osp.join(d, '.iter_3.pth.k2j4h5.tmp')  # the owner's checkpoint write in progress
    open(inflight, 'wb').write(b'\0' * 1024)
    try:
        assert remove_stale_tmp_files(d) == [] and osp.isfile(inflight)
    finally:
        _kill9(holder)
    assert remove_stale_tmp_files(d) == [osp.basename(inflight)]  # its owner is dead: now it is stale


# ---------------------------------------------------------------------------------------------------------------------
# tools/train.py, TransVAERunner
# ---------------------------------------------------------------------------------------------------------------------
def test_second_train_py_refused_writes_nothing_then_sigkill_take_over(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2)
    wd = str(tmp_path / 'wd')
    holder = _start(HOLD_RUNNER, cfg, wd)  # a real TransVAERunner owns wd (built, not yet training)
    inflight = osp.join(wd, '.iter_1.pth.a8d7f6.tmp')  # as if the holder were writing a checkpoint
    open(inflight, 'wb').write(b'\0' * 4096)
    before = _snapshot(wd)
    proc = subprocess.run([sys.executable, 'tools/train.py', cfg, '--work-dir', wd], cwd=tv.REPO,
                          env=tv.subprocess_env(), capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f'is in use by another run: pid {holder.pid} on host' in out and RUN_LOCK in out, out[-3000:]
    assert _snapshot(wd) == before  # no log dir, no log, no config dump, the in-flight .tmp not deleted

    # the holder killed by SIGKILL leaves run.lock behind; the next run takes it over, says so in its log, trains
    _kill9(holder)
    assert json.load(open(osp.join(wd, RUN_LOCK)))['pid'] == holder.pid
    runner = tv.build_runner(cfg, wd)
    runner.train()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert f'took over the lock of a run that is gone (pid {holder.pid} on host' in log
    assert not osp.exists(osp.join(wd, RUN_LOCK)) and not osp.exists(inflight)  # released; the dead .tmp cleared
    assert tv.load_ckpt(osp.join(wd, 'iter_2.pth'))['meta']['iter'] == 2


# ---------------------------------------------------------------------------------------------------------------------
# tools/extract_latents.py --out
# ---------------------------------------------------------------------------------------------------------------------
EXTRACT_MODEL = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                           attn_levels=[], mid_attn=False),
                     encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
                     rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


def test_extract_latents_out_owned_by_one_extraction(tmp_path, capsys):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("default_scope = 'transvae'\ncustom_imports = dict(imports=['tiny_vae_fixtures'])\n"
                   f"model = {EXTRACT_MODEL!r}\n"
                   "test_dataloader = dict(batch_size=2, collate_fn=dict(type='skip_none_collate'), "
                   "dataset=dict(type='TestTinyImages', num=4, size=16))\n")
    out = str(tmp_path / 'lat')
    argv = [str(cfg), 'none', '--random-weights', '--out', out, '--shard-size', '2', '--num-workers', '0',
            '--device', 'cpu']
    holder = _start(HOLD_LOCK, out, 'extract_latents.rank0.lock')  # what the tool's own_out_dir takes
    try:
        with pytest.raises(SystemExit) as info:
            extract_latents_cli.main(argv)
        msg = str(info.value.code)
        assert msg.startswith('error: ') and f'pid {holder.pid} on host' in msg and 'extract_latents.rank0.lock' in msg
        assert '--out' in msg
        assert os.listdir(out) == ['extract_latents.rank0.lock']  # nothing written
    finally:
        _kill9(holder)
    extract_latents_cli.main(argv)  # the killed extraction's lock is taken over
    assert f'took over the lock of a run that is gone (pid {holder.pid}' in capsys.readouterr().out
    assert len(list_shards(out)) == 2 and not [n for n in os.listdir(out) if n.endswith('.lock')]


# ---------------------------------------------------------------------------------------------------------------------
# study work dirs (projects/paper_studies/paper_studies/run.py)
# ---------------------------------------------------------------------------------------------------------------------
def test_study_driver_refuses_a_work_dir_another_driver_owns(tmp_path, monkeypatch):
    from projects.paper_studies.paper_studies import Variant, run
    root, v = str(tmp_path), Variant('cnn', 'cnn_vae')
    wd = run.work_dir_of(root, 'cnn', 0)
    holder = _start(HOLD_LOCK, wd, 'driver.lock')  # another driver, in another process
    monkeypatch.setattr(run.subprocess, 'Popen', lambda *a, **k: (_ for _ in ()).throw(AssertionError('trained')))
    try:
        with pytest.raises(run.BusyError, match=rf'pid {holder.pid} on host .*driver\.lock.*This driver skips it'):
            run.run_variant(v, 0, root, run.RunOptions(max_iters=2))
        assert sorted(os.listdir(wd)) == ['driver.lock']  # not even its fingerprint.json
    finally:
        _kill9(holder)
