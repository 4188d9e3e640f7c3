"""Pictures of trained study models: reconstructions during early training (Fig. 1) and at resolutions larger than
the training one (Fig. 3a), with the PSNR / SSIM of every held-out photo."""
from __future__ import annotations

import os.path as osp
import sys
from typing import Optional, Sequence

from .photos import load_model, load_photo, reconstruct_images, resolve_checkpoint, val_photo_paths
from .study import Study


def _grid(rows: list[tuple[str, list]], col_titles: Sequence[str], out_png: str, title: str, cell: float = 2.2,
          captions: Optional[dict] = None) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n_r, n_c = len(rows), len(col_titles)
    fig, axes = plt.subplots(n_r, n_c, figsize=(cell * n_c + 1.2, cell * n_r), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for c, img in enumerate(imgs):
            ax = axes[r][c]
            if img is not None:
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(col_titles[c], fontsize=9)
            if captions and (r, c) in captions:
                ax.set_xlabel(captions[(r, c)], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def early_training_grid(study: Study, root: str, steps: Sequence[int], out_png: str, seed: int = 0, crop: int = 128,
                        num_images: int = 4) -> str:
    """Fig. 1: rows = input + each variant at each step (``iter_{step}.pth`` of seed ``seed``), columns = photos."""
    paths = val_photo_paths(num=num_images, one_per_source=True)
    images = [load_photo(p, crop)[0] for p in paths]
    rows: list[tuple[str, list]] = [('input', images)]
    for v in study.variants:
        for step in steps:
            try:
                cfg, ckpt = resolve_checkpoint(osp.join(root, v.label, f'seed_{seed}'), step=step)
            except FileNotFoundError as e:
                print(f'{v.label} @ {step}: {e}; row left empty', file=sys.stderr)
                rows.append((f'{v.label}\nstep {step}\n(missing)', [None] * len(images)))
                continue
            rows.append((f'{v.label}\nstep {step}', reconstruct_images(load_model(cfg, ckpt), images)))
    names = [osp.basename(osp.dirname(p)) for p in paths]
    return _grid(rows, names, out_png, f'Reconstructions during early training ({crop}² centre crops of held-out '
                 f'photos, seed {seed})')


def extrapolation(models: Sequence[tuple[str, int, str, str]], resolutions: Sequence[int],
                  paths: Sequence[str]) -> tuple[list[dict], dict]:
    """Fig. 3(a): reconstruct every photo at every resolution with every model (whole image, no tiling).

    Args:
        models: ``(label, seed, config, checkpoint)`` per model.
        resolutions: crop sizes (multiples of the models' downsampling factor).
        paths: held-out photos (:func:`~.photos.load_photo`: upscaled only when smaller than the crop).

    Returns:
        ``(rows, recs)``: one row per (model, seed, resolution) with mean ``psnr`` / ``ssim`` over the photos and
        ``n_upscaled``; ``recs[(label, seed, resolution)]`` = the reconstructions, in ``paths`` order, and
        ``recs[('input', None, resolution)]`` the inputs.
    """
    from transvae.evaluation.functional.image_quality import psnr, ssim
    crops = {r: [load_photo(p, r) for p in paths] for r in resolutions}
    rows, recs = [], {}
    for label, seed, cfg, ckpt in models:
        model = load_model(cfg, ckpt)
        for r in resolutions:
            xs = [x for x, _ in crops[r]]
            ys = reconstruct_images(model, xs)
            ps = [float(psnr(y[None], x[None])[0]) for x, y in zip(xs, ys)]
            ss = [float(ssim(y[None], x[None])[0]) for x, y in zip(xs, ys)]
            rows.append(dict(model=label, seed=seed, resolution=r, psnr=sum(ps) / len(ps), ssim=sum(ss) / len(ss),
                             n_images=len(ps), n_upscaled=sum(u for _, u in crops[r]), checkpoint=ckpt))
            recs[(label, seed, r)] = ys
        del model
    for r, items in crops.items():
        recs[('input', None, r)] = [x for x, _ in items]
    return rows, recs


def extrapolation_picture(recs: dict, labels: Sequence[str], seed: int, resolutions: Sequence[int], index: int,
                          out_png: str, photo_name: str = '') -> str:
    """One photo at each resolution: rows = input + each model (of ``seed``), with that photo's PSNR under each."""
    from transvae.evaluation.functional.image_quality import psnr
    rows = [('input', [recs[('input', None, r)][index] for r in resolutions])]
    captions = {}
    for k, label in enumerate(labels, start=1):
        imgs = [recs.get((label, seed, r), [None] * (index + 1))[index] for r in resolutions]
        rows.append((label, imgs))
        for c, (r, y) in enumerate(zip(resolutions, imgs)):
            if y is not None:
                x = recs[('input', None, r)][index]
                captions[(k, c)] = f'PSNR {float(psnr(y[None], x[None])[0]):.2f} dB'
    return _grid(rows, [f'{r}x{r}' for r in resolutions], out_png,
                 f'Trained at 64²: {photo_name} reconstructed at larger sizes (seed {seed})', cell=3.0,
                 captions=captions)


def mean_over_seeds(rows: list[dict]) -> dict[tuple[str, int], tuple[float, float, int]]:
    """``{(model, resolution): (mean psnr, psnr spread = max - min over seeds, seeds)}``."""
    acc: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        acc.setdefault((r['model'], r['resolution']), []).append(r['psnr'])
    return {k: (sum(v) / len(v), max(v) - min(v), len(v)) for k, v in acc.items()}

