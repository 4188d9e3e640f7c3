"""Model-zoo table: parameters (meta device) next to the paper's numbers, and optionally GMACs.

Usage::

    python tools/analysis_tools/model_zoo.py                       # every configs/_base_/models/*.py, params only
    python tools/analysis_tools/model_zoo.py CFG [CFG ...]         # a given list
    python tools/analysis_tools/model_zoo.py --macs --sizes t b    # + GMACs at 256^2 for the Tiny / Base sizes
    python tools/analysis_tools/model_zoo.py --macs --all          # GMACs of every size (> 1B needs lots of RAM)

Parameters are counted on the ``meta`` device (no memory). GMACs need real weights: they are traced with
:func:`transvae.utils.complexity.count_macs`, attention (``scaled_dot_product_attention``) included; models above
1B parameters are skipped unless ``--all``. Prints a Markdown table (and writes it with ``--out``).
"""
from __future__ import annotations

import argparse
import glob
import os.path as osp
import re
import sys
import time

import torch
from mmengine.config import Config
from torch import nn

from transvae.apis import register_all_modules
from transvae.utils.complexity import (PAPER_INCONSISTENT, PAPER_PARAMS, build_encoder_decoder,
                                       count_macs, count_params_meta)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
MODEL_DIR = osp.join(ROOT, 'configs', '_base_', 'models')

FAMILIES = {'transvae': 'TransVAE', 'cnn-vae': 'CNN-VAE', 'cnn-vae-noattn': 'CNN-VAE (no attn)',
            'vit-vae': 'ViT-VAE', 'swin-vae': 'Swin-VAE'}
SIZES = {'t': 'Tiny', 'b': 'Base', 'l': 'Large', 'h': 'Huge', 'g': 'Giant', 'micro': 'Micro'}

def sort_key(path: str) -> tuple:
    """Family, then size in Tiny .. Giant order, then latent."""
    stem = osp.splitext(osp.basename(path))[0]
    m = re.match(r'^(?P<fam>.+)-(?P<size>[a-z]+)_(?P<lat>f\d+d\d+)$', stem)
    if not m:
        return (stem, 99, '')
    order = list(SIZES)
    return (m['fam'], order.index(m['size']) if m['size'] in order else 98, m['lat'])


def parse_name(path: str) -> tuple[str, str, str]:
    """``(family, size, latent)`` from ``{family}-{size}_{latent}.py``."""
    stem = osp.splitext(osp.basename(path))[0]
    m = re.match(r'^(?P<fam>.+)-(?P<size>[a-z]+)_(?P<lat>f\d+d\d+)$', stem)
    if not m:
        return stem, '', ''
    return (FAMILIES.get(m['fam'], m['fam']), SIZES.get(m['size'], m['size']), m['lat'])


def _m(n: float) -> str:
    return f'{n / 1e6:.1f}'


def _pct(ours: float, paper: float) -> str:
    return f'{100 * (ours - paper) / paper:+.1f}%'


def rows_for(paths: list[str], macs: bool, size_filter: set[str] | None, allow_big: bool, res: int,
             verbose: bool = True) -> list[list[str]]:
    rows = []
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        fam, size, lat = parse_name(path)
        cfg = Config.fromfile(path)
        enc, dec = count_params_meta(cfg)
        paper = PAPER_PARAMS.get(stem)
        pe, pd = (f'{paper[0]:g}', f'{paper[1]:g}') if paper else ('-', '-')
        ptot = f'{paper[0] + paper[1]:g}' if paper else '-'
        diff = _pct(enc + dec, (paper[0] + paper[1]) * 1e6) if paper else '-'
        note = PAPER_INCONSISTENT.get(stem, '')
        row = [stem, fam, size, lat, f'{_m(enc)} / {pe}', f'{_m(dec)} / {pd}', f'{_m(enc + dec)} / {ptot}', diff]
        if macs:
            short = stem.split('_')[0].rsplit('-', 1)[-1]
            if size_filter and short not in size_filter:
                row += ['-', '-', '-']
            elif enc + dec > 1e9 and not allow_big:
                row += ['skip', 'skip', 'skip']
            else:
                t0 = time.time()
                torch.manual_seed(0)
                e, d = build_encoder_decoder(cfg)
                r = count_macs(nn.ModuleDict(dict(encoder=e, decoder=d)), (1, 3, res, res))
                row += [f'{r["encoder"] / 1e9:.1f}', f'{r["decoder"] / 1e9:.1f}', f'{r["total"] / 1e9:.1f}']
                del e, d
                if verbose:
                    print(f'  {stem}: GMACs traced in {time.time() - t0:.1f}s', file=sys.stderr)
        row.append(note)
        rows.append(row)
    return rows


def markdown(rows: list[list[str]], macs: bool, res: int) -> str:
    head = ['config', 'family', 'size', 'latent', 'enc M (ours / paper)', 'dec M (ours / paper)',
            'total M (ours / paper)', 'total diff']
    if macs:
        head += [f'enc GMACs@{res}', f'dec GMACs@{res}', f'total GMACs@{res}']
    head.append('note')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join('---' for _ in head) + '|']
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Parameter / GMAC table of the model configs')
    p.add_argument('configs', nargs='*', help='model configs (default: every configs/_base_/models/*.py)')
    p.add_argument('--macs', action='store_true', help='also trace GMACs (builds real weights on the CPU)')
    p.add_argument('--sizes', nargs='*', default=None,
                   help='size letters whose GMACs are computed, e.g. t b (default: all, > 1B only with --all)')
    p.add_argument('--all', action='store_true', help='compute GMACs for > 1B-parameter models too')
    p.add_argument('--resolution', type=int, default=256, help='square input size for GMACs')
    p.add_argument('--out', help='also write the Markdown table to this file')
    return p.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    register_all_modules()
    torch.set_grad_enabled(False)
    paths = args.configs or sorted(glob.glob(osp.join(MODEL_DIR, '*.py')), key=sort_key)
    rows = rows_for(paths, args.macs, set(args.sizes) if args.sizes else None, args.all, args.resolution)
    table = markdown(rows, args.macs, args.resolution)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return table


if __name__ == '__main__':
    main()
