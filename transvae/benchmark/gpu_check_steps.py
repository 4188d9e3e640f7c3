"""The GPU check's step plan: which recipe configs it trains, what it changes in each (written into a child config
of the recipe, so every step is an ordinary ``tools/train.py`` run that can be read and repeated), and the command
line of every step and planner call (:mod:`transvae.benchmark.gpu_check_run` runs them; the entry points they
start are the command line's, :class:`CheckTools`: the library starts no tool of its own).

The steps (GPU sizes; ``dry`` gives the tiny CPU sizes of ``--dry-run``):

1. ``t_stage1``: 20 bf16 iterations of TransVAE-T f16d32 stage 1 (the recipe's per-GPU batch 32, 256² crops of the
   bundled photos, LPIPS-vgg, the VF loss's DINOv2 ViT-L/14 with random weights unless the recipe's weights file
   exists), saving its checkpoint;
2. ``t_gan``: 5 bf16 iterations of its GAN stage (stage 2) from that checkpoint;
3. ``dit_b1``: 20 iterations of LightningDiT-B/1 (its recipe's bf16 wrapper, batch 32) on random latents of the
   f16d32 shape (32×16×16);
4. ``benchmark``: ``tools/analysis_tools/benchmark.py`` rows of TransVAE-T f16d32 against its SD-VAE reference at
   256 / 512 / 1024;
5. ``l_fsdp``: 20 bf16 iterations of TransVAE-L f16d32 with FSDP on one rank (``tools/dist_train.sh CONFIG 1``) at
   per-GPU batch :data:`L_BATCH`.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Optional

from transvae.benchmark.gpu_check import TrainStep, config_text

__all__ = ['REPO', 'CheckTools', 'STEPS', 'CHAINS', 'STEP_INPUTS', 'STEP_ORDER', 'GPU_TIMEOUTS', 'DRY_TIMEOUTS', 'PLANNER_TIMEOUT',
           'RECIPE_DINOV2', 'DINOV2_ARCH', 'TINY_ARCH', 'TINY_DINOV2', 'TINY_DIT', 'L_BATCH', 'make_plan',
           'latent_shape', 'meter_file', 'photos_root', 'write_step_config', 'train_cmd', 'benchmark_cmd',
           'planner_cmd']

#: the repository root (the recipe configs and the tools/ the steps run are read from there)
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STEPS = ('t_stage1', 't_gan', 'dit_b1', 'benchmark', 'l_fsdp')
#: the order steps run in; a chain's steps run one after the other (t_gan starts from t_stage1's checkpoint), chains
#: run one at a time on a GPU and side by side with --jobs
CHAINS = (('t_stage1', 't_gan'), ('dit_b1', ), ('benchmark', ), ('l_fsdp', ))
#: the inputs the driver prepares (``transvae.benchmark.gpu_check_run.prepare``) that each step reads: a step starts
#: as soon as its own are written, while the driver still writes the others
STEP_INPUTS: dict[str, tuple[str, ...]] = dict(t_stage1=('photos', 'dinov2'), t_gan=('photos', 'dinov2'),
                                               dit_b1=('latents', ), benchmark=(), l_fsdp=('photos', 'dinov2'))
#: the order of the records in the report
STEP_ORDER = {n: i for i, n in enumerate(['prep'] + list(STEPS) + [f'planner_{s}' for s in STEPS])}
#: per-step timeouts in seconds; the whole run is also bounded by --budget-s
GPU_TIMEOUTS = dict(t_stage1=100, t_gan=70, dit_b1=70, benchmark=140, l_fsdp=150)
DRY_TIMEOUTS = dict(t_stage1=150, t_gan=150, dit_b1=150, benchmark=150, l_fsdp=200)
PLANNER_TIMEOUT = 300.0  # from its start; planners run in the background while the steps run
RECIPE_DINOV2 = 'checkpoints/dinov2_vitl14.safetensors'
DINOV2_ARCH = 'vit_large_patch14_dinov2.lvd142m'
#: the dry run's sizes: micro widths (the cpu preset's, one block per stage), a 1-block 64-wide DINOv2 and DiT
TINY_ARCH = dict(widths=[32, 32, 64, 64, 128], depths=[1, 1, 1, 1, 1],
                 cnn_block_cfg=dict(norm_cfg=dict(type='GN', num_groups=8)), norm_out_cfg=dict(type='GN', num_groups=8))
TINY_DINOV2 = dict(depth=1, embed_dim=64, num_heads=2)
TINY_DIT = dict(arch=None, depth=1, embed_dims=64, num_heads=2, patch_size=1)
#: TransVAE-L's per-GPU batch on the GPU: the recipe's (16 images x accumulation 2 since the 32-image batch did not fit
#: 80 GB), so 20 runner iterations are 10 optimizer steps
L_BATCH = 16


@dataclass(frozen=True)
class CheckTools:
    """The entry points the steps run, given by the check's command line (``tools/analysis_tools/gpu_check.py``).

    Attributes:
        train: the training script (``tools/train.py CONFIG``).
        dist_train: the distributed launcher (``bash tools/dist_train.sh CONFIG NGPUS``).
        benchmark: the benchmark script (``tools/analysis_tools/benchmark.py``).
        planner: the run planner (``tools/analysis_tools/plan_run.py``); where it does not exist, the report says
            "planner unavailable".
    """

    train: str
    dist_train: str
    benchmark: str
    planner: str


def photos_root() -> str:
    """The bundled photo set the VAE steps train on."""
    return osp.join(REPO, 'data', 'sample_photos')


def meter_file(out: str, name: str) -> str:
    """Where step ``name``'s :class:`~transvae.benchmark.step_meter.StepMeterHook` writes its measurements."""
    return osp.join(out, 'runs', name, 'step_meter.json')


def latent_shape(dry: bool) -> tuple[int, int, int]:
    """``(d, h, w)`` of the f16d32 latents LightningDiT trains on (256² images on the GPU, 64² in the dry run)."""
    return (32, 4, 4) if dry else (32, 16, 16)


def _vae_loader(dry: bool, crop: int, batch: Optional[int] = None) -> dict:
    pipeline = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=crop),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackVAEInputs')]
    loader: dict[str, Any] = dict(dataset=dict(_delete_=True, type='SamplePhotosDataset', data_root=photos_root(),
                                               split='train', repeat=20, pipeline=pipeline))
    if dry:
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    else:
        loader.update(num_workers=min(8, max(1, (os.cpu_count() or 2) // 2)))
        if batch is not None:
            loader['batch_size'] = batch
    return loader


def _no_eval() -> dict:
    return dict(val_dataloader=None, val_cfg=None, val_evaluator=None, test_dataloader=None, test_cfg=None,
                test_evaluator=None)


def _recipe(base_config: str) -> Any:
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, base_config), import_custom_modules=False)


def _with_meter(recipe: Any, out: str, name: str) -> dict:
    """custom_imports / custom_hooks of ``recipe`` plus the step meter (lists replace in mmengine configs)."""
    imports = list((recipe.get('custom_imports') or {}).get('imports', []))
    hooks = [dict(h) for h in (recipe.get('custom_hooks') or [])]
    hooks.append(dict(type='StepMeterHook', out_file=meter_file(out, name)))
    return dict(custom_imports=dict(imports=imports + ['transvae.benchmark.step_meter'], allow_failed_imports=False),
                custom_hooks=hooks)


def make_plan(out: str, dry: bool, dinov2_path: str) -> list[TrainStep]:
    """The training steps of the check writing under ``out``, the VF loss's DINOv2 read from ``dinov2_path``."""
    crop = 32 if dry else 256
    iters = 2 if dry else 20
    gan_iters = 2 if dry else 5
    random_dinov2 = osp.abspath(dinov2_path) != osp.join(REPO, RECIPE_DINOV2)
    foundation = dict(weights_path=dinov2_path)
    if dry:
        foundation['model_kwargs'] = TINY_DINOV2
    vf_note = ('VF target DINOv2 ViT-L/14 with random weights (same FLOPs)' if random_dinov2 and not dry else
               'VF target: a 1-block DINOv2 with random weights' if dry else 'VF target: the recipe\'s DINOv2 weights')
    data_note = f'data: bundled photos, {crop}² random crops'
    tiny_note = ['dry run: micro widths, batch 2'] if dry else []

    def vae(name: str, title: str, base: str, model: dict, n: int, launcher: str = 'train', plan: bool = True,
            save_last: bool = False, extra: Optional[dict] = None, notes: Optional[list] = None,
            batch: Optional[int] = None) -> TrainStep:
        if dry:
            model = dict(model, arch=TINY_ARCH)
        recipe = _recipe(base)
        ov = dict(model=model, train_dataloader=_vae_loader(dry, crop, batch), **_no_eval(),
                  default_hooks=dict(checkpoint=dict(save_last=save_last), logger=dict(interval=1 if dry else 5)),
                  **_with_meter(recipe, out, name), **(extra or {}))
        return TrainStep(name, title, base, ov, n, launcher=launcher, plan=plan,
                         notes=[data_note] + (notes or []) + tiny_note,
                         batch=2 if dry else batch or recipe.train_dataloader.batch_size)

    steps = [
        vae('t_stage1', f'TransVAE-T f16d32 stage 1, {iters} bf16 iterations',
            'configs/transvae/transvae-t_f16d32_8xb32-100e_in1k.py', dict(vf_loss=dict(foundation_cfg=foundation)),
            iters, save_last=True, notes=[vf_note]),
        vae('t_gan', f'TransVAE-T f16d32 stage 2 (GAN), {gan_iters} bf16 iterations',
            'configs/transvae/transvae-t_f16d32_8xb32-10e-gan_in1k.py', dict(vf_loss=dict(foundation_cfg=foundation)),
            gan_iters, plan=False,
            extra=dict(load_from=osp.join(out, 'runs', 't_stage1', f'iter_{iters}.pth'))),
    ]
    dit_base = 'projects/lightningdit/configs/lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py'
    dit_recipe = _recipe(dit_base)
    dit_loader: dict[str, Any] = dict(dataset=dict(data_root=osp.join(out, 'assets', 'latents_random')))
    dit = dict(train_dataloader=dit_loader, **_no_eval(),
               default_hooks=dict(checkpoint=dict(save_last=False), logger=dict(interval=1 if dry else 5)),
               **_with_meter(dit_recipe, out, 'dit_b1'))
    dit_notes = [f'data: random N(0, 1) latents of shape {latent_shape(dry)}, labels cycling over 1000 classes']
    if dry:
        dit_loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        dit['model'] = dict(latent_size=latent_shape(dry)[-1], backbone=TINY_DIT)
        dit_notes.append('dry run: a 1-block 64-wide DiT (patch 1), batch 2')
    steps.append(TrainStep('dit_b1', f"LightningDiT-B/1 on f16d32 latents, {iters} iterations (its recipe's bf16 "
                           'wrapper)', dit_base, dit, iters, amp=False, notes=dit_notes,
                           batch=2 if dry else dit_recipe.train_dataloader.batch_size))
    steps.append(vae('l_fsdp', f'TransVAE-L f16d32 stage 1 with FSDP on one rank, {iters} bf16 iterations',
                     'configs/transvae/transvae-l_f16d32_fsdp_8xb32-100e_in1k.py',
                     dict(vf_loss=dict(foundation_cfg=foundation)), iters, launcher='dist1', batch=L_BATCH,
                     notes=[vf_note, 'launched with tools/dist_train.sh CONFIG 1']
                     + ([] if dry else [f"per-GPU batch {L_BATCH} x accumulation 2 (the recipe's)"])))
    return steps


def write_step_config(path: str, step: TrainStep, dry: bool) -> None:
    """``step``'s child config of its recipe at ``path``, headed by its title and notes."""
    header = (f'{step.title}: written by tools/analysis_tools/gpu_check.py{" --dry-run" if dry else ""}.\n'
              f"The recipe {step.base_config} with the check's changes: " + '; '.join(step.notes) + '.')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        fh.write(config_text(osp.join(REPO, step.base_config), step.overrides, header))


def train_cmd(py: str, tools: CheckTools, step: TrainStep, config: str, work_dir: str, dry: bool, port: int
              ) -> tuple[list[str], dict[str, str]]:
    """The command line (and extra environment) that trains ``step`` from its child ``config``: ``tools.train``,
    or ``tools.dist_train CONFIG 1`` for the ``dist1`` launcher (on ``port``)."""
    extra = ['--work-dir', work_dir, '--max-iters', str(step.iters)]
    if step.amp:
        extra += ['--amp', '--amp-dtype', 'bfloat16']
    if step.launcher == 'dist1':
        cmd = ['bash', tools.dist_train, config, '1'] + extra
        # dry run: no pre-flight process (one interpreter less; tools/train.py checks the same config again)
        return cmd, dict(PYTHON=py, PORT=str(port), PREFLIGHT='0' if dry else '1')
    return [py, tools.train, config] + extra, {}


def benchmark_cmd(py: str, tools: CheckTools, dry: bool, out_json: str) -> list[str]:
    """The benchmark script on TransVAE-T f16d32 (bf16, batch 1) against its SD-VAE reference."""
    cmd = [py, tools.benchmark, 'configs/_base_/models/transvae-t_f16d32.py', '--batch-sizes', '1', '--json',
           out_json]
    if dry:  # no peak-memory processes: each is a fresh interpreter (tens of seconds on a loaded 2-core CPU)
        opts = [f'model.arch.{k}={json.dumps(v)}' for k, v in TINY_ARCH.items()]
        return cmd + ['--device', 'cpu', '--resolutions', '16', '32', '48', '--repeats', '1', '--warmup', '0',
                      '--no-memory', '--no-peak', '--cfg-options', *opts]
    return cmd + ['--device', 'cuda', '--amp', 'bf16', '--resolutions', '256', '512', '1024', '--repeats', '5',
                  '--warmup', '2']


def planner_cmd(py: str, tools: CheckTools, config: str, batch: int, gpu_mem_gb: float,
                peak_tflops: Optional[float], out_json: str) -> list[str]:
    """The run planner on the config the step trains, one GPU, the step's batch (not the recipe's global batch over
    one GPU), bf16, and the peak MFU is taken against (where known)."""
    cmd = [py, tools.planner, config, '--gpus', '1', '--batch-size', str(batch), '--gpu-mem-gb', f'{gpu_mem_gb:g}',
           '--amp', 'bf16', '--json', out_json]
    return cmd + (['--peak-tflops', f'{peak_tflops:g}'] if peak_tflops else [])
