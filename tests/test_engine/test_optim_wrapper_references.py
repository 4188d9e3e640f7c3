"""The optimizer wrappers and the multi-optimizer constructor of ``transvae/engine/optimizers`` by value (issue 23).

* The non-finite guard (every registered transvae optim wrapper): a skipped step leaves the parameters AND the
  optimizer state (AdamW moments, step count) bit-identical, and the run continues exactly as a plain ``torch.optim``
  loop that never saw the bad batch; the counters (``consecutive_nonfinite``, ``applied_steps``, the message hub's
  ``nonfinite_steps``) follow a hand-written sequence; the abort comes on exactly the ``max_consecutive``-th skip in a
  row (5 by default, 3 when set).
* Gradient-norm clipping with ``max_norm != 1`` and p = 2, 1, inf (also through the sharded-gradient path, which is
  the local norm in one process) equals ``torch.nn.utils.clip_grad_norm_`` followed by the same optimizer step, and
  the logged ``train/grad_norm`` is the pre-clip norm.
* ``VAEGANOptimWrapperConstructor``: the parameters and hyper-parameters of each optimizer against a hand list.

Everything is looked up in the registries by name, so the tests do not depend on the module layout.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from torch import nn

import slot_registry  # noqa: F401  (registers every transvae module)
from transvae.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

pytestmark = pytest.mark.usefixtures('one_thread')

ADAMW = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)  # non-default everything


def _transvae_names(registry) -> list[str]:
    return sorted(n for n, c in registry.module_dict.items() if c.__module__.startswith('transvae.'))


GUARDED = _transvae_names(OPTIM_WRAPPERS)


@pytest.fixture(autouse=True)
def hub(request) -> MessageHub:
    """A fresh current message hub per test (the wrappers count skips in its runtime info)."""
    init_default_scope('transvae')
    hub = MessageHub.get_instance(f'h9-optim-{request.node.name}')
    MessageHub._instance_dict.move_to_end(hub.instance_name)  # make it the current one
    return hub


def toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2))


def batch(i: int) -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(100 + i))


def loss_of(model: nn.Module, i: int) -> torch.Tensor:
    return (model(batch(i)) - 0.3).pow(2).sum()


def wrapper_of(name: str, model: nn.Module, **kw):
    if name == 'SafeAmpOptimWrapper' and torch.cuda.is_available():
        pytest.skip('the CPU (bf16, no loss scaler) path of SafeAmpOptimWrapper')
    return OPTIM_WRAPPERS.build(dict(type=name, optimizer=torch.optim.AdamW(model.parameters(), **ADAMW), **kw))


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[list, dict]:
    return [p.detach().clone() for p in model.parameters()], copy.deepcopy(optimizer.state_dict())


def assert_same_state(a: tuple[list, dict], b: tuple[list, dict]) -> None:
    """Bit-identical parameters and optimizer state (every tensor of every param's state, incl. ``step``)."""
    for p, q in zip(a[0], b[0]):
        assert torch.equal(p, q)
    sa, sb = a[1]['state'], b[1]['state']
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for key in sa[k]:
            assert torch.equal(torch.as_tensor(sa[k][key]), torch.as_tensor(sb[k][key])), (k, key)
    assert a[1]['param_groups'] == b[1]['param_groups']


# ----------------------------------------------------------------------------------------------- the guard
@pytest.mark.parametrize('name', GUARDED)
@pytest.mark.parametrize('bad', ['nan_loss', 'inf_grad_one_element'])
def test_skipped_step_changes_nothing_and_training_continues_exactly(name, bad):
    """Good, good, BAD, good, good through the wrapper == good x 4 through a plain AdamW loop, bit for bit; right
    after the bad step the parameters and the AdamW moments / step count are those before it and no grad is left."""
    model, ref = toy(), toy()
    wrapper = wrapper_of(name, model)
    ref_opt = torch.optim.AdamW(ref.parameters(), **ADAMW)
    good = [0, 1, 3, 4]
    for i in range(5):
        if i == 2:
            before = snapshot(model, wrapper.optimizer)
            if bad == 'nan_loss':
                wrapper.update_params(loss_of(model, i) * float('nan'))
            else:  # a finite loss, one gradient element of one parameter infinite: nothing may move
                h = model[2].bias.register_hook(lambda g: g.index_fill(0, torch.tensor([1]), float('inf')))
                wrapper.update_params(loss_of(model, i))
                h.remove()
            assert_same_state(snapshot(model, wrapper.optimizer), before)
            assert all(p.grad is None for p in model.parameters())
            continue
        wrapper.update_params(loss_of(model, i))
    for i in good:
        loss_of(ref, i).backward()
        ref_opt.step()
        ref_opt.zero_grad()
    assert_same_state(snapshot(model, wrapper.optimizer), snapshot(ref, ref_opt))
    assert int(wrapper.optimizer.state_dict()['state'][0]['step']) == 4


@pytest.mark.parametrize('name', GUARDED)
def test_counters_follow_a_hand_sequence(name, hub):
    """max_consecutive = 3: g b b g b b B (B raises). Hand-written counters after each step."""
    model = toy()
    wrapper = wrapper_of(name, model, max_consecutive=3)
    assert wrapper.max_consecutive == 3
    seq = 'gbbgbb'
    want_consecutive = [0, 1, 2, 0, 1, 2]
    want_applied = [1, 1, 1, 2, 2, 2]
    want_hub = [0, 1, 2, 2, 3, 4]
    for i, kind in enumerate(seq):
        loss = loss_of(model, i)
        wrapper.update_params(loss if kind == 'g' else loss * float('inf'))
        assert (wrapper.consecutive_nonfinite, wrapper.applied_steps,
                int(hub.get_info('nonfinite_steps', 0) or 0)) == (want_consecutive[i], want_applied[i], want_hub[i]), i
    kept = snapshot(model, wrapper.optimizer)
    with pytest.raises(RuntimeError, match='3 consecutive optimizer steps'):
        wrapper.update_params(loss_of(model, 6) * float('nan'))
    assert hub.get_info('nonfinite_steps') == 5 and wrapper.consecutive_nonfinite == 3
    assert_same_state(snapshot(model, wrapper.optimizer), kept)


@pytest.mark.parametrize('name', GUARDED)
def test_default_aborts_on_exactly_the_fifth_skip_in_a_row(name, hub):
    model = toy()
    wrapper = wrapper_of(name, model)
    assert wrapper.max_consecutive == 5
    for i in range(4):
        wrapper.update_params(loss_of(model, i) * float('nan'))
    assert wrapper.consecutive_nonfinite == 4 and wrapper.applied_steps == 0
    with pytest.raises(RuntimeError, match='5 consecutive optimizer steps'):
        wrapper.update_params(loss_of(model, 4) * float('nan'))
    assert hub.get_info('nonfinite_steps') == 5


@pytest.mark.parametrize('name', GUARDED)
def test_unrepresentable_learning_rate_is_a_skip(name, hub):
    """lr = 1e39 overflows float32: the step is skipped (counted), the parameters do not move."""
    model = toy()
    wrapper = wrapper_of(name, model)
    wrapper.update_params(loss_of(model, 0))
    for g in wrapper.optimizer.param_groups:
        g['lr'] = 1e39
    before = snapshot(model, wrapper.optimizer)
    wrapper.update_params(loss_of(model, 1))
    assert_same_state(snapshot(model, wrapper.optimizer), before)
    assert (wrapper.consecutive_nonfinite, wrapper.applied_steps, hub.get_info('nonfinite_steps')) == (1, 1, 1)


def test_check_grads_false_checks_the_loss_only():
    """The non-default ``check_grads=False``: a finite loss with an infinite gradient IS applied (the documented
    trade-off), a NaN loss is still skipped."""
    model = toy()
    wrapper = wrapper_of('SafeOptimWrapper', model, check_grads=False)
    h = model[2].bias.register_hook(lambda g: g * float('inf'))
    wrapper.update_params(loss_of(model, 0))
    h.remove()
    assert wrapper.applied_steps == 1 and not torch.isfinite(model[2].bias).all()
    wrapper.update_params(loss_of(model, 1) * float('nan'))
    assert wrapper.applied_steps == 1 and wrapper.consecutive_nonfinite == 1


# ----------------------------------------------------------------------------------------------- gradient clipping
@pytest.mark.parametrize('name', GUARDED)
@pytest.mark.parametrize('max_norm,norm_type,sharded', [(0.7, 2.0, False), (0.3, 1.0, False),
                                                        (0.05, math.inf, False), (0.7, 2.0, True),
                                                        (0.3, 1.0, True), (0.05, math.inf, True),
                                                        (1e6, 2.0, False)])
def test_clip_grad_norm_matches_torch(name, hub, max_norm, norm_type, sharded):
    """``clip_grad=dict(max_norm, norm_type)`` == ``torch.nn.utils.clip_grad_norm_`` then AdamW's step, over three
    steps; ``train/grad_norm`` is the pre-clip norm, also computed by hand; max_norm 1e6 does not bind."""
    model, ref = toy(), toy()
    wrapper = wrapper_of(name, model, clip_grad=dict(max_norm=max_norm, norm_type=norm_type), sharded_grads=sharded)
    ref_opt = torch.optim.AdamW(ref.parameters(), **ADAMW)
    for i in range(3):
        wrapper.update_params(loss_of(model, i) * 40)
        loss_of(ref, i).mul(40).backward()
        grads = torch.cat([p.grad.flatten() for p in ref.parameters()]).double()
        p_norm = grads.abs().max() if math.isinf(norm_type) else grads.abs().pow(norm_type).sum() ** (1 / norm_type)
        hand = float(p_norm)
        total = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm, norm_type)
        assert math.isclose(hand, float(total), rel_tol=1e-5)
        if max_norm < 1e6:
            assert hand > 2 * max_norm  # the clip binds
        assert math.isclose(hub.get_scalar('train/grad_norm').current(), float(total), rel_tol=1e-6)
        ref_opt.step()
        ref_opt.zero_grad()
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_clip_grad_value_matches_torch():
    model, ref = toy(), toy()
    wrapper = wrapper_of('SafeOptimWrapper', model, clip_grad=dict(type='value', clip_value=0.02))
    ref_opt = torch.optim.AdamW(ref.parameters(), **ADAMW)
    wrapper.update_params(loss_of(model, 0))
    loss_of(ref, 0).backward()
    torch.nn.utils.clip_grad_value_(ref.parameters(), 0.02)
    ref_opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------------------------- the constructor
class ToyGAN(nn.Module):
    """Generator parts, a frozen part, a learnable scalar and a discriminator, in a known parameter order
    (``parameters()``: the root's own ``logvar`` first, then the children in definition order)."""

    def __init__(self, with_disc: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.frozen = nn.Linear(2, 2).requires_grad_(False)
        self.decoder = nn.Linear(4, 3, bias=False)
        self.logvar = nn.Parameter(torch.zeros(()))
        if with_disc:
            self.discriminator = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1))
            self.discriminator[1].bias.requires_grad_(False)


def build_constructor(cfg: dict):
    return OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='VAEGANOptimWrapperConstructor', optim_wrapper_cfg=cfg))


def _ids(params) -> list[int]:
    return [id(p) for p in params]


def test_constructor_params_and_hyper_parameters_against_a_hand_list():
    """Shared ``clip_grad`` (a default), a shared partial ``optimizer=dict(lr=...)`` (wins over both entries), each
    entry's own optimizer type / betas / momentum kept; the generator gets every trainable non-discriminator parameter
    in model order, the discriminator its trainable ones; frozen parameters in neither."""
    model = ToyGAN()
    cfg = dict(
        generator=dict(type='SafeOptimWrapper', max_consecutive=4,
                       optimizer=dict(type='AdamW', lr=3e-4, betas=(0.5, 0.9), weight_decay=0.01)),
        discriminator=dict(optimizer=dict(type='SGD', lr=2e-3, momentum=0.7), clip_grad=dict(max_norm=2.5)),
        clip_grad=dict(max_norm=0.5),
        optimizer=dict(lr=1e-4))
    wrappers = build_constructor(cfg)(model)
    assert sorted(wrappers.optim_wrappers) == ['discriminator', 'generator']
    gen, disc = wrappers['generator'], wrappers['discriminator']
    assert type(gen).__name__ == 'SafeOptimWrapper' and gen.max_consecutive == 4
    assert type(disc) is OPTIM_WRAPPERS.get('OptimWrapper')
    want_gen = [model.logvar, model.encoder.weight, model.encoder.bias, model.decoder.weight]  # root's own first
    want_disc = [model.discriminator[0].weight, model.discriminator[0].bias, model.discriminator[1].weight]
    (g_group, ), (d_group, ) = gen.optimizer.param_groups, disc.optimizer.param_groups
    assert _ids(g_group['params']) == _ids(want_gen) and _ids(d_group['params']) == _ids(want_disc)
    assert isinstance(gen.optimizer, torch.optim.AdamW) and isinstance(disc.optimizer, torch.optim.SGD)
    assert (g_group['lr'], g_group['betas'], g_group['weight_decay']) == (1e-4, (0.5, 0.9), 0.01)
    assert (d_group['lr'], d_group['momentum']) == (1e-4, 0.7)
    assert gen.clip_grad_kwargs == dict(max_norm=0.5) and disc.clip_grad_kwargs == dict(max_norm=2.5)


def test_constructor_complete_shared_optimizer_is_a_default_the_entries_refine():
    model = ToyGAN()
    cfg = dict(optimizer=dict(type='Adam', lr=5e-4, betas=(0.6, 0.95)),
               generator=dict(optimizer=dict(lr=7e-5)),
               discriminator=dict(type='SafeOptimWrapper', optimizer=dict(betas=(0.1, 0.2))))
    wrappers = build_constructor(cfg)(model)
    (g, ), (d, ) = wrappers['generator'].optimizer.param_groups, wrappers['discriminator'].optimizer.param_groups
    assert isinstance(wrappers['generator'].optimizer, torch.optim.Adam)
    assert (g['lr'], g['betas']) == (7e-5, (0.6, 0.95)) and (d['lr'], d['betas']) == (5e-4, (0.1, 0.2))


def test_constructor_without_discriminator_and_errors():
    model = ToyGAN(with_disc=False)
    wrappers = build_constructor(dict(generator=dict(optimizer=dict(type='SGD', lr=0.3)),
                                      discriminator=dict(optimizer=dict(type='SGD', lr=0.1))))(model)
    assert list(wrappers.optim_wrappers) == ['generator']
    (g, ) = wrappers['generator'].optimizer.param_groups
    assert _ids(g['params']) == _ids([model.logvar, model.encoder.weight, model.encoder.bias, model.decoder.weight])
    assert g['lr'] == 0.3
    with pytest.raises(ValueError, match='generator'):
        build_constructor(dict(discriminator=dict(optimizer=dict(type='SGD', lr=0.1))))
    with pytest.raises(ValueError, match='paramwise_cfg'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='VAEGANOptimWrapperConstructor', optim_wrapper_cfg=dict(
            generator=dict(optimizer=dict(type='SGD', lr=0.1))), paramwise_cfg=dict(norm_decay_mult=0.0)))


# ----------------------------------------------------------------------------------------------- the table
OPTIM_REFERENCES = {
    'SafeOptimWrapper': ('test_skipped_step_changes_nothing_and_training_continues_exactly',
                         'test_counters_follow_a_hand_sequence', 'test_clip_grad_norm_matches_torch'),
    'SafeAmpOptimWrapper': ('test_skipped_step_changes_nothing_and_training_continues_exactly',
                            'test_counters_follow_a_hand_sequence', 'test_clip_grad_norm_matches_torch'),
    'VAEGANOptimWrapperConstructor': ('test_constructor_params_and_hyper_parameters_against_a_hand_list', ),
}


@pytest.mark.parametrize('name', GUARDED + _transvae_names(OPTIM_WRAPPER_CONSTRUCTORS))
def test_every_registered_wrapper_and_constructor_has_a_reference(name):
    if name not in OPTIM_REFERENCES:
        pytest.fail(f'{name} is a registered transvae optim wrapper / constructor without a value reference: add it '
                    'to OPTIM_REFERENCES in tests/test_engine/test_optim_wrapper_references.py')
    for test_name in OPTIM_REFERENCES[name]:
        assert callable(globals().get(test_name)), test_name


def test_the_table_is_the_registry():
    assert set(GUARDED + _transvae_names(OPTIM_WRAPPER_CONSTRUCTORS)) == set(OPTIM_REFERENCES)
