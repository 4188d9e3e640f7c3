"""Why does a study variant score as it does? Colour vs luminance error, latent SNR, loss shares, parameter counts.

For every ``ROOT/<variant>/seed_<s>/iter_<step>.pth`` of a finished (or running) study this reconstructs the
held-out photos (``data/sample_photos/val``, short side resized and centre-cropped to ``--crop``, as the studies'
validation does) with the posterior mean and reports, per checkpoint:

- ``l1``: mean |x - x̂| on [-1, 1] (the L1 term of the claim metric);
- ``Y l1`` / ``C l1``: the same error split into BT.601 luma Y and chroma (Cb, Cr), each on [0, 1];
- ``sat``: mean chroma magnitude sqrt(Cb² + Cr²) of the reconstruction over that of the input (1 = full colour,
  0 = grayscale output);
- ``l1 mc``: ``l1`` after removing each photo's mean error per RGB channel (what a correct global colour would give);
- ``cast``: largest |mean over pixels of (x̂ - x)| of one RGB channel, on [0, 1] (a global colour shift);
- ``gain``: global colour response: the photos are mapped to [0.1, 0.9] and one RGB channel at a time is shifted by
  ±0.1 over the whole image; ``gain`` = change of that channel's mean in the reconstruction / 0.2, averaged over
  channels and photos (1 = a global colour change is reproduced, 0 = the output's mean colour ignores it);
- ``SNR``: latent signal-to-noise of the training posterior sample, mean over latent channels of
  var_{images, positions}(mu) / mean(sigma²) (what the decoder can read through the sampling noise);
- the logged held-out ``vgg/rec_l1`` / ``vgg/rec_lpips`` at that step and the LPIPS share of the training loss
  over the 50 iterations up to it, and the mean training KL there (nats per 64² crop: how much the latent carries).

And once per variant: encoder / decoder parameter counts (the perceptual network excluded). The command line is
``tools/analysis_tools/study_diagnostics.py``.
"""
from __future__ import annotations

import glob
import os.path as osp

import torch
from torch import Tensor

from .logs import num, read_scalars
from .photos import load_model, load_photo, resolve_checkpoint, val_photo_paths

_YCC = torch.tensor([[0.299, 0.587, 0.114],  # BT.601 luma
                     [-0.168736, -0.331264, 0.5],  # Cb
                     [0.5, -0.418688, -0.081312]])  # Cr


def to_ycc(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 3, H, W)`` (Y, Cb, Cr), chroma centred on 0."""
    return torch.einsum('cd,bdhw->bchw', _YCC.to(x), x)


def colour_stats(x: Tensor, y: Tensor) -> dict[str, float]:
    """Colour / luminance error of reconstructions ``y`` of ``x``, both ``(B, 3, H, W)`` in [0, 1]."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f'expected two equal (B, 3, H, W) batches, got {tuple(x.shape)} and {tuple(y.shape)}')
    xc, yc = to_ycc(x), to_ycc(y)
    chroma_x = xc[:, 1:].pow(2).sum(1).sqrt().mean()
    chroma_y = yc[:, 1:].pow(2).sum(1).sqrt().mean()
    err = y - x
    return {'l1': float((2 * err).abs().mean()),
            'l1 mc': float((2 * (err - err.mean(dim=(2, 3), keepdim=True))).abs().mean()),
            'Y l1': float((xc[:, 0] - yc[:, 0]).abs().mean()),
            'C l1': float((xc[:, 1:] - yc[:, 1:]).abs().mean()),
            'sat': float(chroma_y / chroma_x.clamp_min(1e-8)),
            'cast': float((y - x).mean(dim=(0, 2, 3)).abs().max())}


def latent_snr(mean: Tensor, logvar: Tensor) -> float:
    """Mean over latent channels of var(mu) over images and positions / mean posterior variance. ``(B, d, h, w)``."""
    sig = mean.transpose(0, 1).flatten(1).var(dim=1)  # (d,)
    noise = logvar.exp().transpose(0, 1).flatten(1).mean(dim=1)  # (d,)
    return float((sig / noise.clamp_min(1e-30)).mean())


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """``(encoder, decoder)`` parameter counts."""
    return tuple(sum(p.numel() for p in getattr(model, m).parameters()) for m in ('encoder', 'decoder'))


@torch.no_grad()
def reconstruct01(model: torch.nn.Module, images: Tensor) -> Tensor:
    """Posterior-mean reconstruction of ``(B, 3, H, W)`` in [0, 1], unclamped, in [0, 1] units."""
    return model.decode(model.encode(images * 2 - 1).mode(), out_size=images.shape[-2:]).add(1).div(2)


@torch.no_grad()
def colour_gain(model: torch.nn.Module, images: Tensor, delta: float = 0.1) -> float:
    """Mean d(mean of output channel c) / d(global shift of input channel c) over channels and photos."""
    base = images * 0.8 + 0.1  # [0.1, 0.9]: a shift of +-0.1 needs no clamping
    gains = []
    for c in range(3):
        shift = torch.zeros(1, 3, 1, 1)
        shift[0, c] = delta
        up, dn = reconstruct01(model, base + shift), reconstruct01(model, base - shift)
        gains.append((up[:, c] - dn[:, c]).mean(dim=(1, 2)) / (2 * delta))
    return float(torch.stack(gains).mean())


@torch.no_grad()
def checkpoint_row(model: torch.nn.Module, images: Tensor) -> dict[str, float]:
    """Diagnostics of one model on ``images`` ``(B, 3, H, W)`` in [0, 1] (posterior mean decoded)."""
    model.eval()
    post = model.encode(images * 2 - 1)
    rec = model.decode(post.mode(), out_size=images.shape[-2:]).add(1).div(2).clamp(0, 1)
    return {**colour_stats(images, rec), 'gain': colour_gain(model, images),
            'SNR': latent_snr(post.mean, post.logvar)}


def train_terms(train_rows: list[dict], step: int, window: int = 50) -> tuple[float, float]:
    """``(LPIPS / (L1 + LPIPS), mean KL)`` of the logged training terms over the ``window`` iterations up to
    ``step``; the KL (nats per training crop, summed over latent elements) bounds what the latent carries."""
    rows = [r for r in train_rows if step - window < int(r['step']) <= step and 'l1' in r and 'lpips' in r]
    if not rows:
        return float('nan'), float('nan')
    l1 = sum(num(r['l1']) for r in rows)
    lp = sum(num(r['lpips']) for r in rows)
    return lp / (l1 + lp), sum(num(r.get('kl')) for r in rows) / len(rows)


#: Per-checkpoint columns (``checkpoint_row`` keys) and their formats.
COLUMNS = (('l1', '.3f'), ('l1 mc', '.3f'), ('Y l1', '.3f'), ('C l1', '.3f'), ('sat', '.2f'), ('cast', '.3f'),
           ('gain', '.2f'), ('SNR', '.3g'))


def diagnose(root: str, seeds: list[int], steps: list[int], crop: int, only: list[str] | None = None) -> str:
    """The Markdown report for every variant folder of ``root`` (or the ``only`` ones)."""
    images = torch.stack([load_photo(p, crop)[0] for p in val_photo_paths()])
    head = ['variant', 'seed', 'step', *(c for c, _ in COLUMNS), 'val vgg l1', 'val vgg lpips', 'train lpips share',
            'train KL']
    lines = [f'# Diagnostics of `{root}` ({len(images)} held-out photos at {crop}², posterior mean)', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    sizes = []
    vdirs = sorted(d for d in glob.glob(osp.join(root, '*')) if osp.isdir(d) and not osp.basename(d).startswith('_'))
    for vdir in vdirs:
        label = osp.basename(vdir)
        if only and label not in only:
            continue
        for seed in seeds:
            wd = osp.join(vdir, f'seed_{seed}')
            if not osp.isdir(wd):
                continue
            val_rows, train_rows = read_scalars(wd)
            val = {int(r['step']): r for r in val_rows}
            for step in steps:
                try:
                    cfg, ckpt = resolve_checkpoint(wd, step=step)
                except FileNotFoundError:
                    continue
                model = load_model(cfg, ckpt)
                if not any(s[0] == label for s in sizes):
                    sizes.append((label, *param_counts(model)))
                r = checkpoint_row(model, images)
                v = val.get(step, {})
                share, kl = train_terms(train_rows, step)
                cells = [label, str(seed), str(step), *(format(r[c], f) for c, f in COLUMNS),
                         f"{num(v.get('vgg/rec_l1')):.3f}", f"{num(v.get('vgg/rec_lpips')):.3f}", f'{share:.2f}',
                         f'{kl:.0f}']
                lines.append('| ' + ' | '.join(cells) + ' |')
                print(lines[-1], flush=True)
                del model
    lines += ['', '| variant | encoder params | decoder params | total |', '|---|---|---|---|']
    lines += [f'| {n} | {e / 1e6:.3f}M | {d / 1e6:.3f}M | {(e + d) / 1e6:.3f}M |' for n, e, d in sizes]
    return '\n'.join(lines) + '\n'
