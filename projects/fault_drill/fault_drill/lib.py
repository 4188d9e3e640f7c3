"""Helpers of the fault drill (:mod:`.drills`): the tiny drill model and config, image sets, forked training."""
from __future__ import annotations

import multiprocessing as mp
import os
import os.path as osp
import subprocess
import sys
from typing import Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))

DRILL_MODEL = dict(
    type='VAE',
    arch=dict(widths=[8, 16, 16], depths=[1, 1, 1], latent_channels=4, num_cnn_stages=2, head_dim=8,
              block_cfg=dict(type='TransVAEBlock',
                             attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=dict(type='RMSNorm')),
                             ffn_cfg=dict(type='FullConvFFN', ffn_ratio=1.0), norm_cfg=dict(type='LN')),
              cnn_block_cfg=dict(type='ResBlock'), pe_cfg=dict(type='RoPE2D', theta=10000.0), latent_shortcut=True),
    encoder=dict(type='TransVAEEncoder', down_cfg=dict(type='DCDownsample')),
    decoder=dict(type='TransVAEDecoder', up_cfg=dict(type='DCUpsample')),
    rec_loss=dict(type='ReconstructionNLL', pixel_weight=1.0, perceptual_cfg=None),
    kl_loss=dict(type='KLLoss', loss_weight=1e-6),
    data_preprocessor=dict(type='VAEDataPreprocessor'))

CONFIG = '''_base_ = [{runtime!r}]
custom_imports = dict(imports=['projects.fault_drill.fault_drill.hook'], allow_failed_imports=False)
model = {model!r}
_pipe = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=32), dict(type='RandomFlip', prob=0.5),
         dict(type='PackVAEInputs')]
_test_pipe = [dict(type='LoadImageRGB'), dict(type='CenterCrop', size=32), dict(type='PackVAEInputs')]
train_dataloader = dict(batch_size=4, num_workers={workers}, persistent_workers=False,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        collate_fn=dict(type='transvae.skip_none_collate'),
                        dataset=dict(type='ImageFolderDataset', data_root={root!r}, data_prefix='', layout='flat',
                                     pipeline=_pipe))
test_dataloader = dict(batch_size=4, num_workers={workers}, persistent_workers=False,
                       sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
                       collate_fn=dict(type='transvae.skip_none_collate'),
                       dataset=dict(type='ImageFolderDataset', data_root={root!r}, data_prefix='', layout='flat',
                                    test_mode=True, pipeline=_test_pipe))
test_evaluator = dict(type='PSNRMetric')
test_cfg = dict(type='SkipEmptyTestLoop')  # a batch of only unreadable files is passed over
optim_wrapper = dict(type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3), max_consecutive=3)
train_cfg = dict(type='IterBasedTrainLoop', max_iters={iters}, val_interval=10**9)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=3))
custom_hooks = {hooks!r}
randomness = dict(seed=0)
'''


# ---------------------------------------------------------------------------------------------------------------------
# shared helpers (the cases module imports these)
# ---------------------------------------------------------------------------------------------------------------------
def write_images(root: str, n: int, bad_fraction: float = 0.0, size: int = 40, seed: int = 0) -> dict:
    """``n`` files under ``root``: readable PNG / JPEG images, ``bad_fraction`` of them unreadable.

    The unreadable ones cycle through corrupt bytes, truncated, zero-byte and non-image files; every 7th readable
    image is *mislabelled* (a JPEG named ``.png``), which must decode normally. Returns the file lists.
    """
    import numpy as np
    from PIL import Image
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_bad = int(round(n * bad_fraction))
    out: dict = dict(good=[], bad=[], mislabelled=[])
    kinds = ('corrupt', 'truncated', 'zero', 'text')
    for i in range(n):
        low = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.BILINEAR)
        if i < n_bad:
            path = osp.join(root, f'img_{i:05d}.png')
            kind = kinds[i % len(kinds)]
            if kind == 'zero':
                open(path, 'wb').close()
            elif kind == 'text':
                with open(path, 'w') as f:
                    f.write('this is not an image\n')
            else:
                img.save(path)
                data = open(path, 'rb').read()
                with open(path, 'wb') as f:
                    f.write(data[:len(data) // 3] if kind == 'truncated' else data[:40] + bytes(rng.integers(
                        0, 256, len(data) - 40, dtype=np.uint8)))
            out['bad'].append(path)
        elif i % 7 == 3:
            path = osp.join(root, f'img_{i:05d}.png')
            img.save(path, format='JPEG', quality=90)
            out['mislabelled'].append(path)
            out['good'].append(path)
        else:
            path = osp.join(root, f'img_{i:05d}.png')
            img.save(path)
            out['good'].append(path)
    return out


def write_config(path: str, root: str, iters: int = 6, workers: int = 0, hooks: Optional[list] = None,
                 extra: str = '') -> str:
    with open(path, 'w') as f:
        f.write(CONFIG.format(runtime=osp.join(REPO, 'configs', '_base_', 'default_runtime.py'), model=DRILL_MODEL,
                              root=root, workers=workers, iters=iters, hooks=list(hooks or [])) + extra)
    return path


#: the command line behind each ``tools/<name>.py`` the drill runs in a forked child
TOOL_MODULES = {'train': 'transvae.apis.train_cli', 'test': 'transvae.apis.test_cli',
                'extract_latents': 'transvae.apis.extract_latents_cli'}


def warm_up() -> None:
    """Import torch, mmengine and transvae (and the tools) once, before forking: a child then starts in ~0 s."""
    import torch
    torch.set_num_threads(1)  # before any parallel op: forked children must not inherit a live OpenMP pool
    import mmengine.runner  # noqa: F401

    import transvae.apis  # noqa: F401
    from transvae.apis import register_all_modules
    register_all_modules()
    for name in TOOL_MODULES:
        load_tool(name)


def load_tool(name: str):
    """The module whose ``main(argv)`` is the command line of ``tools/<name>.py`` (a ``transvae.apis`` module)."""
    import importlib
    return importlib.import_module(TOOL_MODULES[name])


def _redirect_output(log: str) -> None:
    """Send this (forked) process's output to ``log``: fds 1 / 2, ``sys.stdout`` / ``sys.stderr`` and the stream
    handlers of existing loggers (they hold the parent's streams, e.g. pytest's capture)."""
    import logging
    f = open(log, 'a', buffering=1)
    os.dup2(f.fileno(), 1)
    os.dup2(f.fileno(), 2)
    old = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    sys.stdout = sys.stderr = f
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    try:
        from mmengine.logging import MMLogger
        loggers += list(MMLogger._instance_dict.values())
    except Exception:  # noqa: BLE001
        pass
    for lg in loggers:
        for h in lg.handlers:
            if type(h) is logging.StreamHandler or (isinstance(h, logging.StreamHandler) and h.stream in old):
                if not isinstance(h, logging.FileHandler):
                    h.setStream(f)


def _child_tool(tool: str, argv: list, log: str) -> None:
    _redirect_output(log)
    code = 0
    try:
        load_tool(tool).main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        print(e.code, flush=True)
    except BaseException as e:  # noqa: BLE001 - report and exit non-zero, as the tool would
        import traceback
        traceback.print_exc()
        code = 1 if not isinstance(e, KeyboardInterrupt) else 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def tool(name: str, argv: list, log: str, timeout: float = 600) -> int:
    """``tools/<name>.py argv`` in a forked child (stdout / stderr appended to ``log``); its exit code
    (``-9``: killed by SIGKILL; ``-999``: still running after ``timeout`` s, then killed)."""
    proc = mp.get_context('fork').Process(target=_child_tool, args=(name, list(argv), log))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return -999
    return proc.exitcode


def train(argv: list, log: str, timeout: float = 600) -> int:
    """:func:`tool` for ``tools/train.py``."""
    return tool('train', argv, log, timeout)


def run(cmd: list, timeout: float = 600, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))
    full.update(env or {})
    return subprocess.run(cmd, cwd=REPO, env=full, capture_output=True, text=True, timeout=timeout)


def last_state(work_dir: str, name: Optional[str] = None) -> dict:
    from transvae.engine.checkpoint_io import load_checkpoint_file
    path = osp.join(work_dir, name) if name else open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    return load_checkpoint_file(path)


def same_training_state(a: dict, b: dict) -> bool:
    """Weights and optimizer moments bit-identical."""
    import torch
    if a['state_dict'].keys() != b['state_dict'].keys():
        return False
    if not all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in a['state_dict']):
        return False
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k][m], sb[k][m]) for k in sa for m in sa[k] if hasattr(sa[k][m], 'shape'))
