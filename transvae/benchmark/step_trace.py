"""One training step of a config's real model, losses and optimizer, traced on fake tensors: peak memory by kind
and FLOPs, with no memory allocated for the model or its activations.

:func:`build_training_setup` builds what the runner would build from a config (the model through the registry, its
optimizer wrapper(s) through ``build_optim_wrapper`` and the config's constructor, a batch as the dataloader hands
it over) either for real or on fake tensors (the model on the ``meta`` device, then its parameters and buffers
replaced by fake CPU tensors of the same shapes, hidden frozen networks included; a foundation network that would
load a weight file only for training is built with random weights of the same shapes). :func:`trace_training_step`
creates the optimizer state (as a first step would) and runs ``model.train_step`` under torch's ``MemTracker``
(:class:`StepMemoryTracker`, memory by kind over time), then once more under torch's FLOP counter without its module
hooks (:class:`~.global_flops.GlobalFlopCounter`): a counter in the memory pass changes what is allocated.

FLOPs follow the benchmark's convention (:func:`transvae.utils.complexity.count_macs`, × 2): matmuls, convolutions
and attention (``QK^T`` and ``AV``) from torch's own formulas, plus MMEngine's handles for norms (5 FLOP-MACs per
element with an affine), nearest / bilinear upsampling and adaptive pooling (:func:`benchmark_flop_mapping`), so a
forward pass counts exactly twice the benchmark's MACs. Backward passes count torch's backward formulas
(convolution and matmul gradients, attention backward); norms and element-wise ops of the backward are not counted.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Optional

import torch
from torch import nn
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils._python_dispatch import TorchDispatchMode

from .global_flops import GlobalFlopCounter

__all__ = ['MEMORY_KINDS', 'TrainingSetup', 'StepTrace', 'StepMemoryTracker', 'AssumeFiniteScalars',
           'benchmark_flop_mapping', 'all_modules', 'build_training_setup', 'trace_training_step',
           'trace_forward_flops', 'MATMUL_OPS']

#: the memory kinds of MemTracker, in the order a timeline row stores them
MEMORY_KINDS = ('Parameter', 'Buffer', 'Gradient', 'Activation', 'Temp', 'Optstate', 'Other')
#: ops whose FLOPs are matmul-class (what an analytic count such as ``dit_forward_flops`` counts)
MATMUL_OPS = ('convolution', 'convolution_backward', 'mm', 'addmm', 'bmm', 'baddbmm',
              '_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_flash_attention_for_cpu_backward',
              '_scaled_dot_product_efficient_attention', '_scaled_dot_product_flash_attention',
              '_scaled_dot_product_efficient_attention_backward', '_scaled_dot_product_flash_attention_backward')

aten = torch.ops.aten


def _numel(shape: Any) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def benchmark_flop_mapping() -> dict:
    """``FlopCounterMode(custom_mapping=...)`` entries that make a forward count ``2 × count_macs`` of the benchmark.

    * CPU fused attention (``_scaled_dot_product_flash_attention_for_cpu`` and its backward), which torch's table
      lacks: :func:`~transvae.benchmark.step_meter.cpu_sdpa_flop_formulas` (torch's own ``sdpa_flop_count`` /
      ``sdpa_backward_flop_count``).
    * MMEngine's element-wise handles (``mmengine.analysis.jit_handles``), in FLOPs (× 2): affine GroupNorm /
      LayerNorm 5 per input element (4 without affine), nearest upsampling 1 and bilinear 4 per output element,
      adaptive average pooling 1 per input element.

    Each entry is keyed by the op packet and all its overloads: ``FlopCounterMode`` decomposes an overload that is
    not in its table before counting (nearest upsampling would otherwise become index ops and count nothing).
    """
    def group_norm(x, weight, *args, out_shape=None, **kwargs) -> int:
        return 2 * (5 if weight is not None else 4) * _numel(x)

    def layer_norm(x, normalized_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
        return 2 * (5 if weight is not None else 4) * _numel(x)

    def per_output(scale: int) -> Callable[..., int]:
        def count(*args, out_shape=None, **kwargs) -> int:
            return 2 * scale * _numel(out_shape)
        return count

    def per_input(x, *args, out_shape=None, **kwargs) -> int:
        return 2 * _numel(x)

    from .step_meter import cpu_sdpa_flop_formulas
    table = {
        **cpu_sdpa_flop_formulas(),
        aten.native_group_norm: group_norm,
        aten.native_layer_norm: layer_norm,
        aten.upsample_nearest2d: per_output(1),
        aten.upsample_bilinear2d: per_output(4),
        aten._adaptive_avg_pool2d: per_input,
    }
    out: dict = {}
    for packet, fn in table.items():
        out[packet] = fn
        for name in packet.overloads():
            out[getattr(packet, name)] = fn
    return out


class AssumeFiniteScalars(TorchDispatchMode):
    """Answer data-dependent scalar reads (``.item()``, ``bool(t)``) on fake tensors as an ordinary step would.

    A fake tensor has no values, so the step's checks (the non-finite guard of ``SafeOptimWrapper``:
    ``isfinite(..).all()``; a label range check: ``labels.min() < 0``) would stop the trace. The planner assumes a
    clean step: a boolean made by ``all`` / ``isfinite`` / ``eq`` reads ``True``, one made by anything else
    (``any``, comparisons, ``isnan``) ``False``; numbers read ``1`` / ``1.0``.
    """

    _TRUE_OPS = ('all', 'isfinite', 'eq', 'logical_and')

    def __init__(self) -> None:
        super().__init__()
        from torch.utils.weak import WeakIdKeyDictionary
        self._made_by = WeakIdKeyDictionary()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is aten._local_scalar_dense.default:
            t = args[0]
            if t.dtype == torch.bool:
                return self._made_by.get(t, 'all') in self._TRUE_OPS
            return 1.0 if t.is_floating_point() else 1
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dtype == torch.bool and out.numel() == 1:
            self._made_by[out] = func._overloadpacket.__name__
        return out


class _NoHandle:
    def remove(self) -> None:
        pass


class _FlatModuleState:
    """Stands in for MemTracker's per-module tracker: only whether autograd is running a backward pass.

    MemTracker's ``ModTracker`` keeps a module stack by name; a backward pass *inside* a forward (the adaptive loss
    weights take ``autograd.grad`` of the loss w.r.t. one weight) breaks its nesting. Whole-step figures need no
    module attribution, only the activation / temporary split, which this gives.
    """

    parents: frozenset = frozenset()

    def register_user_hooks(self, *hooks: Any) -> None:
        pass

    def clear_user_hooks(self) -> None:
        pass

    def __enter__(self) -> '_FlatModuleState':
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    @property
    def is_bw(self) -> bool:
        return torch._C._current_graph_task_id() != -1


class StepMemoryTracker(MemTracker):
    """torch's ``MemTracker`` with a timeline: the bytes of every memory kind after each op.

    Frozen parameters (no gradient hooks can be installed on them) are registered without hooks; every parameter and
    buffer of the model, hidden frozen networks included, is tracked from the start (:meth:`track_model`).

    Attributes:
        timeline: one row per op, the bytes of each of :data:`MEMORY_KINDS`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._mod_tracker = _FlatModuleState()
        self.timeline: list[tuple[int, ...]] = []
        self._kinds = [self._ref_class(k) for k in MEMORY_KINDS]

    def track_model(self, model: nn.Module) -> None:
        """Track every parameter and buffer of ``model`` (hidden submodules included); gradient hooks on the
        trainable parameters."""
        modules = all_modules(model)
        for m in modules:
            for p in m.parameters(recurse=False):
                if not p.requires_grad:
                    self._param_to_grad_hook_handles[p] = (_NoHandle(), _NoHandle())
        for m in modules:
            self._track_module_params_and_buffers(m, install_grad_hooks=True)

    def current_bytes(self) -> tuple[int, ...]:
        """The bytes of each of :data:`MEMORY_KINDS` now (a timeline row; zeros before anything is tracked)."""
        snap = next(iter(self._curr_mem_snap.values()), {})
        return tuple(int(snap.get(k, 0)) for k in self._kinds)

    def _update_peak_stats(self, peak_state: Any) -> None:
        super()._update_peak_stats(peak_state)
        if self._curr_mem_snap:
            self.timeline.append(self.current_bytes())


def all_modules(root: nn.Module) -> list[nn.Module]:
    """``root`` and every module below it, including networks held as plain attributes (LPIPS, the foundation
    model: frozen, hidden from ``named_modules`` so optimizers and checkpoints do not see them)."""
    seen: set[int] = set()
    out: list[nn.Module] = []
    stack = [root]
    while stack:
        m = stack.pop()
        if m is None or id(m) in seen:
            continue
        seen.add(id(m))
        out.append(m)
        stack.extend(m._modules.values())
        stack.extend(v for k, v in vars(m).items() if isinstance(v, nn.Module))
    return out


@dataclasses.dataclass
class TrainingSetup:
    """A model, its optimizer wrapper(s) and one batch, as the runner would hold them.

    Attributes:
        model: the model (``train()`` mode).
        optim_wrapper: the config's optimizer wrapper (or ``OptimWrapperDict``).
        data: one batch as the dataloader gives it (``dict(inputs=..., data_samples=...)``).
        batch: images (or latents) per batch.
        input_shape: ``(C, H, W)`` of one input.
        fake_mode: the ``FakeTensorMode`` the model lives in (``None``: real tensors).
        iteration: the iteration the step runs at (the GAN is active there when the model has one).
    """

    model: nn.Module
    optim_wrapper: Any
    data: dict
    batch: int
    input_shape: tuple[int, int, int]
    fake_mode: Optional[Any]
    iteration: int

    def mode(self) -> contextlib.AbstractContextManager:
        """The context the step runs in: the fake mode with :class:`AssumeFiniteScalars`, or nothing."""
        if self.fake_mode is None:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(self.fake_mode)
        stack.enter_context(AssumeFiniteScalars())
        return stack

    def optimizers(self) -> list[torch.optim.Optimizer]:
        wrappers = (list(self.optim_wrapper.values()) if hasattr(self.optim_wrapper, 'values')
                    else [self.optim_wrapper])
        return [w.optimizer for w in wrappers]


def _fakeify(model: nn.Module, fake_mode: Any, device: str) -> None:
    """Replace every meta parameter / buffer (hidden modules included) by a fake ``device`` tensor of its shape."""
    with fake_mode:
        for m in all_modules(model):
            for k, p in list(m._parameters.items()):
                if p is not None:
                    m._parameters[k] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=device),
                                                    requires_grad=p.requires_grad)
            for k, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[k] = torch.zeros(b.shape, dtype=b.dtype, device=device)


def _build_foundations_without_weights(model: nn.Module) -> None:
    """Give every lazily built frozen foundation network (DINOv2, weights read from a file at the first training
    step) its architecture with random weights: same shapes, so the same memory and FLOPs, no file needed."""
    from transvae.models.foundation.base import FrozenFoundationModel
    for m in all_modules(model):
        if isinstance(m, FrozenFoundationModel) and not m.is_built:
            arch = getattr(m, 'arch', None)
            if arch is None:
                raise TypeError(f'{type(m).__name__}: a lazily built foundation network the planner cannot build '
                                'without its weights (no `arch`)')
            import timm
            net = timm.create_model(arch, pretrained=False, img_size=m.img_size, num_classes=0,
                                    **getattr(m, 'model_kwargs', {}))
            m._set_net(net)


def _make_batch(model: nn.Module, batch: int, input_shape: tuple[int, int, int], device: str) -> dict:
    """A batch as the dataloader gives it: uint8 images ``[(3, H, W)] * B`` for a VAE; float latents
    ``(B, C, h, w)`` with class labels for a latent model (one with ``latent_shape``)."""
    if hasattr(model, 'latent_shape'):
        return dict(inputs=torch.zeros((batch, ) + tuple(input_shape), device=device),
                    data_samples=[dict(label=0) for _ in range(batch)])
    return dict(inputs=[torch.zeros(input_shape, dtype=torch.uint8, device=device) for _ in range(batch)],
                data_samples=[dict() for _ in range(batch)])


def build_training_setup(cfg: Any, batch: int, resolution: Optional[int], fake: bool = True,
                         foreach: Optional[bool] = None, activation_checkpointing: bool = False,
                         device: str = 'cpu') -> TrainingSetup:
    """Build the config's model, optimizer wrapper(s) and a batch, as the runner would.

    Args:
        cfg: a resolved config (``transvae.apis.load_config``; ``custom_imports`` already imported).
        batch: per-GPU batch.
        resolution: training crop size (``None`` for a latent model: its ``latent_shape``).
        fake: trace on fake tensors (nothing allocated); ``False`` builds the model for real (CPU measurements).
        foreach: force the optimizers' ``foreach`` (``True``: the multi-tensor path CUDA takes by default, with its
            full-size temporaries); ``None`` keeps the optimizer's default for ``device``.
        activation_checkpointing: switch on gradient checkpointing of every stage that has one (``False`` keeps
            the config's ``with_cp``).
        device: the device the tensors claim (``'cpu'``).

    Returns:
        The setup; its model is in ``train()`` mode.
    """
    from mmengine.optim import build_optim_wrapper

    from transvae.models.utils.speed import set_grad_checkpointing
    from transvae.registry import MODELS
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else copy.deepcopy(dict(cfg.model))
    fake_mode = None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # meta parameters: loading frozen weights is a no-op there
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode
            with torch.device('meta'):
                model = MODELS.build(model_cfg)
                _build_foundations_without_weights(model)
            fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
            _fakeify(model, fake_mode, device)
        else:
            model = MODELS.build(model_cfg)
            _build_foundations_without_weights(model)
            model.to(device)
    if activation_checkpointing:
        set_grad_checkpointing(model, True)
    ctx = fake_mode if fake_mode is not None else contextlib.nullcontext()
    ow_cfg = cfg.optim_wrapper.to_dict() if hasattr(cfg.optim_wrapper, 'to_dict') else dict(cfg.optim_wrapper)
    with ctx:
        optim_wrapper = build_optim_wrapper(model, ow_cfg)
        model.train()
        if hasattr(model, 'latent_shape'):
            input_shape = tuple(model.latent_shape)
        else:
            input_shape = (3, int(resolution), int(resolution))
        data = _make_batch(model, batch, input_shape, device)
    setup = TrainingSetup(model, optim_wrapper, data, batch, input_shape, fake_mode,
                          iteration=int(getattr(model, 'disc_start', 0) or 0))
    if foreach is not None:
        for opt in setup.optimizers():
            for group in opt.param_groups:
                group['foreach'] = foreach
    return setup


@contextlib.contextmanager
def _at_iteration(it: int) -> Iterator[None]:
    """The MessageHub's ``iter`` set to ``it`` (the GAN switches on by it), restored afterwards."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    old = hub.runtime_info.get('iter', None)
    hub.update_info('iter', it)
    try:
        yield
    finally:
        if old is None:
            hub.runtime_info.pop('iter', None)
        else:
            hub.update_info('iter', old)


@dataclasses.dataclass
class StepTrace:
    """Memory and FLOPs of one traced training step.

    Attributes:
        timeline: ``(T, 7)`` int64 bytes of each of :data:`MEMORY_KINDS` after each op of the step.
        trainable_bytes: bytes of the trainable parameters.
        flops: FLOPs of the step, benchmark convention.
        flops_by_op: the same by aten op name.
        held_before: bytes held before the step: parameters, buffers (frozen networks included), optimizer state.
    """

    timeline: torch.Tensor
    trainable_bytes: int
    flops: int
    flops_by_op: dict[str, int]
    held_before: int = 0

    def totals(self) -> torch.Tensor:
        return self.timeline.sum(1)

    def peak(self) -> tuple[int, dict[str, int]]:
        """Peak bytes and the kinds at that moment."""
        tot = self.totals()
        i = int(tot.argmax())
        return int(tot[i]), dict(zip(MEMORY_KINDS, (int(v) for v in self.timeline[i])))


def _prime_optimizer_state(setup: TrainingSetup) -> None:
    """Create every optimizer's state as its first step would (zero gradients, one ``step``, gradients dropped), so
    the traced step is a steady-state one without tracing a first step."""
    for opt in setup.optimizers():
        for group in opt.param_groups:
            for p in group['params']:
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)


def trace_training_step(setup: TrainingSetup) -> StepTrace:
    """Run ``model.train_step`` under the memory tracker, then again under the FLOP counter, the optimizer state in
    place (:func:`_prime_optimizer_state`). Two passes because a FLOP counter changes what is allocated: it runs the
    decomposition of every op it has no formula for (``silu_backward`` as ``sigmoid`` and products, each a temporary
    the size of the input), which raised TransVAE-T stage 1's traced peak with checkpointing from 427 to 507 MiB."""
    model = setup.model
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    tracker = StepMemoryTracker()
    counter = GlobalFlopCounter(custom_mapping=benchmark_flop_mapping())
    with setup.mode(), _at_iteration(setup.iteration):
        _prime_optimizer_state(setup)
        tracker.track_model(model)
        for opt in setup.optimizers():
            tracker.track_external(opt)
        # the kinds a timeline row sums, not the snapshot's values: torch 2.14's snapshot also holds its 'Total'
        # (earlier releases: 'Total Memory'), which counted everything held twice
        held = sum(tracker.current_bytes())
        with tracker:
            model.train_step(setup.data, setup.optim_wrapper)
        with counter:
            model.train_step(setup.data, setup.optim_wrapper)
    by_op = {str(k).replace('aten.', ''): int(v) for k, v in counter.get_flop_counts()['Global'].items()}
    timeline = torch.tensor(tracker.timeline, dtype=torch.int64).reshape(-1, len(MEMORY_KINDS))
    return StepTrace(timeline, trainable, int(counter.get_total_flops()), by_op, held)


def trace_forward_flops(setup: TrainingSetup) -> tuple[int, dict[str, int]]:
    """FLOPs of the model's forward pass on the setup's batch (``forward(mode='tensor')``: a VAE's encode +
    decode, a DiT's velocity prediction), benchmark convention; total and by op."""
    model = setup.model
    counter = GlobalFlopCounter(custom_mapping=benchmark_flop_mapping())
    was_training = model.training
    model.eval()
    try:
        with setup.mode(), torch.no_grad():
            data = model.data_preprocessor(setup.data, False)
            with counter:
                model(data['inputs'], data.get('data_samples'), mode='tensor')
    finally:
        model.train(was_training)
    by_op = {str(k).replace('aten.', ''): int(v) for k, v in counter.get_flop_counts()['Global'].items()}
    return int(counter.get_total_flops()), by_op
