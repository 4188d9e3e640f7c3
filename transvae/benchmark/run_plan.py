"""The run planner: per-GPU peak memory, FLOPs and time of a config's training run, before any GPU hour.

:func:`plan_run` traces one training step of the config's real model, losses and optimizer(s) on fake tensors
(:mod:`transvae.benchmark.step_trace`: nothing is allocated, so a 2.5B-parameter model plans on a laptop), with and
without activation checkpointing, and derives from the traced memory timeline the per-GPU peak of each strategy:

* **DDP**: every rank holds the whole model: the traced step (parameters, gradients, optimizer state, activations,
  frozen networks) plus DDP's gradient buckets (one more copy of the trainable parameters' size:
  ``DistributedDataParallel`` with ``gradient_as_bucket_view=False``, mmengine's default), on more than one GPU.
* **FSDP** (full shard, as ``configs/_base_/strategies/fsdp.py``): trainable parameters, gradients and optimizer
  state divided by the number of GPUs at every moment of the step, plus the unsharded parameters in flight (the
  parameters outside every block, which the root unit keeps gathered, two gathered blocks: the one computing and the
  one prefetched, and one block's full gradient before its reduce-scatter); frozen networks are replicated
  (``ignored_modules``), activations are those of the traced step.

Every figure adds the EMA copy when the config has an EMA hook (trainable generator weights, fp32). The trace runs
on fake CPU tensors under CPU autocast when the run is bf16; optimizers take the multi-tensor (``foreach``) path
CUDA takes by default, with its full-size temporaries. The step time is the traced FLOPs (benchmark convention,
:mod:`~transvae.benchmark.step_trace`; recomputation included under activation checkpointing) over ``mfu`` × the
stated peak; the recipe's wall time is its runner iterations (which count the config's micro-batches when it
accumulates gradients) × the accumulation the plan adds to keep the global batch on fewer GPUs × step time (data
loading, evaluation and checkpointing not included).
"""
from __future__ import annotations

import dataclasses
import math
import os.path as osp
import re
import resource
import time
from typing import Any, Optional

import torch

from .step_trace import (MATMUL_OPS, MEMORY_KINDS, StepTrace, all_modules, build_training_setup,
                         trace_forward_flops, trace_training_step)

__all__ = ['PlanOptions', 'PEAK_TFLOPS', 'load_plan_config', 'recipe_global_batch', 'per_gpu_peak', 'plan_run',
           'format_plan', 'fsdp_unit_bytes']

#: dense peak TFLOP/s of an H100 SXM (NVIDIA datasheet): bf16 tensor cores, and TF32 for fp32 runs
PEAK_TFLOPS = {'bf16': 989.4, 'fp32': 494.7}
IMAGENET_TRAIN_LEN = 1281167
_GIB = 2 ** 30


@dataclasses.dataclass
class PlanOptions:
    """What to plan.

    Attributes:
        config: config file.
        gpus: number of GPUs.
        gpu_mem_gb: memory of one GPU in GiB.
        amp: ``'bf16'`` (switch the config to ``SafeAmpOptimWrapper`` as ``tools/train.py --amp`` does), ``'fp32'``
            (refused for a config that already trains in mixed precision), ``None``: as the config says.
        batch_size: per-GPU batch; ``None``: the recipe's global batch (``NxbB`` in the config name) over ``gpus``.
        activation_checkpointing: the run switches activation checkpointing on (also on when the config sets
            ``with_cp=True``).
        strategy: ``'ddp'`` or ``'fsdp'``; ``None``: the config's (``strategy`` set: FSDP).
        mfu: model FLOPs utilisation assumed for the step time.
        peak_tflops: peak TFLOP/s of one GPU (default :data:`PEAK_TFLOPS` of the precision).
        resolution: training crop size (default: the config's train pipeline).
        preset: a config preset (``'cpu'``).
        cfg_options: ``--cfg-options`` overrides.
        dataset_len: training images per epoch for an epoch-based schedule (ImageNet-1k train).
        headroom: the fraction of the GPU memory a plan may use (the rest: CUDA context, cuDNN / cuBLAS workspaces,
            allocator fragmentation).
        search_batch: when it does not fit, trace smaller per-GPU batches (gradient accumulation) to find one that does.
    """

    config: str
    gpus: int = 8
    gpu_mem_gb: float = 80.0
    amp: Optional[str] = None
    batch_size: Optional[int] = None
    activation_checkpointing: bool = False
    strategy: Optional[str] = None
    mfu: float = 0.4
    peak_tflops: Optional[float] = None
    resolution: Optional[int] = None
    preset: Optional[str] = None
    cfg_options: dict = dataclasses.field(default_factory=dict)
    dataset_len: int = IMAGENET_TRAIN_LEN
    headroom: float = 0.9
    search_batch: bool = True


def load_plan_config(config: str, amp: Optional[str] = None, preset: Optional[str] = None,
                     cfg_options: Optional[dict] = None, resolution: Optional[int] = None) -> tuple[Any, str]:
    """The resolved config (``custom_imports`` imported, ``amp`` and ``resolution`` applied) and its precision
    (``'bf16'`` / ``'fp16'`` / ``'fp32'``)."""
    from mmengine.optim import AmpOptimWrapper
    from mmengine.utils import import_modules_from_strings

    from transvae.apis.entry import load_config
    from transvae.apis.setup_env import register_all_modules
    from transvae.engine.config_surgery import set_amp, set_resolution
    from transvae.registry import OPTIM_WRAPPERS, resolve_type
    from transvae.utils.errors import UserInputError
    register_all_modules()
    cfg = load_config(config, preset=preset, cfg_options=cfg_options)
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    if resolution is not None:
        set_resolution(cfg, resolution)

    def precision() -> str:
        ow = cfg.optim_wrapper
        types = [ow.get('type', 'OptimWrapper')]
        if ow.get('constructor', None) == 'VAEGANOptimWrapperConstructor':
            types = [ow.generator.get('type', 'OptimWrapper')]
        cls = resolve_type(types[0], OPTIM_WRAPPERS)
        if not issubclass(cls, AmpOptimWrapper):
            return 'fp32'
        dtype = (ow.generator if 'generator' in ow else ow).get('dtype', None)
        return 'fp16' if dtype in ('float16', torch.float16) else 'bf16'

    have = precision()
    if amp == 'bf16' and have == 'fp32':
        set_amp(cfg, 'bfloat16')
        have = 'bf16'
    elif amp == 'fp32' and have != 'fp32':
        raise UserInputError(f'{config}: the config trains in mixed precision ({have}); --amp fp32 cannot switch it '
                             'off (leave --amp out, or change the optim_wrapper type in the config)')
    elif amp not in (None, 'bf16', 'fp32'):
        raise UserInputError(f"--amp must be 'bf16' or 'fp32', got {amp!r}")
    return cfg, have


def _train_resolution(cfg: Any) -> Optional[int]:
    """The crop size of the train pipeline (the last transform that declares ``resolution_keys``)."""
    from transvae.datasets.transforms.resolution import resolution_keys
    ds = cfg.get('train_dataloader', {}).get('dataset', {})
    while isinstance(ds, dict) and 'dataset' in ds and 'pipeline' not in ds:  # wrappers (RepeatDataset, ...)
        ds = ds['dataset']
    size = None
    for t in (ds.get('pipeline', None) or []) if isinstance(ds, dict) else []:
        for key in resolution_keys(t):
            if key in t:
                v = t[key]
                size = int(v if isinstance(v, (int, float)) else max(v))
    return size


def config_accumulation(cfg: Any) -> int:
    """The config's gradient accumulation: ``optim_wrapper.accumulative_counts`` (1 when unset)."""
    ow = cfg.get('optim_wrapper', None) or {}
    return max(1, int(ow.get('accumulative_counts', 1) or 1))


def _config_and_bases(path: str) -> list[tuple[str, str]]:
    """``(text, label)`` of a config file and, depth first, of every ``_base_`` file it names (relative paths)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(p: str) -> None:
        p = osp.normpath(p)
        if p in seen or not osp.isfile(p):
            return
        seen.add(p)
        with open(p) as fh:
            text = fh.read()
        out.append((text, f'{osp.basename(p)} (the config file or a _base_ of it)'))
        m = re.search(r'^_base_\s*=\s*(\[.*?\]|[\'"].*?[\'"])', text, re.M | re.S)
        for base in re.findall(r'[\'"]([^\'"]+\.py)[\'"]', m.group(1)) if m else []:
            visit(osp.join(osp.dirname(p), base))

    visit(path)
    return out


def recipe_global_batch(cfg: Any) -> tuple[int, str]:
    """The recipe's global batch (samples per optimizer step) and where it comes from: ``N × B × k`` for an ``NxbB``
    (the naming rule of docs/DESIGN.md §4, ``NxbBxk`` with accumulation) whose ``B`` is the config's per-GPU batch,
    in the config's file name or else in the text of the config or of its ``_base_`` files, followed depth first
    (``scaling_gan-vf_8xb32-3e_in1k.py``; the FSDP leaf of L f16d32 names the DDP leaf, which names
    ``stage1_vf_8xb16x2-100e_in1k.py``); else the per-GPU batch × k alone. ``k`` is always the config's
    ``accumulative_counts``."""
    b = int(cfg.train_dataloader.batch_size)
    k = config_accumulation(cfg)
    acc = f' x accumulative_counts {k}' if k > 1 else ''
    name = cfg.filename or ''
    sources = [(osp.basename(name), 'the config name')] + (_config_and_bases(name) if name else [])
    for text, where in sources:
        for m in re.finditer(r'(\d+)xb(\d+)', text):
            if int(m.group(2)) == b:
                return int(m.group(1)) * b * k, f'{m.group(0)} in {where}{acc}'
    return b * k, f'train_dataloader.batch_size{acc} (no NxbB in the config)'


def _iterations(cfg: Any, global_batch: int, dataset_len: int) -> tuple[int, str]:
    """Runner iterations (micro-batches, as the config counts them: with accumulation ``k`` an epoch is ``k`` times
    as many iterations as optimizer steps) and where the count comes from."""
    tc = cfg.get('train_cfg', {}) or {}
    if 'max_iters' in tc:
        return int(tc['max_iters']), 'train_cfg.max_iters'
    if 'max_epochs' in tc:
        per_epoch = math.ceil(dataset_len / global_batch) * config_accumulation(cfg)
        return int(tc['max_epochs']) * per_epoch, f"{tc['max_epochs']} epochs x {per_epoch} iterations"
    raise ValueError('train_cfg has neither max_iters nor max_epochs')


def fsdp_unit_bytes(model: torch.nn.Module) -> tuple[list[int], int]:
    """Trainable bytes of each FSDP unit (outermost modules whose class declares ``fsdp_unit``) and of the
    parameters outside every unit (the root unit)."""
    from transvae.engine.fsdp_model import is_fsdp_unit
    units: list[int] = []
    inside: set[int] = set()

    def visit(m: torch.nn.Module) -> None:
        if is_fsdp_unit(m):
            ps = [p for p in m.parameters() if p.requires_grad]
            units.append(sum(p.numel() * p.element_size() for p in ps))
            inside.update(id(p) for p in ps)
            return
        for c in m.children():
            visit(c)

    visit(model)
    rest = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad and id(p) not in inside)
    return units, rest


def per_gpu_peak(trace: StepTrace, strategy: str, gpus: int, units: tuple[list[int], int],
                 extra: dict[str, int]) -> tuple[int, dict[str, int]]:
    """Peak bytes of one GPU under ``strategy`` over the traced timeline, and its parts at that moment.

    Args:
        trace: the traced step.
        strategy: ``'ddp'`` or ``'fsdp'``.
        gpus: number of GPUs (FSDP shards over them; DDP adds buckets when > 1).
        units: :func:`fsdp_unit_bytes` of the model.
        extra: constant parts added as they are (the EMA copy).
    """
    tl = trace.timeline.to(torch.float64)
    k = {name: tl[:, i] for i, name in enumerate(MEMORY_KINDS)}
    trainable = float(trace.trainable_bytes)
    frozen = k['Parameter'] + k['Buffer'] - trainable
    acts = k['Activation'] + k['Temp'] + k['Other']
    if strategy == 'fsdp':
        n = float(gpus)
        unit_list, rest = units
        largest = max(unit_list, default=0)
        in_flight = rest * (1 - 1 / n) + (3 * largest) * (1 - 1 / n) if gpus > 1 else 0.0
        parts = dict(parameters=torch.full_like(acts, trainable / n), gradients=k['Gradient'] / n,
                     optimizer_state=k['Optstate'] / n, activations=acts, frozen=frozen,
                     fsdp_unsharded_in_flight=torch.full_like(acts, in_flight))
    elif strategy == 'ddp':
        parts = dict(parameters=torch.full_like(acts, trainable), gradients=k['Gradient'],
                     optimizer_state=k['Optstate'], activations=acts, frozen=frozen,
                     ddp_gradient_buckets=torch.full_like(acts, trainable if gpus > 1 else 0.0))
    else:
        raise ValueError(f"strategy must be 'ddp' or 'fsdp', got {strategy!r}")
    total = sum(parts.values())
    i = int(total.argmax())
    out = {name: int(round(float(v[i]))) for name, v in parts.items()}
    for name, v in extra.items():
        out[name] = int(v)
    return sum(out.values()), out


def _ema_bytes(cfg: Any, model: torch.nn.Module) -> int:
    """Bytes of the EMA copy when the config has an EMA hook: the trainable generator weights (``TrainableEMA``)."""
    from mmengine.hooks import EMAHook

    from transvae.registry import HOOKS, resolve_type
    hooks = list(cfg.get('custom_hooks', None) or [])
    has_ema = False
    for h in hooks:
        cls = resolve_type(h.get('type'), HOOKS, missing_ok=True) if isinstance(h, dict) else None
        if cls is not None and issubclass(cls, EMAHook):
            has_ema = True
    if not has_ema:
        return 0
    disc = getattr(model, 'discriminator', None)
    skip = {id(p) for p in disc.parameters()} if disc is not None else set()
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad and id(p) not in skip)


def _has_checkpointing(model: torch.nn.Module) -> bool:
    return any(isinstance(getattr(m, 'with_cp', None), bool) for m in all_modules(model))


def _matmul_flops(by_op: dict[str, int]) -> int:
    return sum(v for k, v in by_op.items() if k in MATMUL_OPS)


def plan_run(opts: PlanOptions) -> dict[str, Any]:
    """Plan ``opts.config`` (see the module docstring); the result is the JSON document of ``plan_run.py --json``."""
    from transvae.utils.errors import UserInputError
    t0 = time.perf_counter()
    if opts.gpus < 1:
        raise UserInputError(f'--gpus must be >= 1, got {opts.gpus}')
    if opts.strategy not in (None, 'ddp', 'fsdp'):
        raise UserInputError(f"--strategy must be 'ddp' or 'fsdp', got {opts.strategy!r}")
    cfg, precision = load_plan_config(opts.config, opts.amp, opts.preset, opts.cfg_options, opts.resolution)
    strategy = opts.strategy or ('fsdp' if cfg.get('strategy', None) else 'ddp')
    resolution = opts.resolution or _train_resolution(cfg)
    global_batch, batch_source = recipe_global_batch(cfg)
    config_k = config_accumulation(cfg)
    if opts.batch_size is not None:
        per_gpu = int(opts.batch_size)
        if per_gpu < 1:
            raise UserInputError(f'--batch-size must be >= 1, got {per_gpu}')
    elif global_batch % (opts.gpus * config_k) == 0:
        per_gpu = global_batch // (opts.gpus * config_k)
    else:
        raise UserInputError(f'the recipe global batch {global_batch} ({batch_source}) does not divide over '
                             f'{opts.gpus} GPUs: give --batch-size')
    # the config's accumulation, times what keeps the recipe's global batch on fewer GPUs (or a smaller --batch-size)
    extra_accumulation = max(1, global_batch // (per_gpu * opts.gpus * config_k))
    accumulation = config_k * extra_accumulation
    run_global = per_gpu * opts.gpus * accumulation
    peak_tflops = opts.peak_tflops or PEAK_TFLOPS['fp32' if precision == 'fp32' else 'bf16']
    gpu_bytes = opts.gpu_mem_gb * _GIB
    budget = opts.headroom * gpu_bytes

    from transvae.models.utils.speed import set_grad_checkpointing
    setup = build_training_setup(cfg, per_gpu, resolution, fake=True, foreach=True)
    model = setup.model
    config_ac = any(getattr(m, 'with_cp', None) is True for m in all_modules(model))  # with_cp=True in the config
    ac_on = bool(opts.activation_checkpointing or config_ac)
    traces: dict[bool, StepTrace] = {}
    if _has_checkpointing(model):  # each variant on a freshly built model, as a run starts
        ac_setup = build_training_setup(cfg, per_gpu, resolution, fake=True, foreach=True,
                                        activation_checkpointing=True)
        traces[True] = trace_training_step(ac_setup)
        del ac_setup
    set_grad_checkpointing(model, False)
    traces[False] = trace_training_step(setup)
    fwd_flops, fwd_by_op = trace_forward_flops(setup)
    units = fsdp_unit_bytes(model)
    ema = _ema_bytes(cfg, model)
    extra = {'ema_copy': ema} if ema else {}
    fsdp_ok = bool(getattr(model, 'train_step_is_single_update', True))

    variants: dict[str, dict] = {}
    for ac, tr in traces.items():
        for st in ('ddp', 'fsdp'):
            peak, parts = per_gpu_peak(tr, st, opts.gpus, units, extra)
            variants[f"{st}{'+ac' if ac else ''}"] = dict(
                strategy=st, activation_checkpointing=ac, peak_memory_bytes=peak, peak_memory_breakdown=parts,
                fits=peak <= budget, flops_per_step=tr.flops,
                available=(st == 'ddp' or fsdp_ok))
    if ac_on and True not in traces:
        raise UserInputError(f'{opts.config}: the model has no stage with activation checkpointing (`with_cp`)')
    key = f"{strategy}{'+ac' if ac_on else ''}"
    chosen = variants[key]
    flops = chosen['flops_per_step']
    step_time = flops / (opts.mfu * peak_tflops * 1e12)
    iters, iters_source = _iterations(cfg, global_batch, opts.dataset_len)
    wall_h = iters * extra_accumulation * step_time / 3600  # the config's iterations already count its micro-batches

    suggestions: list[str] = []
    smaller: dict[str, Any] = {}
    if strategy == 'fsdp' and not fsdp_ok:
        suggestions.append('FSDP cannot run this model (TransVAEFSDPStrategy refuses a train_step with a '
                           'discriminator update): train it with DDP')
    if not chosen['fits']:
        for name, v in variants.items():
            if name != key and v['fits'] and v['available']:
                suggestions.append(f"{_variant_words(v)}: {v['peak_memory_bytes'] / _GIB:.1f} GiB per GPU")
        if opts.search_batch:
            b = per_gpu
            while b > 1:
                b //= 2
                s = build_training_setup(cfg, b, resolution, fake=True, foreach=True, activation_checkpointing=ac_on)
                tr = trace_training_step(s)
                peak, parts = per_gpu_peak(tr, strategy, opts.gpus, units, extra)
                smaller[str(b)] = dict(peak_memory_bytes=peak, flops_per_step=tr.flops)
                if peak <= budget:
                    k = max(1, per_gpu // b) * accumulation
                    suggestions.append(
                        f'per-GPU batch {b} with gradient accumulation {k} (same global batch {run_global}: '
                        f'train_dataloader.batch_size={b}, optim_wrapper accumulative_counts={k}, max_iters x{k}): '
                        f'{peak / _GIB:.1f} GiB per GPU under {_variant_words(chosen)}')
                    break
        if not suggestions:
            suggestions.append('nothing tried fits: more GPUs with FSDP, a smaller crop, or a smaller model')

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return dict(
        config=opts.config, gpus=opts.gpus, amp=precision, per_gpu_batch=per_gpu, resolution=resolution,
        input_shape=list(setup.input_shape), strategy=strategy, activation_checkpointing=ac_on,
        peak_memory_bytes=chosen['peak_memory_bytes'], peak_memory_breakdown=chosen['peak_memory_breakdown'],
        flops_per_step=flops, step_time_s=step_time, recipe_wall_time_h=wall_h, fits=chosen['fits'],
        suggestions=suggestions, gpu_mem_bytes=int(gpu_bytes), memory_budget_bytes=int(budget),
        headroom=opts.headroom, mfu=opts.mfu, peak_tflops=peak_tflops, global_batch=run_global,
        recipe_global_batch=global_batch, global_batch_source=batch_source, accumulative_counts=accumulation,
        config_accumulative_counts=config_k, extra_accumulation=extra_accumulation,
        iterations=iters, iterations_source=iters_source, variants=variants, smaller_batches=smaller,
        flops_by_op=traces[ac_on].flops_by_op, model_forward_flops=fwd_flops, model_forward_flops_by_op=fwd_by_op,
        model_forward_matmul_flops=_matmul_flops(fwd_by_op),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        fsdp_units=len(units[0]), fsdp_largest_unit_bytes=max(units[0], default=0), fsdp_root_bytes=units[1],
        plan_seconds=time.perf_counter() - t0, planner_peak_rss_bytes=peak_rss,
        assumptions=[
            'traced on fake CPU tensors (CPU autocast for bf16; CPU fused attention stores what CUDA flash '
            'attention stores: output + logsumexp)',
            'optimizers on the multi-tensor (foreach) path, as CUDA runs them by default',
            'DDP: + one gradient bucket copy of the trainable parameters on > 1 GPU',
            'FSDP full shard: trainable parameters, gradients and optimizer state / GPUs; + parameters outside the '
            'blocks, 2 gathered blocks and 1 block gradient in flight; frozen networks replicated',
            f'fits = peak <= {opts.headroom:g} x {opts.gpu_mem_gb:g} GiB (CUDA context, workspaces, fragmentation)',
            f'step time = traced FLOPs / ({opts.mfu:g} x {peak_tflops:g} TFLOP/s); wall time excludes data loading, '
            'evaluation and checkpoints',
        ])


def _variant_words(v: dict) -> str:
    words = 'FSDP' if v['strategy'] == 'fsdp' else 'DDP'
    return words + (' + activation checkpointing' if v['activation_checkpointing'] else '')


def format_plan(plan: dict[str, Any]) -> str:
    """The planner's text report."""
    g = _GIB
    lines = [f"{plan['config']}",
             f"  {plan['gpus']} GPUs x {plan['gpu_mem_bytes'] / g:.0f} GiB, {plan['amp']}, per-GPU batch "
             f"{plan['per_gpu_batch']} (global {plan['global_batch']}, accumulation {plan['accumulative_counts']}), "
             f"input {'x'.join(str(s) for s in plan['input_shape'])}, {plan['trainable_params'] / 1e6:.1f}M trainable",
             f"  configured: {_variant_words(plan)} -> peak {plan['peak_memory_bytes'] / g:.2f} GiB per GPU "
             f"({'fits' if plan['fits'] else 'does NOT fit'} in {plan['memory_budget_bytes'] / g:.1f} GiB)"]
    for name, v in plan['peak_memory_breakdown'].items():
        lines.append(f'    {name:26s} {v / g:8.2f} GiB')
    lines.append('  variants (peak GiB per GPU):')
    for name, v in plan['variants'].items():
        note = '' if v['available'] else ' (not available for this model)'
        lines.append(f"    {_variant_words(v):38s} {v['peak_memory_bytes'] / g:8.2f}  "
                     f"{'fits' if v['fits'] else 'no'}{note}")
    lines.append(f"  FLOPs per step per GPU {plan['flops_per_step'] / 1e12:.2f} T (model forward "
                 f"{plan['model_forward_flops'] / 1e12:.3f} T); step {plan['step_time_s'] * 1e3:.0f} ms at MFU "
                 f"{plan['mfu']:g} of {plan['peak_tflops']:g} TFLOP/s")
    lines.append(f"  recipe: {plan['iterations']} iterations ({plan['iterations_source']}; micro-batches, the "
                 f"config's accumulation {plan['config_accumulative_counts']} included) x {plan['extra_accumulation']} "
                 f"-> {plan['recipe_wall_time_h']:.1f} h wall")
    for s in plan['suggestions']:
        lines.append(f'  suggestion: {s}')
    return '\n'.join(lines)
