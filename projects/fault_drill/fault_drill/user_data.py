"""Fault drill: a user's own image folder given as ``--data-root`` is never deleted or rewritten (issue 20, item 0).

``drill_user_data_root(ctx)`` gives each tool (``tools/train.py``, ``tools/test.py``, ``tools/extract_latents.py``)
a user's folder as ``--data-root`` with the bundled-photo micro config, in a real process: every attempt must end with
a non-zero exit, one ``error:`` line naming the folder, and the folder byte-identical (sha256 of every file, the set
of paths, mtimes; nothing created beside it). The own-images config must train on such a folder, flat or with
``train/`` + ``val/``, and evaluate on it, leaving it byte-identical too.

The folder helpers (:func:`make_user_folder`, :func:`folder_snapshot`) are shared with
``tests/reliability/test_user_data_root.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import random
import subprocess
import sys
from typing import Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
BUNDLED_CONFIG = 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'
OWN_CONFIG = 'configs/transvae/transvae-micro_f8d16_1xb16_own-images.py'
#: --cfg-options that keep a run of the micro config tiny (32² crops and evaluation, batch 2, no grids)
TINY_OPTIONS = ['train_dataloader.batch_size=2', 'val_dataloader.batch_size=2', 'test_dataloader.batch_size=2',
                'custom_hooks=[]']
TOOLS = ('train', 'test', 'extract_latents')


# ---------------------------------------------------------------------------------------------------------------------
# a user's folder and its fingerprint
# ---------------------------------------------------------------------------------------------------------------------
def make_user_folder(root: str, layout: str = 'flat', rng: Optional[random.Random] = None, n: int = 5) -> list[str]:
    """A folder of a user's own files under ``root``: real small images (PNG, JPEG; some smaller than a 32-64 px
    crop, one grey, one RGBA), a text file, a hidden file and a sub-folder.

    Args:
        root: the folder (created).
        layout: ``flat`` (images in ``root`` and ``root/holiday/``), ``train_val`` (``root/train/``, ``root/val/``),
            ``legacy`` (looks like an old bundled set -- ``manifest.json`` of the builder's format,
            ``train/camera/camera.png`` -- plus the user's own images added to it) or ``manifest`` (the user's own
            ``manifest.json`` of another format beside the images).
        rng: randomness of sizes / formats (default ``random.Random(0)``).
        n: images (at least 2 per split in ``train_val``).

    Returns:
        the paths written, relative to ``root``.
    """
    import numpy as np
    from PIL import Image
    rng = rng or random.Random(0)
    written: list[str] = []

    def image(rel: str, h: int, w: int, mode: str = 'RGB') -> None:
        path = osp.join(root, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        arr = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (h, w, 4), dtype=np.uint8)
        img = Image.fromarray(arr, 'RGBA').convert(mode)
        img.save(path, quality=90) if rel.endswith('.jpg') else img.save(path)
        written.append(rel)

    def text(rel: str, content: str) -> None:
        path = osp.join(root, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(content)
        written.append(rel)

    os.makedirs(root, exist_ok=True)
    modes = ['RGB', 'RGB', 'L', 'RGBA']
    if layout == 'train_val':
        folders = ['train'] * max(2, n - 2) + ['val'] * 2
    elif layout == 'legacy':
        folders = ['train/camera', 'train/mine', 'val/mine'] + [''] * max(0, n - 3)
    else:
        folders = [''] * max(1, n - 2) + ['holiday'] * 2
    for i, folder in enumerate(folders):
        h, w = rng.choice([(20, 24), (40, 48), (72, 64), (33, 90)])
        ext = '.png' if (folder == 'train/camera' or i % 2 == 0) else '.jpg'
        stem = 'camera' if folder == 'train/camera' else f'img_{i:03d}'
        image(osp.join(folder, stem + ext) if folder else stem + ext, h, w,
              'RGB' if ext == '.jpg' and modes[i % 4] == 'RGBA' else modes[i % 4])
    text('notes.txt', 'my photos, do not delete\n')
    text('.hidden_settings', 'x=1\n')
    if layout == 'legacy':
        text('manifest.json', json.dumps(dict(version=1, files=[], licences={}, counts={})))
    elif layout == 'manifest':
        text('manifest.json', json.dumps(dict(album='summer', files=sorted(written))))
    return written


def folder_snapshot(root: str) -> dict:
    """Every entry under ``root`` (symlinks not followed): ``{rel_path: (kind, size, mtime_ns, sha256 or '')}``, plus
    the names beside ``root`` under the key ``'..'`` (nothing may be created next to a user's folder either)."""
    snap: dict = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = osp.join(dirpath, name)
            st = os.lstat(path)
            rel = osp.relpath(path, root)
            if name in filenames and not osp.islink(path):
                with open(path, 'rb') as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                snap[rel] = ('file', st.st_size, st.st_mtime_ns, digest)
            else:
                snap[rel] = ('dir' if name in dirnames else 'link', 0, st.st_mtime_ns, '')
    snap['.'] = ('dir', 0, os.stat(root).st_mtime_ns, '')
    snap['..'] = sorted(os.listdir(osp.dirname(osp.abspath(root))))
    return snap


# ---------------------------------------------------------------------------------------------------------------------
# running the tools
# ---------------------------------------------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def tool_command(tool: str, config: str, data_root: str, work: str, checkpoint: str) -> list[str]:
    """The command line of ``tool`` (``train`` / ``test`` / ``extract_latents``) on ``data_root``; outputs in ``work``.

    ``[python, script, *arguments]``; ``[2:]`` are the arguments of the tool's ``main(argv)``. Paths are absolute.
    """
    config = config if osp.isabs(config) else osp.join(REPO, config)
    if tool == 'train':
        return [sys.executable, 'tools/train.py', config, '--data-root', data_root, '--work-dir', work,
                '--max-iters', '2', '--resolution', '32', '--cfg-options', *TINY_OPTIONS]
    if tool == 'test':
        return [sys.executable, 'tools/test.py', config, checkpoint, '--data-root', data_root, '--work-dir', work,
                '--out', osp.join(work, 'report.json'), '--cfg-options', *TINY_OPTIONS]
    if tool == 'extract_latents':
        return [sys.executable, 'tools/extract_latents.py', config, checkpoint, '--data-root', data_root, '--out',
                osp.join(work, 'latents'), '--split', 'val', '--resolution', '32', '--batch-size', '2',
                '--num-workers', '0']
    raise ValueError(f'unknown tool {tool!r}; expected one of {TOOLS}')


def run_tool(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def refused_cleanly(proc: subprocess.CompletedProcess, folder: str) -> bool:
    """Non-zero exit, no traceback, and a last stderr line ``error: ...`` naming ``folder``."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return (proc.returncode != 0 and 'Traceback' not in proc.stderr and bool(lines)
            and lines[-1].startswith('error: ') and osp.abspath(folder) in lines[-1])


def train_own_images(data_root: str, work: str) -> tuple[subprocess.CompletedProcess, Optional[str]]:
    """2 iterations of the own-images config on ``data_root`` (32² crops); the checkpoint path (or ``None``)."""
    proc = run_tool(tool_command('train', OWN_CONFIG, data_root, work, ''))
    last = osp.join(work, 'last_checkpoint')
    ckpt = open(last).read().strip() if proc.returncode == 0 and osp.isfile(last) else None
    return proc, ckpt


# ---------------------------------------------------------------------------------------------------------------------
# the drill
# ---------------------------------------------------------------------------------------------------------------------
def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def drill_user_data_root(ctx: dict) -> list[dict]:
    """Rows: the own-images config trains and evaluates on a user's folder (flat, then train/val), then each tool
    is given a user's folder with the bundled-photo config (flat, train/val, an old bundled set with the user's
    images added, a folder with the user's own ``manifest.json``) and must refuse it."""
    out, rng = ctx['out'], ctx.get('rng') or random.Random(0)
    n_att = 1 if ctx.get('quick') else int(ctx.get('attempts', 3))
    base = osp.join(out, 'user_data_root')
    os.makedirs(base, exist_ok=True)
    rows = []

    # the path a user was looking for: the own-images config on their folder, train 2 iterations + evaluate
    ckpt, survived, attempts = None, 0, max(1, min(n_att, 2))
    for i in range(attempts):
        layout = ('flat', 'train_val')[i % 2]
        folder = osp.join(base, f'own_{i}', 'my photos')  # a space in the name, as users have
        make_user_folder(folder, layout, rng, n=rng.randint(3, 7))
        before = folder_snapshot(folder)
        proc, c = train_own_images(folder, osp.join(base, f'own_{i}_work'))
        ok = c is not None
        if ok:
            ckpt = ckpt or c
            test = run_tool(tool_command('test', OWN_CONFIG, folder, osp.join(base, f'own_{i}_test'), c))
            ok = test.returncode == 0 and 'metrics: ' in test.stdout
        survived += int(ok and folder_snapshot(folder) == before)
    rows.append(_row('`--data-root` = a user\'s image folder (flat / `train/`+`val/`), own-images config: '
                     '`tools/train.py` 2 iterations + `tools/test.py`', attempts, survived,
                     'trains and evaluates on the folder; every file byte-identical (sha256, paths, mtimes)'))

    # the bundled-photo config given a user's folder: every tool refuses, nothing changes
    layouts = ('flat', 'train_val', 'legacy', 'manifest')
    for tool in TOOLS:
        survived = 0
        for i in range(n_att):
            layout = layouts[(i + TOOLS.index(tool)) % len(layouts)] if n_att > 1 else 'flat'
            folder = osp.join(base, f'{tool}_{i}', 'photos')
            make_user_folder(folder, layout, rng, n=rng.randint(2, 6))
            before = folder_snapshot(folder)
            if tool != 'train' and ckpt is None:
                break  # no checkpoint to evaluate (the own-images row failed)
            proc = run_tool(tool_command(tool, BUNDLED_CONFIG, folder, osp.join(base, f'{tool}_{i}_work'),
                                         ckpt or ''))
            survived += int(refused_cleanly(proc, folder) and folder_snapshot(folder) == before)
        rows.append(_row(f'`--data-root` = a user\'s folder (flat; `train/`+`val/`; an old bundled set with the '
                         f'user\'s images added; the user\'s own `manifest.json`), bundled-photo micro config: '
                         f'`tools/{tool}.py`',
                         n_att, survived, 'exit 1 with one `error:` line naming the folder; every file '
                         'byte-identical (sha256, paths, mtimes), nothing created beside it'))
    return rows


if __name__ == '__main__':  # python -m projects.fault_drill.fault_drill.user_data [OUT]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        ctx = dict(out=sys.argv[1] if len(sys.argv) > 1 else tmp, quick=False, attempts=3, rng=random.Random(0))
        for row in drill_user_data_root(ctx):
            print(f"| {row['fault']} | {row['attempts']} | {row['survived']} | {row['lost']} | {row['check']} |")
