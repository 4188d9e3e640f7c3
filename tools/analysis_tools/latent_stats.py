"""Latent-space uniformity metrics of VA-VAE (PAPER.md §4.2 (b)): density CV, normalised entropy, Gini.

``python tools/analysis_tools/latent_stats.py LATENT_DIR [--num-samples 10000] [--runs 10] [--out stats.json]``

LATENT_DIR is the output of ``tools/extract_latents.py`` (shards + ``latents_stats.safetensors``); the protocol and
its computation are :mod:`transvae.evaluation.latent_stats`.
"""
from __future__ import annotations

import argparse
import json

from transvae.evaluation.latent_stats import analyze_dir


def main(argv: list[str] | None = None) -> None:
    """Compute the metrics of LATENT_DIR, print them, write them with --out."""
    p = argparse.ArgumentParser(description='Latent density CV / normalised entropy / Gini (VA-VAE protocol)')
    p.add_argument('latent_dir', help='output directory of tools/extract_latents.py')
    p.add_argument('--num-samples', type=int, default=10000)
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the result as JSON')
    args = p.parse_args(argv)
    res = analyze_dir(args.latent_dir, args.num_samples, args.runs, args.seed)
    m, s = res['mean'], res['std']
    print(f"density CV {m['density_cv']:.4f} ± {s['density_cv']:.4f} | normalised entropy "
          f"{m['normalized_entropy']:.4f} ± {s['normalized_entropy']:.4f} | Gini {m['gini']:.4f} ± {s['gini']:.4f} "
          f"({args.runs} runs x {res['num_samples']} samples)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
