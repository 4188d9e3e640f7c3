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

And once per variant: encoder / decoder parameter counts (the perceptual network excluded)::

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python tools/analysis_tools/study_diagnostics.py \
        work_dirs/reproduce/fig1 --seeds 0 1 --steps 250 500 750 1000 1250 --out work_dirs/analysis/fig1.md

The computation lives in ``projects/paper_studies/paper_studies/diagnostics.py`` (run from the repository root with
``PYTHONPATH=.``: the project is imported as ``projects.paper_studies``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from projects.paper_studies.paper_studies.diagnostics import diagnose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('root', help='a study root, e.g. work_dirs/reproduce/fig1')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    ap.add_argument('--steps', type=int, nargs='+', default=[250, 500, 750, 1000, 1250])
    ap.add_argument('--crop', type=int, default=128)
    ap.add_argument('--only', nargs='+', default=None, help='variant folders to diagnose (default: all)')
    ap.add_argument('--out', default=None, help='write the Markdown report here too')
    args = ap.parse_args()
    if not osp.isdir(args.root):
        ap.error(f'not a directory: {args.root}')
    report = diagnose(args.root, args.seeds, args.steps, args.crop, args.only)
    print(report)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(report)


if __name__ == '__main__':
    main()
