"""The non-finite guard never blesses a poisoned checkpoint; huge learning rates go through it; --resume-lr works."""
import glob
import os.path as osp

import pytest
import torch

import rel_helpers as rh
import tiny_vae_fixtures as tv
from transvae.apis import train_cli


def _run(tmp_path, lr: float, max_iters: int = 12):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=max_iters, val_interval=100, ckpt_interval=2,
                          max_consecutive=3)
    wd = str(tmp_path / 'wd')
    runner = rh.build_runner(cfg, wd, cfg_options={'optim_wrapper.optimizer.lr': lr, 'param_scheduler': []})
    with pytest.raises(RuntimeError) as info:
        runner.train()
    return cfg, wd, str(info.value)


def _training_forward_finite(cfg: str, ckpt: str) -> bool:
    """The training forward (sampled posterior) of the checkpoint's weights on the training images is finite."""
    from transvae.apis import init_model
    model = init_model(cfg, ckpt)
    x = torch.stack([tv.TinyImages(num=8, size=16)[i]['inputs'] for i in range(8)]).float() / 127.5 - 1
    torch.manual_seed(0)
    with torch.no_grad():
        return bool(torch.isfinite(model.dec(model.encode(x, sample=True))).all())


def test_poisoned_checkpoint_never_becomes_last(tmp_path):
    """lr 1e3: finite but huge weights give NaN; the checkpoint written in the skipped streak is not the last."""
    cfg, wd, msg = _run(tmp_path, 1e3)
    assert 'consecutive optimizer steps' in msg and '--resume-lr' in msg
    last = open(osp.join(wd, 'last_checkpoint')).read().strip()
    newest = max(glob.glob(osp.join(wd, 'iter_*.pth')), key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
    assert newest != last
    assert not _training_forward_finite(cfg, newest)  # what the pointer named before the fix: NaN output
    assert _training_forward_finite(cfg, last)
    ckpt = rh.load_ckpt(last)
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())


def test_huge_learning_rate_goes_through_the_guard(tmp_path):
    _, wd, msg = _run(tmp_path, 1e42, max_iters=6)
    assert 'learning rate 1e+42' in msg and 'overflow' not in msg


def test_resume_lr_overrides_the_restored_learning_rate(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=6, val_interval=100, ckpt_interval=3)
    wd = str(tmp_path / 'wd')
    train_cli.main([cfg, '--work-dir', wd, '--max-iters', '3'])
    full = rh.load_ckpt(osp.join(wd, 'iter_3.pth'))
    train_cli.main([cfg, '--work-dir', wd, '--resume', '--resume-lr', '1e-4'])  # config base lr 1e-3 -> x0.1
    resumed = rh.load_ckpt(osp.join(wd, 'iter_6.pth'))
    lr3 = full['optimizer']['param_groups'][0]['lr']
    lr6 = resumed['optimizer']['param_groups'][0]['lr']
    assert resumed['optimizer']['param_groups'][0]['initial_lr'] == pytest.approx(1e-4)
    # LinearLR warm-up ended at iteration 4: an uninterrupted run ends at the base lr 1e-3, this one at 1e-4
    assert lr6 == pytest.approx(1e-4) and lr3 < 1e-3
    with pytest.raises(SystemExit):
        train_cli.main([cfg, '--work-dir', wd, '--resume-lr', '1e-4'])
