"""FSDP through FlexibleRunner on CPU (gloo): the block wrap policy, frozen modules, global-norm clipping, end to end.

The end-to-end test trains a tiny stage-1 VAEGAN (TransVAE encoder / decoder, LPIPS and VF loss with random
weights) on 2 gloo ranks through ``tools/dist_train.sh``, resumes it, loads the checkpoint into unwrapped models and
evaluates it with ``tools/test.py``. The clipping test shards a small model over 2 spawned ranks and compares the
clip coefficient with the one of the full, unsharded gradient.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import os.path as osp
from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import tiny_vae_fixtures as tv

from transvae.apis.entry import check_strategy_runner
from transvae.engine.config_validation import ConfigValueError
from transvae.engine.fsdp import (check_fsdp_model, frozen_submodules, fsdp_config_for_eval, is_fsdp_config,
                                  move_unmanaged_states, transvae_block_wrap_policy)
from transvae.engine.dist_setup import shutdown_distributed
from transvae.registry import FUNCTIONS, MODELS, STRATEGIES

ARCH = dict(widths=[8, 16, 16], depths=[1, 1, 1], latent_channels=4, num_cnn_stages=1, head_dim=8)


def tiny_stage1(**overrides) -> dict:
    """A stage-1 VAEGAN config: TransVAE (ResBlock stage + 2 Transformer stages), LPIPS + VF with random nets."""
    cfg = dict(type='VAEGAN', arch=dict(ARCH), encoder=dict(type='TransVAEEncoder'),
               decoder=dict(type='TransVAEDecoder'),
               rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=dict(type='LPIPS', net='alex',
                                                                           pretrained=False)),
               vf_loss=dict(type='VFLoss', foundation_cfg=dict(type='VGG16Proxy', pretrained=False, resize=None)))
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------------------------------------------------------------
# (a) wrap policy, frozen modules, model checks (single process)
# ---------------------------------------------------------------------------------------------------------------------
BLOCK_KWARGS = dict(TransVAEBlock=dict(embed_dims=16, head_dim=8), ViTBlock=dict(embed_dims=16, head_dim=8),
                    SwinBlock=dict(embed_dims=16, head_dim=8, window_size=4), ResBlock=dict(in_channels=32),
                    AttnBlock=dict(in_channels=32))


@pytest.mark.parametrize('name', sorted(BLOCK_KWARGS))
def test_policy_wraps_every_default_block(name):
    """Every block is a unit because its class says so (``fsdp_unit``, inherited from the block base class)."""
    block = MODELS.build(dict(type=name, **BLOCK_KWARGS[name]))
    assert type(block).fsdp_unit is True
    assert transvae_block_wrap_policy(block, recurse=False, nonwrapped_numel=0)
    assert not any(transvae_block_wrap_policy(m, recurse=False, nonwrapped_numel=0) for m in block.children())
    assert transvae_block_wrap_policy(block, recurse=True, nonwrapped_numel=0)  # always descend


def test_policy_selects_blocks_not_loss_networks():
    torch.manual_seed(0)
    model = MODELS.build(tiny_stage1())
    assert FUNCTIONS.get('transvae_block_wrap_policy') is transvae_block_wrap_policy
    selected = [n for n, m in model.named_modules() if transvae_block_wrap_policy(m, False, 0)]
    block_classes = tuple(MODELS.get(t) for t in BLOCK_KWARGS)
    assert selected == [n for n, m in model.named_modules() if isinstance(m, block_classes)]
    assert {type(m).__name__ for n, m in model.named_modules() if n in selected} == {'ResBlock', 'TransVAEBlock'}
    assert any(n.startswith('encoder.') for n in selected) and any(n.startswith('decoder.') for n in selected)
    assert not any(n.startswith(('rec_loss', 'vf_loss', 'kl_loss')) for n in selected)
    # the frozen LPIPS / foundation networks are not even submodules: FSDP never sees their parameters
    visible = set(model.modules())
    for hidden in (model.rec_loss.perceptual.lpips_module, model.vf_loss.foundation.net):
        assert not any(m in visible for m in hidden.modules())
        assert not any(transvae_block_wrap_policy(m, False, 0) for m in hidden.modules())
    assert frozen_submodules(model) == []  # nothing else frozen: nothing to ignore

    # block_types by registered name (so a user block can be named) or class; unknown names are an error
    only_res = functools.partial(transvae_block_wrap_policy, block_types=['ResBlock'])
    assert {type(m).__name__ for m in model.modules() if only_res(m, False, 0)} == {'ResBlock'}
    with pytest.raises(KeyError, match='TransVAEBlok'):
        transvae_block_wrap_policy(model, False, 0, block_types=['TransVAEBlok'])


def test_policy_wraps_a_user_block_by_its_base_class():
    """A block defined outside transvae (not registered, not named anywhere) is a unit through its base class; a
    class can opt out with ``fsdp_unit = False``."""
    from transvae.models.blocks import ConvBlock

    class UserBlock(ConvBlock):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x)

    class SharedWithParent(UserBlock):
        fsdp_unit = False

    assert transvae_block_wrap_policy(UserBlock(), False, 0)
    assert not transvae_block_wrap_policy(SharedWithParent(), False, 0)
    assert not transvae_block_wrap_policy(nn.Conv2d(4, 4, 1), False, 0)


def test_frozen_submodules_never_include_trainable_params():
    model = MODELS.build(tiny_stage1(freeze_encoder=True, rec_loss=dict(type='ReconstructionNLL',
                                                                         perceptual_cfg=None, learn_logvar=False)))
    assert [n for n, _ in frozen_submodules(model)] == ['encoder', 'rec_loss', 'vf_loss']
    model = MODELS.build(tiny_stage1())
    model.encoder.conv_in.requires_grad_(False)
    model.decoder.conv_out.weight.requires_grad_(False)  # its bias stays trainable: the conv is not ignored
    assert [n for n, _ in frozen_submodules(model)] == ['encoder.conv_in']
    for _, m in frozen_submodules(model):
        assert not any(p.requires_grad for p in m.parameters())


def test_move_unmanaged_states_moves_what_fsdp_skips():
    """FSDP moves managed parameters one by one: ignored modules and hidden networks are moved here (CUDA path;
    the meta device stands in for the GPU)."""
    model = MODELS.build(tiny_stage1(rec_loss=dict(type='ReconstructionNLL', learn_logvar=False,
                                                   perceptual_cfg=dict(type='LPIPS', net='alex', pretrained=False))))
    ignored = [m for _, m in frozen_submodules(model)]
    assert ignored == [model.rec_loss]
    move_unmanaged_states(model, ignored, torch.device('meta'))
    assert model.rec_loss.logvar.is_meta
    assert all(p.is_meta for p in model.rec_loss.perceptual.lpips_module.parameters())
    assert all(p.is_meta for p in model.vf_loss.foundation.net.parameters())
    assert not any(p.is_meta for n, p in model.named_parameters() if not n.startswith('rec_loss.'))  # FSDP's job


def test_check_fsdp_model_rejects_gan_stage():
    check_fsdp_model(MODELS.build(tiny_stage1()))  # stage 1 (no discriminator): fine
    check_fsdp_model(MODELS.build(dict(type='VAE', arch=dict(ARCH), encoder=dict(type='TransVAEEncoder'),
                                       decoder=dict(type='TransVAEDecoder'),
                                       rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))))
    gan = MODELS.build(tiny_stage1(discriminator=dict(type='PatchGANDiscriminator', ndf=8), freeze_encoder=True))
    with pytest.raises(ValueError, match='MMSeparateDistributedDataParallel'):
        check_fsdp_model(gan)


def test_fsdp_config_for_eval():
    from mmengine.config import Config
    cfg = Config(dict(runner_type='FlexibleRunner', strategy=dict(type='TransVAEFSDPStrategy'), model=dict()))
    assert STRATEGIES.get('TransVAEFSDPStrategy') is not None and is_fsdp_config(cfg)
    assert fsdp_config_for_eval(cfg) and cfg.runner_type == 'TransVAERunner' and 'strategy' not in cfg
    assert not fsdp_config_for_eval(Config(dict(strategy=dict(type='DDPStrategy'))))


def test_recipe_and_train_tool_guard():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(tv.REPO, 'configs', 'transvae', 'transvae-l_f16d32_fsdp_8xb32-100e_in1k.py'))
    assert cfg.runner_type == 'TransVAEFlexibleRunner' and cfg.strategy.type == 'TransVAEFSDPStrategy'
    assert cfg.strategy.state_dict_cfg == 'full' and cfg.strategy.model_wrapper.use_orig_params
    assert cfg.model.type == 'VAEGAN' and cfg.model.get('discriminator') is None  # stage 1
    check_strategy_runner(cfg)
    cfg.custom_hooks = [dict(type='EMAHook', momentum=1e-4)]  # would average the per-rank shards
    with pytest.raises(ConfigValueError, match='EMAHook is not supported with FSDP'):
        check_strategy_runner(cfg)
    cfg.custom_hooks = [dict(type='TransVAEEMAHook')]  # a subclass: refused by its class, not its name
    with pytest.raises(ConfigValueError, match='TransVAEEMAHook is not supported with FSDP'):
        check_strategy_runner(cfg)
    cfg.custom_hooks = []
    cfg.runner_type = 'TransVAERunner'  # would silently ignore `strategy`
    with pytest.raises(ConfigValueError, match='FlexibleRunner'):
        check_strategy_runner(cfg)


# ---------------------------------------------------------------------------------------------------------------------
# (b) end to end: tools/dist_train.sh on 2 gloo ranks, resume, load unwrapped, tools/test.py
# ---------------------------------------------------------------------------------------------------------------------
CONFIG = '''
_base_ = [{runtime!r}, {fsdp!r}]
custom_imports = dict(imports=['tiny_vae_fixtures'], allow_failed_imports=False)
runner_type = 'TransVAEFlexibleRunner'
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                                               max_keep_ckpts=3))
model = {model!r}
{data}optim_wrapper = dict(type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9)),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
randomness = dict(seed=0)
'''


def test_fsdp_dist_train_resume_and_load(tmp_path):
    # a frozen logvar makes `rec_loss` an all-frozen submodule: it goes to FSDP's ignored_modules
    model_cfg = tiny_stage1(rec_loss=dict(type='ReconstructionNLL', learn_logvar=False,
                                          perceptual_cfg=dict(type='LPIPS', net='alex', pretrained=False)))
    cfg_path = tmp_path / 'tiny_fsdp.py'
    cfg_path.write_text(CONFIG.format(
        data=tv.TINY_DIST_DATA_CFG, runtime=osp.join(tv.REPO, 'configs', '_base_', 'default_runtime.py'),
        fsdp=osp.join(tv.REPO, 'configs', '_base_', 'strategies', 'fsdp.py'), model=model_cfg))
    wd = tmp_path / 'wd'
    train = ['bash', 'tools/dist_train.sh', str(cfg_path), '2', '--work-dir', str(wd)]
    tv.run_checked(train, PYTHON=tv.PYTHON, PORT=tv.free_port())
    assert (wd / 'iter_1.pth').is_file() and (wd / 'iter_2.pth').is_file()
    assert (wd / 'last_checkpoint').read_text().strip() == str(wd / 'iter_2.pth')
    log = next(wd.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    assert 'FSDP: not sharding the frozen submodules rec_loss' in log
    units = [ln for ln in log.splitlines() if 'sharded units below the root' in ln]
    assert units and 'FSDP: 6 sharded units' in units[0] and 'device cpu' in units[0]  # 1 ResBlock + 2 blocks, x2
    train_lines = [ln for ln in log.splitlines() if 'Iter(train) [2/2]' in ln]
    assert train_lines and 'loss_nll:' in train_lines[0] and 'loss_vf:' in train_lines[0]
    assert 'grad_norm:' in train_lines[0] and 'tiny/psnr' in log  # global-norm clipping logged; validation ran

    # the same config was pre-flighted by the first launch
    tv.run_checked(train + ['--resume', '--max-iters', '3'], PYTHON=tv.PYTHON, PORT=tv.free_port(), PREFLIGHT='0')
    logs = sorted(wd.glob('*/*.log'))
    resumed = logs[-1].read_text()
    assert 'Auto resumed from the latest checkpoint' in resumed and 'resumed epoch: 0, iter: 2' in resumed
    assert 'Iter(train) [3/3]' in resumed and 'Iter(train) [1/3]' not in resumed
    ckpt = tv.load_ckpt(str(wd / 'iter_3.pth'))
    assert ckpt['meta']['iter'] == 3
    steps = {float(s['step']) for s in ckpt['optimizer']['state'].values()}
    assert steps == {3.0}  # AdamW state continued from the checkpoint (a fresh optimizer would be at step 1)

    # a full state dict: the plain model of the config, and a plain VAE, load it strictly
    sd = ckpt['state_dict']
    assert not any('_fsdp' in k or k.startswith('module.') for k in sd)
    assert 'rec_loss.logvar' in sd and all(torch.isfinite(v).all() for v in sd.values())
    plain = MODELS.build(copy.deepcopy(model_cfg))
    plain.load_state_dict(sd, strict=True)
    vae_cfg = {k: v for k, v in model_cfg.items() if k != 'vf_loss'}
    vae = MODELS.build(dict(vae_cfg, type='VAE'))
    vae.load_state_dict({k: v for k, v in sd.items() if not k.startswith('vf_loss.')}, strict=True)
    assert torch.equal(vae.decoder.conv_out.weight, sd['decoder.conv_out.weight'])
    before = tv.load_ckpt(str(wd / 'iter_2.pth'))['state_dict']
    assert not torch.equal(before['decoder.conv_out.weight'], sd['decoder.conv_out.weight'])

    # tools/test.py evaluates the FSDP config's checkpoint with the default runner, unsharded
    proc = tv.run_checked([tv.PYTHON, 'tools/test.py', str(cfg_path), str(wd / 'iter_3.pth'), '--work-dir',
                 str(tmp_path / 'test')], timeout=180)
    assert any(ln.startswith('metrics: ') and 'tiny/psnr' in ln for ln in proc.stdout.splitlines()), proc.stdout


# ---------------------------------------------------------------------------------------------------------------------
# (c) global-norm clipping of sharded gradients (2 spawned gloo ranks)
# ---------------------------------------------------------------------------------------------------------------------
class Block(nn.Module):
    """A unit of its own under the wrap policy (``block_types=[Block]``)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dims, dims)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


@contextlib.contextmanager
def gloo_rank(rank: int, world: int, port: int) -> Iterator[None]:
    """The body of one ``mp.spawn``-ed gloo rank (1 thread). A failure destroys the group and re-raises (the spawn
    reports it); success ends in :func:`shutdown_distributed` (barrier, destroy, ``os._exit(0)``): a rank can abort in
    interpreter teardown with gloo's threads attached (SIGABRT, "terminate called without an active exception")."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    shutdown_distributed()


def _batch(rank: int) -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(10 + rank)) * (1 + 3 * rank)


def _clip_worker(rank: int, world: int, port: int) -> None:
    with gloo_rank(rank, world, port):
        from mmengine.logging import MessageHub
        from mmengine.optim import OptimWrapper
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        from transvae.engine.fsdp import TransVAEFSDPStrategy
        from transvae.engine.optimizers import SafeOptimWrapper, clip_grad_norm_sharded_

        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 10), Block(10), nn.Linear(10, 3))  # root 103 params: an uneven split
        ref = copy.deepcopy(model)
        fsdp = FSDP(model, device_id=torch.device('cpu'), use_orig_params=True,
                    auto_wrap_policy=functools.partial(transvae_block_wrap_policy, block_types=[Block]))
        assert isinstance(fsdp[1], FSDP)

        # reference: the full gradient of the loss averaged over both ranks' batches (what FSDP reduces to)
        (sum(ref(_batch(r)).square().mean() for r in range(world)) / world).backward()
        full_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm=float('inf'))
        max_norm = float(full_norm) / 4  # clipping active
        ref_coef = min(1.0, max_norm / (float(full_norm) + 1e-6))
        ref_clipped = [p.grad * ref_coef for p in ref.parameters()]

        fsdp(_batch(rank)).square().mean().backward()
        local = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in fsdp.parameters()
                                                      if p.grad is not None]))
        locals_ = [torch.zeros(()) for _ in range(world)]
        dist.all_gather(locals_, local)
        # what mmengine's clipping would use: each rank its own (different, too small) norm
        assert all(float(n) < float(full_norm) * 0.999 for n in locals_) and float(locals_[0]) != float(locals_[1])

        wrapper = SafeOptimWrapper(optimizer=torch.optim.SGD(fsdp.parameters(), lr=0.1),
                                   clip_grad=dict(max_norm=max_norm))
        TransVAEFSDPStrategy.mark_sharded_grads(wrapper, fsdp)
        assert wrapper.sharded_grads and wrapper.grad_process_group is fsdp.process_group
        wrapper._clip_grad()
        logged = MessageHub.get_current_instance().get_scalar('train/grad_norm').current()
        assert abs(logged - float(full_norm)) < 1e-5 * float(full_norm), (logged, float(full_norm))
        with FSDP.summon_full_params(fsdp, with_grads=True):
            for p, expected in zip(fsdp.parameters(), ref_clipped):
                torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7)
            clipped_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad)
                                                                 for p in fsdp.parameters()]))
        assert abs(float(clipped_norm) - max_norm) < 1e-4 * max_norm

        # the max norm; a rank without any local gradient still takes part (no deadlock, same result)
        ref_inf = max(float(g.abs().max()) for g in ref_clipped)
        inf_norm = clip_grad_norm_sharded_(list(fsdp.parameters()), max_norm=1e9, norm_type=float('inf'))
        assert abs(float(inf_norm) - ref_inf) < 1e-6 * ref_inf
        mine = [p for p in fsdp.parameters() if p.grad is not None] if rank == 0 else []
        part = clip_grad_norm_sharded_(mine, max_norm=1e9)
        assert float(part) > 0

        # a plain mmengine OptimWrapper would clip by the local norm: refused
        with pytest.raises(ValueError, match='global norm'):
            TransVAEFSDPStrategy.mark_sharded_grads(
                OptimWrapper(optimizer=torch.optim.SGD(fsdp.parameters(), lr=0.1), clip_grad=dict(max_norm=1.0)),
                fsdp)


def test_sharded_clip_matches_unsharded_gradient():
    mp.spawn(_clip_worker, args=(2, tv.free_port()), nprocs=2, join=True)


# ---------------------------------------------------------------------------------------------------------------------
# (d) the full optimizer state a checkpoint holds equals an unsharded AdamW's, and loads back (2 spawned gloo ranks)
# ---------------------------------------------------------------------------------------------------------------------
def _optim_state_worker(rank: int, world: int, port: int) -> None:
    with gloo_rank(rank, world, port):
        from mmengine.optim import OptimWrapper

        from transvae.engine.fsdp import TransVAEFSDPStrategy

        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 10), Block(10), nn.Linear(10, 3))
        ref = copy.deepcopy(model)
        strategy = TransVAEFSDPStrategy(state_dict_cfg='full', model_wrapper=dict(
            type='MMFullyShardedDataParallel', use_orig_params=True,
            auto_wrap_policy=dict(type='transvae_block_wrap_policy', block_types=[Block])))
        strategy.model = strategy._wrap_model(model)
        strategy.optim_wrapper = OptimWrapper(torch.optim.AdamW(strategy.model.parameters(), lr=1e-2))
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
        for step in range(3):
            strategy.model(_batch(rank + 2 * step)).square().mean().backward()
            strategy.optim_wrapper.step()
            strategy.optim_wrapper.zero_grad()
            (sum(ref(_batch(r + 2 * step)).square().mean() for r in range(world)) / world).backward()
            ref_opt.step()
            ref_opt.zero_grad()

        saved = strategy.optim_state_dict()  # collective; rank 0 holds the full state
        if rank == 0:
            names = dict(ref.named_parameters())
            assert set(saved['state']) == set(names)
            for name, state in saved['state'].items():
                expected = ref_opt.state[names[name]]
                for key in ('exp_avg', 'exp_avg_sq'):  # the two moments used to come back as one shared buffer
                    torch.testing.assert_close(state[key], expected[key], rtol=1e-4, atol=1e-8, msg=f'{name} {key}')
                assert float(state['step']) == 3.0

        # resume: a fresh optimizer loads the file's state re-sharded; each rank's local moments equal the live ones
        live = {n: {k: v.clone() for k, v in strategy.optim_wrapper.optimizer.state[p].items()}
                for n, p in strategy.model.named_parameters() if p in strategy.optim_wrapper.optimizer.state}
        payload = [saved]
        dist.broadcast_object_list(payload, src=0)
        strategy.optim_wrapper = OptimWrapper(torch.optim.AdamW(strategy.model.parameters(), lr=1e-2))
        strategy.load_optim_state_dict(payload[0])
        for n, p in strategy.model.named_parameters():
            if n in live and p.numel():
                for key in ('exp_avg', 'exp_avg_sq'):
                    assert torch.equal(strategy.optim_wrapper.optimizer.state[p][key], live[n][key]), (n, key)


def test_full_optimizer_state_equals_unsharded_adamw_and_resumes():
    mp.spawn(_optim_state_worker, args=(2, tv.free_port()), nprocs=2, join=True)


def test_aliased_optimizer_states_are_refused():
    from transvae.engine.fsdp import check_no_aliased_states
    buf = torch.ones(4)
    check_no_aliased_states({'state': {'w': dict(step=torch.tensor(1.), exp_avg=torch.ones(4), exp_avg_sq=buf)}})
    with pytest.raises(RuntimeError, match='exp_avg_sq.*one shared buffer'):
        check_no_aliased_states({'state': {'w': dict(step=torch.tensor(1.), exp_avg=buf, exp_avg_sq=buf[:])}})


def _local_ckpt_worker(rank: int, world: int, port: int, out: str) -> None:
    with gloo_rank(rank, world, port):
        from mmengine.optim import OptimWrapper

        from transvae.engine.checkpoint_io import load_checkpoint_file
        from transvae.engine.fsdp import TransVAEFSDPStrategy

        torch.manual_seed(0)
        strategy = TransVAEFSDPStrategy(state_dict_cfg='local', model_wrapper=dict(
            type='MMFullyShardedDataParallel', use_orig_params=True,
            auto_wrap_policy=dict(type='transvae_block_wrap_policy', block_types=[Block])))
        strategy._seed = 0
        strategy.model = strategy._wrap_model(nn.Sequential(nn.Linear(6, 10), Block(10), nn.Linear(10, 3)))
        strategy.optim_wrapper = OptimWrapper(torch.optim.AdamW(strategy.model.parameters(), lr=1e-2))
        strategy.model(_batch(rank)).square().mean().backward()
        strategy.optim_wrapper.step()
        strategy.save_checkpoint(out)
        dist.barrier()
        path = osp.join(out, f'rank{rank}.pth')
        torch.load(path, weights_only=True)  # safe to load: no ShardedTensor / numpy pickles in the file
        params = [p.detach().clone() for p in strategy.model.parameters()]
        moments = [strategy.optim_wrapper.optimizer.state[p]['exp_avg'].clone() for p in strategy.model.parameters()
                   if p.numel()]
        with torch.no_grad():
            for p in strategy.model.parameters():
                p.add_(1.0)
        ckpt = load_checkpoint_file(path)  # rebuilds this rank's ShardedTensors (collective)
        strategy.load_model_state_dict(ckpt['state_dict'])
        strategy.optim_wrapper = OptimWrapper(torch.optim.AdamW(strategy.model.parameters(), lr=1e-2))
        strategy.load_optim_state_dict(ckpt['optimizer'])
        for p, q in zip(strategy.model.parameters(), params):
            assert torch.equal(p.detach(), q)
        got = [strategy.optim_wrapper.optimizer.state[p]['exp_avg'] for p in strategy.model.parameters() if p.numel()]
        assert all(torch.equal(a, b) for a, b in zip(got, moments))


def test_sharded_checkpoint_saves_safely_and_loads_back(tmp_path):
    mp.spawn(_local_ckpt_worker, args=(2, tv.free_port(), str(tmp_path / 'iter_1.pth')), nprocs=2, join=True)
    assert sorted(os.listdir(tmp_path / 'iter_1.pth')) == ['rank0.pth', 'rank1.pth']
    from transvae.engine.checkpoint_io import load_checkpoint_file
    with pytest.raises(ValueError, match='same number of ranks'):  # one rank's file outside the distributed run
        load_checkpoint_file(str(tmp_path / 'iter_1.pth' / 'rank0.pth'))
