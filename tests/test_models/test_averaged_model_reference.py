"""TrainableEMA by value (issue 23): momenta where ``m`` and ``1 - m`` differ (0.9, 0.999, 0.25), checked against a
hand update over several steps; the update interval; buffers copied or averaged; frozen and excluded parameters
untouched. mmengine's convention: ``ema <- (1 - m) * ema + m * x`` (``m`` = 1 - decay), the first call copies."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transvae.models.averaged_model import TrainableEMA

pytestmark = pytest.mark.usefixtures('one_thread')


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.frozen = nn.Linear(4, 2)
        self.frozen.requires_grad_(False)
        self.discriminator = nn.Linear(2, 1)


def perturb(model: Net, step: int) -> None:
    """A new, deterministic value for every parameter and float buffer (what an optimizer step and BN would do)."""
    g = torch.Generator().manual_seed(100 + step)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g))
        model.bn.running_mean.copy_(torch.randn(4, generator=g))
        model.bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        model.bn.num_batches_tracked.fill_(step)


def averaged(ema: TrainableEMA) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ema.module.state_dict().items()}


@pytest.mark.parametrize('momentum', [0.9, 0.999, 0.25])
@pytest.mark.parametrize('interval', [1, 2])
@pytest.mark.parametrize('update_buffers', [False, True])
def test_ema_matches_hand_update(momentum, interval, update_buffers):
    torch.manual_seed(0)
    model = Net()
    ema = TrainableEMA(model, momentum=momentum, interval=interval, update_buffers=update_buffers)
    averaged_keys = {'body.weight', 'body.bias', 'bn.weight', 'bn.bias'}
    assert set(ema.avg_parameters) == averaged_keys
    frozen0 = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(('frozen', 'discriminator'))}
    hand: dict[str, torch.Tensor] = {}
    for step in range(5):
        perturb(model, step)
        src = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ema.update_parameters(model)
        for k in averaged_keys | {'bn.running_mean', 'bn.running_var'}:
            is_buffer = k.startswith('bn.running')
            if step == 0 or (is_buffer and not update_buffers):
                hand[k] = src[k]  # the first call copies; buffers are copied unless averaged
            elif step % interval == 0:
                hand[k] = (1.0 - momentum) * hand[k] + momentum * src[k]
        got = averaged(ema)
        for k, v in hand.items():
            torch.testing.assert_close(got[k], v, rtol=1e-6, atol=1e-7, msg=f'{k} at step {step}')
        # integer buffers: copied at every step, or (update_buffers, as mmengine's BaseAveragedModel) only at the first
        assert int(got['bn.num_batches_tracked']) == (0 if update_buffers else step)
        assert int(ema.steps) == step + 1
    # frozen and excluded parameters are the model's own tensors (shared), never averaged
    own = ema.module.state_dict()
    for k, v in frozen0.items():
        assert own[k].data_ptr() == model.state_dict()[k].data_ptr()
        if k.startswith('frozen'):
            assert torch.equal(own[k], v)


def test_three_steps_written_out():
    """momentum 0.9 on one scalar: 1.0 (copied), then 0.1*1 + 0.9*3 = 2.8, then 0.1*2.8 + 0.9*(-1) = -0.62."""
    model = nn.Linear(1, 1, bias=False)
    ema = TrainableEMA(model, momentum=0.9, exclude=())
    for value, want in [(1.0, 1.0), (3.0, 2.8), (-1.0, -0.62)]:
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update_parameters(model)
        assert abs(float(ema.module.weight) - want) < 1e-6
