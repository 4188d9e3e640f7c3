"""torch.compile of the model computation (transvae/engine/compile.py): one graph, eager-equal losses, the switch.

The stage-1 loss computation (encoder -> posterior -> sample -> decoder -> L1 + LPIPS + KL [+ VF with its adaptive
weight]) and the inference reconstruction trace to one graph each (``torch._dynamo.explain``: zero graph breaks);
compiled training gives the eager losses over 20 AdamW steps; mmengine's ``compile`` config key reaches it through
``TransVAERunner._maybe_compile``. The equality test runs dynamo + AOTAutograd with the ``aot_eager`` backend (the
captured forward / backward graphs, run by eager kernels: seconds); the same test with inductor (C++ code generation,
minutes of compilation on a CPU: 13 minutes on this project's loaded 2-core machine) runs only with
``TRANSVAE_INDUCTOR_TEST=1``.
"""
from __future__ import annotations

import copy
import os
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config

from transvae.apis import register_all_modules
from transvae.engine.compile import (CompileConfigError, compile_model, explain_method, parse_compile_cfg,
                                     train_loss_method, uncompile_model)
from transvae.registry import MODELS

register_all_modules()
MICRO = 'configs/_base_/models/transvae-micro_f8d16.py'


def tiny_cfg(vf: bool = False, lpips: bool = True) -> dict:
    """TransVAE-micro's architecture (CNN stem + Transformer stages, RoPE) at widths 8-16, one block per stage."""
    cfg = Config.fromfile(MICRO).model
    cfg.arch.update(widths=[8, 8, 16, 16], depths=[1, 1, 1, 1], head_dim=8)
    cfg.arch.cnn_block_cfg.norm_cfg.num_groups = 4
    cfg.arch.norm_out_cfg.num_groups = 4
    if not lpips:
        cfg.rec_loss.perceptual_cfg = None
    cfg = cfg.to_dict()
    if vf:  # the stage-1 recipe's VAEGAN with the VF loss (offline VGG16 proxy, as `--preset cpu`)
        cfg.update(type='VAEGAN', vf_loss=dict(type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
                                               foundation_cfg=dict(type='VGG16Proxy', resize=None)))
    return cfg


def build(cfg: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg)).train()


def loss_args(model: torch.nn.Module, x: torch.Tensor) -> tuple:
    return (x, 7) if train_loss_method(model) == 'generator_losses' else (x, )


@pytest.mark.parametrize('vf', [False, True], ids=['VAE-L1-LPIPS-KL', 'VAEGAN-VF'])
def test_training_losses_trace_to_one_graph(vf):
    """Encoder -> posterior -> sample -> decoder -> losses (and the VF adaptive weight's autograd.grad): no break."""
    model = build(tiny_cfg(vf=vf))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    name = train_loss_method(model)
    assert name == ('generator_losses' if vf else 'loss')
    ex = explain_method(model, name, *loss_args(model, x))
    reasons = [r.reason.splitlines()[0] for r in ex.break_reasons]
    assert ex.graph_break_count == 0, reasons
    assert ex.graph_count == 1


def test_inference_traces_to_one_graph():
    """``reconstruct`` (padding, encoder, posterior mean, decoder, crop) and the encoder / decoder modules that
    ``compile_autoencoder`` (the benchmark's ``--compile``) compiles: no break."""
    model = build(tiny_cfg()).eval()
    x = torch.rand(1, 3, 40, 24) * 2 - 1  # not a multiple of f=8: the padding branch is traced too
    with torch.no_grad():
        ex = explain_method(model, 'reconstruct', x)
        assert ex.graph_break_count == 0 and ex.graph_count == 1, [r.reason for r in ex.break_reasons]
        for module, inp in ((model.encoder, torch.rand(1, 3, 32, 32)), (model.decoder, torch.randn(1, 16, 4, 4))):
            torch._dynamo.reset()
            ex = torch._dynamo.explain(module)(inp)
            assert ex.graph_break_count == 0, [r.reason for r in ex.break_reasons]


def _train(model: torch.nn.Module, xs: list[torch.Tensor]) -> np.ndarray:
    """AdamW (lr 1e-4, the recipes') on the sum of the ``loss*`` terms, as mmengine's parse_losses sums them."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    name = train_loss_method(model)
    out = []
    torch.manual_seed(123)  # the posterior samples
    for i, x in enumerate(xs):
        losses = getattr(model, name)(*loss_args(model, x))
        losses = losses[0] if isinstance(losses, tuple) else losses
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        out.append(total.item())
    return np.array(out)


def _compare(cfg: dict, backend: str, steps: int = 20) -> tuple[np.ndarray, np.ndarray, float]:
    eager = build(cfg)
    compiled = copy.deepcopy(eager)
    assert compile_model(compiled, dict(inference=False, backend=backend)) == [train_loss_method(eager)]
    g = torch.Generator().manual_seed(1)
    xs = [torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(steps)]
    torch._dynamo.reset()
    a = _train(eager, xs)
    t = time.perf_counter()
    b = _train(compiled, xs)
    return a, b, time.perf_counter() - t


@pytest.mark.parametrize('vf', [False, True], ids=['VAE-L1-LPIPS-KL', 'VAEGAN-VF'])
def test_compiled_training_matches_eager_20_steps(vf):
    a, b, _ = _compare(tiny_cfg(vf=vf), 'aot_eager')
    rel = np.abs(a - b) / np.abs(a)
    assert rel.max() <= 1e-4, rel
    assert len(np.unique(a)) > 10  # the model trains: 20 different losses


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('TRANSVAE_INDUCTOR_TEST') != '1',
                    reason='compiles with inductor for many CPU minutes; run with TRANSVAE_INDUCTOR_TEST=1')
def test_inductor_training_matches_eager_20_steps():
    """Inductor's kernels (C++ on the CPU), with torch's RNG for the posterior sample (``fallback_random``: inductor
    otherwise draws its own random numbers); L1 + KL, no LPIPS, to keep the compilation short."""
    import torch._inductor.config as inductor_config
    with inductor_config.patch(fallback_random=True):
        a, b, seconds = _compare(tiny_cfg(lpips=False), 'inductor')
    rel = np.abs(a - b) / np.abs(a)
    assert rel.max() <= 1e-4, (rel, seconds)


def test_compiled_methods_are_bound_instance_attributes():
    """state_dict keys unchanged, a deep copy is bound to the copy, uncompile restores the class's methods."""
    model = build(tiny_cfg(lpips=False))
    keys = list(model.state_dict())
    assert compile_model(model, True) == ['loss', 'reconstruct']
    assert list(model.state_dict()) == keys
    assert model.loss.__self__ is model and 'loss' in vars(model)
    clone = copy.deepcopy(model)
    assert clone.loss.__self__ is clone and clone.reconstruct.__self__ is clone
    assert sorted(uncompile_model(model)) == ['loss', 'reconstruct']
    assert 'loss' not in vars(model) and model.loss.__func__ is type(model).loss
    assert compile_model(model, False) == [] and compile_model(model, None) == []
    assert compile_model(model, dict(train=False, inference=False)) == []


@pytest.mark.parametrize('cfg, match', [('yes', 'bool or a dict'), (dict(mdoe='max-autotune'), "unknown key.*'mdoe'"),
                                        (dict(train='no'), 'compile.train must be True or False')])
def test_bad_compile_config_is_refused(cfg, match):
    with pytest.raises(CompileConfigError, match=match):
        parse_compile_cfg(cfg)


def test_compile_key_of_the_config_reaches_the_model(tmp_path):
    """mmengine's top-level ``compile`` key: TransVAERunner compiles the loss method (not mmengine's train_step) and
    trains through it."""
    from tiny_vae_fixtures import TINY_DIST_DATA_CFG, build_runner, write_config
    cfg_path = write_config(str(tmp_path / 'cfg.py'), max_iters=2, val_interval=10,
                            extra=TINY_DIST_DATA_CFG + f'\nmodel = {tiny_cfg(lpips=False)!r}\n'
                            "compile = dict(backend='aot_eager', inference=False)\n")
    runner = build_runner(cfg_path, str(tmp_path / 'work'))
    runner.train()
    model = runner.model
    assert 'loss' in vars(model) and getattr(model.loss.__func__, '__transvae_compiled__', False)
    assert 'train_step' not in vars(model)  # mmengine's own compile of train_step did not run
    assert runner.message_hub.get_info('iter') == 2 or runner.iter == 2


def test_compile_autoencoder_compiles_encoder_and_decoder_with_static_shapes():
    """``speed.compile_autoencoder`` (benchmark ``--compile``): the encoder and the decoder run one ``forward``
    (``_BackboneBase``), so with torch's automatic dynamic shapes the decoder's first call, at other sizes than the
    encoder's, was compiled with symbolic sizes, which inductor (torch 2.14, CPU) could not lower. Every graph it
    captures must be static, through a training step and an inference call."""
    from transvae.models.utils.speed import compile_autoencoder
    symbolic: list[bool] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        symbolic.append(any(isinstance(d, torch.SymInt) for t in example_inputs if isinstance(t, torch.Tensor)
                            for d in t.shape) or any(isinstance(t, torch.SymInt) for t in example_inputs))
        return gm.forward

    torch._dynamo.reset()
    model = compile_autoencoder(build(tiny_cfg(lpips=False)), backend=backend)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for _ in range(2):
        post = model.encode(x)
        model.decode(post.sample()).abs().mean().backward()
    with torch.no_grad():
        model.eval().reconstruct(x)
    torch._dynamo.reset()
    assert len(symbolic) >= 2 and not any(symbolic), symbolic
