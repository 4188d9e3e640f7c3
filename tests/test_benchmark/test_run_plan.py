"""The run planner (transvae.benchmark.run_plan / step_trace / step_memory, tools/analysis_tools/plan_run.py).

Tiny sizes only: the micro TransVAE f8d16 recipe at 32-128² and the micro LightningDiT of its CPU preset.
"""
import json
import os.path as osp

import pytest
import torch

from transvae.benchmark.run_plan import PlanOptions, per_gpu_peak, plan_run
from transvae.benchmark.step_trace import MEMORY_KINDS, StepTrace

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MICRO = osp.join(REPO, 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py')
DIT_B2 = osp.join(REPO, 'projects/lightningdit/configs/lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py')


@pytest.fixture(scope='module')
def micro_plan() -> dict:
    return plan_run(PlanOptions(config=MICRO, gpus=1, resolution=32, batch_size=2, search_batch=False))


def test_forward_flops_equal_the_benchmark_count(micro_plan):
    """The planner's forward FLOPs of the real model are exactly twice the benchmark's MACs (``codec_macs``)."""
    from transvae.benchmark import CodecTarget, build_ours, codec_macs
    plan = micro_plan
    model = build_ours(MICRO, None, None, {}, 'cpu')
    target = CodecTarget('ours', model, model.downsample_factor, model.latent_channels)
    assert plan['model_forward_flops'] == 2 * codec_macs(target, 32, plan['per_gpu_batch'])
    # the training step: forward and backward of the model and its losses, more than the forward alone
    assert plan['flops_per_step'] > 2 * plan['model_forward_flops']


def test_train_step_flops_match_torch_counter_on_the_benchmark_step():
    """``train_step_flops`` (3 forwards of 2 FLOPs per MAC) against torch's own FLOP counter over the benchmark's
    timed training step: the counter finds a little less (the first conv needs no input gradient), never more."""
    from torch.utils.flop_counter import FlopCounterMode

    from transvae.benchmark import CodecTarget, build_ours, codec_macs, train_step_flops
    from transvae.benchmark.timing import make_train_step
    torch.manual_seed(0)
    model = build_ours(MICRO, None, None, {}, 'cpu')
    target = CodecTarget('ours', model, model.downsample_factor, model.latent_channels)
    step, _ = make_train_step(model, 2, 32, 'cpu')
    with FlopCounterMode(display=False) as counter:
        step()
    ratio = counter.get_total_flops() / train_step_flops(codec_macs(target, 32, 2))
    assert 0.9 < ratio <= 1.0, ratio


def test_dit_forward_matmul_flops_equal_the_analytic_count():
    """LightningDiT: the traced matmul FLOPs of the forward equal the project's ``dit_forward_flops``."""
    from projects.lightningdit.lightningdit.models.flops import dit_forward_flops
    plan = plan_run(PlanOptions(config=DIT_B2, gpus=1, batch_size=2, preset='cpu', search_batch=False))
    from transvae.benchmark.run_plan import load_plan_config
    from transvae.registry import MODELS
    cfg, _ = load_plan_config(DIT_B2, preset='cpu')
    with torch.device('meta'):
        model = MODELS.build(cfg.model.to_dict())
    c, h, w = model.latent_shape
    assert plan['input_shape'] == [c, h, w]
    assert plan['model_forward_matmul_flops'] == dit_forward_flops(model.backbone, 2, (h, w))
    assert plan['variants']['ddp']['peak_memory_breakdown']['ema_copy'] == 4 * plan['trainable_params']


def test_plan_json_keys_and_an_unfitting_run(tmp_path):
    """The JSON a GPU check reads; a run that cannot fit says so and what was tried."""
    from tools.analysis_tools import plan_run as cli
    out = tmp_path / 'plan.json'
    cli.main([MICRO, '--gpus', '2', '--gpu-mem-gb', '0.001', '--resolution', '32', '--batch-size', '2',
              '--no-batch-search', '--json', str(out)])
    plan = json.loads(out.read_text())
    for key in ('config', 'gpus', 'amp', 'per_gpu_batch', 'peak_memory_bytes', 'peak_memory_breakdown',
                'flops_per_step', 'step_time_s', 'recipe_wall_time_h', 'fits', 'suggestions'):
        assert key in plan, key
    assert plan['gpus'] == 2 and plan['per_gpu_batch'] == 2 and plan['amp'] == 'fp32'
    assert plan['fits'] is False and plan['suggestions']
    assert plan['peak_memory_bytes'] == sum(plan['peak_memory_breakdown'].values())
    assert plan['step_time_s'] == pytest.approx(plan['flops_per_step'] / (0.4 * 494.7e12))
    assert plan['accumulative_counts'] == 4  # the recipe's global batch 16 (1xb16) over 2 GPUs x 2
    assert plan['recipe_wall_time_h'] == pytest.approx(4 * plan['iterations'] * plan['step_time_s'] / 3600)
    with pytest.raises(SystemExit, match='exists'):
        cli.main([MICRO, '--json', str(out)])


@pytest.mark.parametrize('name, per_gpu, k', [('transvae-l_f16d32_8xb32-100e_in1k.py', 16, 2),
                                               ('transvae-l_f8d16_8xb32-100e_in1k.py', 8, 4),
                                               ('transvae-l_f16d32_fsdp_8xb32-100e_in1k.py', 16, 2),
                                               ('transvae-t_f16d32_8xb32-100e_in1k.py', 32, 1)])
def test_recipe_global_batch_counts_the_config_accumulation(name, per_gpu, k):
    """The L recipes train 16 x 2 and 8 x 4 per GPU: their global batch is still the paper's 256 (the FSDP leaf
    finds the batch through its _base_ chain: its own name says 8xb32)."""
    from mmengine.config import Config

    from transvae.benchmark.run_plan import config_accumulation, recipe_global_batch
    cfg = Config.fromfile(osp.join(REPO, 'configs/transvae', name))
    assert cfg.train_dataloader.batch_size == per_gpu and config_accumulation(cfg) == k
    batch, source = recipe_global_batch(cfg)
    assert batch == 256, source
    assert (f'accumulative_counts {k}' in source) == (k > 1)


def test_plan_with_config_accumulation():
    """k = 2 in the config: the iterations already count micro-batches; only the plan's own accumulation (to keep
    the global batch 1 x 16 x 2 = 32 on 2 GPUs of 2) multiplies the wall time."""
    plan = plan_run(PlanOptions(config=MICRO, gpus=2, resolution=32, batch_size=2, search_batch=False,
                                cfg_options={'optim_wrapper.accumulative_counts': 2}))
    assert plan['recipe_global_batch'] == 32 and plan['global_batch'] == 32
    assert plan['config_accumulative_counts'] == 2 and plan['extra_accumulation'] == 4
    assert plan['accumulative_counts'] == 8
    assert plan['recipe_wall_time_h'] == pytest.approx(4 * plan['iterations'] * plan['step_time_s'] / 3600)
    default = plan_run(PlanOptions(config=MICRO, gpus=4, resolution=32, search_batch=False,
                                   cfg_options={'optim_wrapper.accumulative_counts': 2}))
    assert default['per_gpu_batch'] == 4 and default['extra_accumulation'] == 1  # 32 = 4 GPUs x 4 x 2


def test_activation_checkpointing_is_traced(micro_plan):
    """The checkpointed variant is its own trace: the blocks' forward runs again in the backward (more FLOPs)."""
    v = micro_plan['variants']
    assert set(v) == {'ddp', 'fsdp', 'ddp+ac', 'fsdp+ac'}
    assert v['ddp+ac']['flops_per_step'] > v['ddp']['flops_per_step']


def test_sharding_arithmetic():
    """DDP adds one bucket copy of the trainable parameters on > 1 GPU; FSDP divides parameters, gradients and
    optimizer state by the GPUs at every moment and adds the unsharded parameters in flight."""
    mib = 2 ** 20
    rows = [  # Parameter, Buffer, Gradient, Activation, Temp, Optstate, Other
        (120 * mib, 0, 0, 500 * mib, 0, 0, 0),  # forward peak
        (120 * mib, 0, 100 * mib, 100 * mib, 50 * mib, 200 * mib, 0),  # optimizer step
    ]
    trace = StepTrace(torch.tensor(rows, dtype=torch.int64), trainable_bytes=100 * mib, flops=1, flops_by_op={})
    assert trace.timeline.shape[1] == len(MEMORY_KINDS)
    peak, parts = per_gpu_peak(trace, 'ddp', 4, ([10 * mib] * 8, 20 * mib), {})
    assert parts == dict(parameters=100 * mib, gradients=0, optimizer_state=0, activations=500 * mib, frozen=20 * mib,
                         ddp_gradient_buckets=100 * mib)
    assert peak == 720 * mib
    peak1, parts1 = per_gpu_peak(trace, 'ddp', 1, ([10 * mib] * 8, 20 * mib), {'ema_copy': mib})
    assert parts1['ddp_gradient_buckets'] == 0 and peak1 == 621 * mib
    peak, parts = per_gpu_peak(trace, 'fsdp', 4, ([10 * mib] * 8, 20 * mib), {})
    in_flight = (20 + 3 * 10) * mib * 3 / 4
    assert parts['parameters'] == 25 * mib and parts['activations'] == 500 * mib
    assert parts['fsdp_unsharded_in_flight'] == pytest.approx(in_flight, abs=1)
    assert peak == pytest.approx((25 + 500 + 20) * mib + in_flight, abs=2)


def test_fake_trace_allocates_nothing():
    """A model on fake tensors allocates none of its parameters: TransVAE-L (0.5B parameters, 2 GB in fp32) builds
    and runs a forward pass at batch 1, 32², without the process RSS growing by its size."""
    from transvae.benchmark.memory import _status_kb
    from transvae.benchmark.run_plan import load_plan_config
    from transvae.benchmark.step_trace import build_training_setup, trace_forward_flops
    cfg, _ = load_plan_config(osp.join(REPO, 'configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py'),
                              resolution=32)
    before = _status_kb('VmRSS') * 1024
    setup = build_training_setup(cfg, 1, 32, fake=True)
    flops, _ = trace_forward_flops(setup)
    grown = _status_kb('VmRSS') * 1024 - before
    params = sum(p.numel() for p in setup.model.parameters())
    assert params > 4e8 and flops > 0
    assert all(type(p).__name__ == 'FakeTensor' for p in setup.model.parameters())
    assert grown < 0.25 * 4 * params


def test_held_before_the_step_is_the_state_counted_once():
    """The bytes held before the traced step are the parameters and buffers of every module (the hidden frozen LPIPS
    net included) plus the optimizer state, once. torch 2.14's tracker snapshot also holds a 'Total', which the
    planner summed with the kinds: the CPU check then predicted -421 MiB for TransVAE-T stage 1 (frozen DINOv2)."""
    from transvae.benchmark.run_plan import load_plan_config
    from transvae.benchmark.step_trace import all_modules, build_training_setup, trace_training_step
    cfg, _ = load_plan_config(MICRO, resolution=32)
    setup = build_training_setup(cfg, 2, 32, fake=True)
    trace = trace_training_step(setup)
    tensors = {id(t): t for m in all_modules(setup.model)
               for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))}
    tensors.update({id(v): v for opt in setup.optimizers() for st in opt.state.values() for v in st.values()
                    if isinstance(v, torch.Tensor)})
    expected = sum(t.numel() * t.element_size() for t in tensors.values())
    assert expected > 3 * 4 * 1.4e6  # parameters + two AdamW moments of the 1.5M-parameter model, at least
    assert abs(trace.held_before - expected) <= 0.01 * expected, (trace.held_before, expected)


@pytest.mark.parametrize('checkpointing', [False, True])
def test_cpu_prediction_within_5_percent_of_a_real_step(checkpointing):
    """The predicted peak of the second training step against the measured peak-RSS increase of a real fp32 step
    in a fresh process (micro TransVAE f8d16, batch 16, 128²), with and without activation checkpointing. The
    issue asked for 15%; the trace now matches to ~0.5% (README), and the checkpointed case read 2× before the FLOP
    counter left the memory pass."""
    from transvae.benchmark.step_memory import compare_cpu_step
    r = compare_cpu_step(MICRO, 16, 128, activation_checkpointing=checkpointing)
    assert r['measured_bytes'] > 100 * 2 ** 20  # large enough for the process's own noise not to matter
    assert 0.95 <= r['ratio'] <= 1.05, r
