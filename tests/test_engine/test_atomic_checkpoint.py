"""TransVAERunner: interrupted checkpoint writes leave the previous checkpoint and pointer loadable."""
import os

import pytest
import torch

import tiny_vae_fixtures as tv

from transvae.engine.atomic_io import atomic_write, atomic_write_text
from transvae.engine.hooks import AtomicCheckpointHook


@pytest.fixture
def trained(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2, ckpt_interval=1)
    runner = tv.build_runner(cfg, str(tmp_path / 'wd'))
    runner.train()
    return runner, tmp_path / 'wd'


def _partial_save(obj, f, *args, **kwargs):
    f.write(b'PK\x03\x04 partial checkpoint bytes')
    f.flush()
    raise OSError('disk full (simulated)')


def test_atomic_hook_and_pointer(trained):
    runner, wd = trained
    assert any(type(h) is AtomicCheckpointHook for h in runner.hooks)
    assert (wd / 'last_checkpoint').read_text() == str(wd / 'iter_2.pth')


def test_interrupted_save_keeps_previous(trained, monkeypatch):
    runner, wd = trained
    before = tv.load_ckpt(str(wd / 'iter_2.pth'))
    hook = next(h for h in runner.hooks if isinstance(h, AtomicCheckpointHook))
    monkeypatch.setattr(torch, 'save', _partial_save)
    # a new checkpoint (iter_3) and an overwrite of the existing one both fail midway
    with pytest.raises(OSError, match='simulated'):
        hook._save_checkpoint_with_step(runner, 3, dict(epoch=0, iter=3))
    with pytest.raises(OSError, match='simulated'):
        runner.save_checkpoint(str(wd), 'iter_2.pth', by_epoch=False)
    monkeypatch.undo()

    assert not (wd / 'iter_3.pth').exists()
    assert not [p for p in os.listdir(wd) if p.endswith('.tmp')]  # temp files cleaned up
    assert (wd / 'last_checkpoint').read_text() == str(wd / 'iter_2.pth')
    assert (wd / 'iter_1.pth').exists()  # pruning happens only after a successful save
    after = tv.load_ckpt(str(wd / 'iter_2.pth'))
    for k, v in before['state_dict'].items():
        assert torch.equal(v, after['state_dict'][k])

    # auto-resume follows the pointer to the intact file
    runner2 = tv.build_runner(str(wd.parent / 'tiny.py'), str(wd), dict(resume=True, train_cfg=dict(max_iters=3)))
    runner2.train()
    assert tv.load_ckpt(str(wd / 'iter_3.pth'))['meta']['iter'] == 3


def test_checkpoint_file_write_is_atomic(trained, monkeypatch):
    """The runner writes local checkpoints through the atomic backend: a write that fails after the bytes went out
    (here: fsync) leaves the previous file under the final name and no temp file."""
    runner, wd = trained
    before = (wd / 'iter_2.pth').read_bytes()

    def failing_fsync(fd):
        raise OSError('fsync failed (simulated)')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='simulated'):
        runner.save_checkpoint(str(wd), 'iter_2.pth', by_epoch=False)
    monkeypatch.undo()
    assert (wd / 'iter_2.pth').read_bytes() == before
    assert not [p for p in os.listdir(wd) if p.endswith('.tmp')]


def test_atomic_pointer_write_interrupted(tmp_path):
    p = tmp_path / 'last_checkpoint'
    atomic_write_text(str(p), '/a/iter_1.pth')

    class Boom(Exception):
        pass

    def bad_write(f):
        f.write('/a/iter_')
        raise Boom

    with pytest.raises(Boom):
        atomic_write(str(p), bad_write, mode='w')
    assert p.read_text() == '/a/iter_1.pth' and len(list(tmp_path.iterdir())) == 1


def test_refuses_nonfinite_weights(trained):
    runner, wd = trained
    size = (wd / 'iter_2.pth').stat().st_size
    with torch.no_grad():
        next(runner.model.parameters())[0].fill_(float('nan'))
    with pytest.raises(RuntimeError, match='non-finite weights'):
        runner.save_checkpoint(str(wd), 'iter_2.pth', by_epoch=False)
    assert (wd / 'iter_2.pth').stat().st_size == size
    assert all(torch.isfinite(v).all() for v in tv.load_ckpt(str(wd / 'iter_2.pth'))['state_dict'].values())
