"""SafeOptimWrapper / SafeAmpOptimWrapper: skip non-finite steps, count them, abort after too many in a row."""

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub

import tiny_vae_fixtures as tv

from transvae.engine.optimizers import SafeAmpOptimWrapper, SafeOptimWrapper
from transvae.registry import OPTIM_WRAPPERS


def _setup(cls=SafeOptimWrapper, **kw):
    hub = MessageHub.get_instance(f'safe-optim-{id(kw)}-{cls.__name__}')
    MessageHub._instance_dict.move_to_end(hub.instance_name)  # make it current
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    wrapper = cls(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kw)
    return model, wrapper, hub


def _loss(model, bad=False):
    loss = model(torch.ones(3, 4)).sum()
    return loss * float('nan') if bad else loss


@pytest.mark.parametrize('cls', [SafeOptimWrapper, SafeAmpOptimWrapper])
def test_skip_count_and_abort(cls):
    if cls is SafeAmpOptimWrapper and torch.cuda.is_available():
        pytest.skip('CPU bf16 path')
    model, wrapper, hub = _setup(cls, max_consecutive=3)
    w0 = model.weight.detach().clone()
    wrapper.update_params(_loss(model, bad=True))
    assert torch.equal(model.weight, w0) and model.weight.grad is None
    assert hub.get_info('nonfinite_steps') == 1 and wrapper.consecutive_nonfinite == 1
    wrapper.update_params(_loss(model))  # a good step resets the run
    assert not torch.equal(model.weight, w0) and wrapper.consecutive_nonfinite == 0
    w1 = model.weight.detach().clone()
    wrapper.update_params(_loss(model, bad=True))
    wrapper.update_params(_loss(model, bad=True))
    with pytest.raises(RuntimeError, match='last good checkpoint'):
        wrapper.update_params(_loss(model, bad=True))
    assert torch.equal(model.weight, w1) and hub.get_info('nonfinite_steps') == 4


def test_nonfinite_gradient_with_finite_loss():
    model, wrapper, hub = _setup(max_consecutive=5)
    w0 = model.weight.detach().clone()
    model.weight.register_hook(lambda g: g * float('inf'))
    wrapper.update_params(_loss(model))
    assert torch.equal(model.weight, w0) and hub.get_info('nonfinite_steps') == 1


def test_registered_and_cpu_amp_state_dict():
    assert OPTIM_WRAPPERS.get('SafeOptimWrapper') is SafeOptimWrapper
    assert OPTIM_WRAPPERS.get('SafeAmpOptimWrapper') is SafeAmpOptimWrapper
    if torch.cuda.is_available():
        return
    model, wrapper, _ = _setup(SafeAmpOptimWrapper)
    assert wrapper.cast_dtype == torch.bfloat16 and wrapper.loss_scaler is None
    with wrapper.optim_context(model):
        y = model(torch.ones(3, 4))
    assert y.dtype == torch.bfloat16
    wrapper.update_params(y.float().sum())
    sd = wrapper.state_dict()
    wrapper.load_state_dict(sd)
    with pytest.raises(ValueError, match='bfloat16'):
        SafeAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')


def test_runner_skips_one_nan_iteration(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=3, val_interval=3, nan_at_iters=(1,))
    runner = tv.build_runner(cfg, str(tmp_path / 'wd'))
    runner.train()
    assert runner.message_hub.get_info('nonfinite_steps') == 1
    ckpt = tv.load_ckpt(str(tmp_path / 'wd' / 'iter_3.pth'))
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())
    assert ckpt['message_hub']['runtime_info']['nonfinite_steps'] == 1


def test_runner_aborts_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=6, val_interval=6, nan_at_iters=(2, 3, 4, 5),
                          max_consecutive=2)
    wd = tmp_path / 'wd'
    runner = tv.build_runner(cfg, str(wd))
    with pytest.raises(RuntimeError, match='consecutive optimizer steps'):
        runner.train()
    # iterations 0, 1 were good, 2 and 3 skipped. iter_2.pth / iter_3.pth hold the weights after step 1, whose next
    # forward (iteration 2) was not finite: unproven, so last_checkpoint stays on iter_1.pth (proven by iteration 1)
    last = (wd / 'last_checkpoint').read_text()
    assert last.endswith('iter_1.pth')
    assert (wd / 'iter_3.pth').is_file()  # written, kept on disk, but not named by the pointer
    ckpt = tv.load_ckpt(last)
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())
