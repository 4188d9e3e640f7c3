"""``TrainableEMA``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found unpinned:
the default momentum by value (two updates by hand), the momentum range and message, an explicit device for the
averaged tensors, which buffers are the EMA's own, an excluded root parameter, tied
weights named once, and the unwrapped module names under a (process-group-free) model wrapper."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transvae.models.averaged_model import TrainableEMA, _named_modules_unwrapped, named_tensors_unwrapped
from transvae.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module(name='MutationValuesWrapper', force=True)
class _Wrapper(nn.Module):
    """A model wrapper without a process group (what DDP is to ``unwrap_model``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class _Net(nn.Module):
    """A trainable conv + BN (its buffers are the EMA's own), a frozen BN encoder (shared), a root-level scale."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).requires_grad_(False)
        self.decoder = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
        self.scale = nn.Parameter(torch.tensor(1.5))


def test_default_momentum_by_value_and_range():
    torch.manual_seed(0)
    model = _Net()
    ema = TrainableEMA(model)
    assert ema.momentum == 2e-4 and not ema.update_buffers and ema.steps.dtype == torch.long
    w = model.decoder[0].weight
    ema.update_parameters(model)  # the first call copies
    w0 = w.detach().clone()
    with torch.no_grad():
        w.add_(3.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module.decoder[0].weight, w0 + 2e-4 * 3.0, rtol=0, atol=1e-7)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=rf'^momentum must be in \(0, 1\), got {bad}$'):
            TrainableEMA(model, momentum=bad)


def test_own_buffers_are_those_of_the_copied_modules():
    model = _Net()
    ema = TrainableEMA(model)
    assert set(ema.own_buffers) == {'decoder.1.running_mean', 'decoder.1.running_var', 'decoder.1.num_batches_tracked'}
    assert ema.module.encoder is model.encoder and ema.module.decoder is not model.decoder
    # an explicit device (the only one here: the CPU; a parameter's data cannot be swapped for a meta tensor)
    on_cpu = TrainableEMA(model, device=torch.device('cpu'))
    assert on_cpu.steps.device.type == 'cpu' and set(on_cpu.own_buffers) == set(ema.own_buffers)
    assert all(torch.equal(b, model.get_buffer(n)) for n, b in on_cpu.own_buffers.items())
    assert all(torch.equal(p, model.get_parameter(n)) for n, p in on_cpu.avg_parameters.items())


def test_exclude_names_a_root_parameter():
    model = _Net()
    assert 'scale' in TrainableEMA(model).avg_parameters
    ema = TrainableEMA(model, exclude=('scale', ))
    assert 'scale' not in ema.avg_parameters and ema.module.scale is model.scale


def test_tied_weights_are_named_once():
    model = _Net()
    model.encoder[0].weight = model.decoder[0].weight  # one tensor under two names, as torch names it
    names = [n for n, _ in named_tensors_unwrapped(model)]
    assert names == [n for n, _ in model.named_parameters()] and 'decoder.0.weight' not in names


def test_named_modules_unwrapped_names_and_wrappers():
    model = _Net()
    inner = model.decoder
    model._modules['decoder'] = _Wrapper(inner)
    rows = list(_named_modules_unwrapped(model))
    assert [r[0] for r in rows] == ['', 'encoder', 'encoder.0', 'encoder.1', 'decoder', 'decoder.0', 'decoder.1']
    wrappers = {name: w for name, _, w in rows}
    assert wrappers['decoder'] is model.decoder and wrappers['encoder'] is None and wrappers[''] is None
    assert dict((n, m) for n, m, _ in rows)['decoder'] is inner
    ema = TrainableEMA(model)
    assert ema.module.decoder is not inner and isinstance(ema.module.decoder, nn.Sequential)
    assert [n for n, _ in ema.module.named_parameters()] == [n for n, _ in named_tensors_unwrapped(model)]


def test_averaged_copies_are_frozen_and_hidden_networks_of_copied_modules_shared():
    """The averaged tensors never require grad; a plain-attribute network of a copied (trainable) module (like the
    LPIPS / foundation networks) is the model's own object, not a copy."""
    model = _Net()
    hidden = nn.Linear(2, 2)
    object.__setattr__(model.decoder, 'hidden', hidden)  # not a registered submodule
    ema = TrainableEMA(model)
    assert ema.module.decoder is not model.decoder and ema.module.decoder.hidden is hidden
    assert ema.avg_parameters and not any(p.requires_grad for p in ema.avg_parameters.values())
    assert all(p.requires_grad for p in model.decoder.parameters())  # the model's own stay trainable
