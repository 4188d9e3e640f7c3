"""Latent-space uniformity of VA-VAE (PAPER.md §4.2 (b)): density CV, normalised entropy and Gini of latent vectors.

Protocol (VA-VAE ``tools/latent_vis.py``), per run r (seed ``seed + r``), on the shards of
``tools/extract_latents.py`` (:mod:`transvae.utils.latent_shards`):

1. ``num_samples`` random images; from each, the latent (the original or, when ``--flip`` shards exist, the
   h-flipped one, chosen at random) at **one random spatial position**: a d-dim vector;
2. channel-wise normalisation with the dataset mean / std (``latents_stats.safetensors``);
3. 2-D t-SNE (sklearn, perplexity 30, 1000 iterations, ``random_state=42``);
4. scipy ``gaussian_kde`` (Scott bandwidth) on the embedding, evaluated at every point: densities rho_i;
5. density CV = std(rho) / mean(rho); normalised entropy = -sum p_i log2 p_i / log2 N with p = rho / sum rho;
   Gini = sum_i (2i - N - 1) rho_(i) / (N sum rho), rho sorted ascending, i = 1..N.

The metrics are averaged over ``runs`` (VA-VAE: 10); the per-run values and the std are reported too
(:func:`analyze_dir`; the command line is ``tools/analysis_tools/latent_stats.py``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def density_metrics(rho: np.ndarray) -> dict[str, float]:
    """CV, normalised entropy and Gini of positive densities ``rho`` ``(N,)`` (PAPER.md §4.2 definitions)."""
    rho = np.asarray(rho, dtype=np.float64)
    n = rho.size
    cv = float(rho.std() / rho.mean())
    p = rho / rho.sum()
    entropy = float(-(p * np.log2(np.clip(p, 1e-300, None))).sum() / np.log2(n))
    r = np.sort(rho)
    i = np.arange(1, n + 1)
    gini = float(((2 * i - n - 1) * r).sum() / (n * r.sum()))
    return dict(density_cv=cv, normalized_entropy=entropy, gini=gini)


def embed_and_density(vectors: np.ndarray, perplexity: float = 30.0, max_iter: int = 1000,
                      random_state: int = 42) -> np.ndarray:
    """t-SNE (2-D) of ``vectors`` ``(N, d)`` then the Gaussian-KDE density at each embedded point ``(N,)``."""
    from scipy.stats import gaussian_kde
    from sklearn.manifold import TSNE
    n = len(vectors)
    if perplexity >= n:  # tiny sample sets (e.g. the bundled photos): sklearn requires perplexity < N
        import warnings
        warnings.warn(f'only {n} vectors: t-SNE perplexity lowered from {perplexity} to {max(1.0, (n - 1) / 3):.1f} '
                      '(not the VA-VAE protocol; use >= 10000 samples for comparable numbers)')
        perplexity = max(1.0, (n - 1) / 3)
    emb = TSNE(n_components=2, perplexity=perplexity, max_iter=max_iter, random_state=random_state,
               init='pca').fit_transform(np.asarray(vectors, dtype=np.float32))
    return gaussian_kde(emb.T)(emb.T)


def latent_metrics(vectors: np.ndarray, **tsne_kwargs) -> dict[str, float]:
    """Metrics of one set of (normalised) latent vectors ``(N, d)``."""
    return density_metrics(embed_and_density(vectors, **tsne_kwargs))


def sample_vectors(latents: np.ndarray, num_samples: int, rng: np.random.Generator,
                   latents_flip: Optional[np.ndarray] = None, mean: Optional[np.ndarray] = None,
                   std: Optional[np.ndarray] = None) -> np.ndarray:
    """One random spatial position of ``num_samples`` random images (original or flipped at random), normalised.

    ``latents`` ``(M, d, h, w)``; ``mean`` / ``std`` broadcastable to ``(d,)``. Returns ``(num_samples, d)``.
    """
    m, d, h, w = latents.shape
    idx = rng.choice(m, size=min(num_samples, m), replace=False)
    use_flip = rng.random(idx.size) < 0.5 if latents_flip is not None else np.zeros(idx.size, bool)
    ys, xs = rng.integers(0, h, idx.size), rng.integers(0, w, idx.size)
    vec = np.empty((idx.size, d), dtype=np.float64)
    for k, (j, f, y, x) in enumerate(zip(idx, use_flip, ys, xs)):
        vec[k] = (latents_flip if f else latents)[j, :, y, x]
    if mean is not None:
        vec = (vec - np.reshape(mean, (1, -1))) / np.reshape(std, (1, -1))
    return vec


def run_metrics(latents: np.ndarray, num_samples: int = 10000, runs: int = 10, seed: int = 0,
                latents_flip: Optional[np.ndarray] = None, mean: Optional[np.ndarray] = None,
                std: Optional[np.ndarray] = None, progress: bool = True, **tsne_kwargs) -> dict:
    """Mean / std / per-run metrics over ``runs`` random draws."""
    from tqdm import tqdm
    per_run = []
    for r in tqdm(range(runs), desc='runs', disable=not progress):
        vec = sample_vectors(latents, num_samples, np.random.default_rng(seed + r), latents_flip, mean, std)
        per_run.append(latent_metrics(vec, **tsne_kwargs))
    keys = list(per_run[0])
    return dict(mean={k: float(np.mean([p[k] for p in per_run])) for k in keys},
                std={k: float(np.std([p[k] for p in per_run])) for k in keys},
                runs=per_run, num_samples=int(min(num_samples, latents.shape[0])))


def analyze_dir(latent_dir: str, num_samples: int = 10000, runs: int = 10, seed: int = 0,
                progress: bool = True) -> dict:
    """:func:`run_metrics` of the shards in ``latent_dir``, normalised with its ``latents_stats.safetensors``."""
    from transvae.utils.latent_shards import load_latents, load_stats
    data = load_latents(latent_dir)
    stats = load_stats(latent_dir)
    flip = data['latents_flip'].numpy() if 'latents_flip' in data else None
    return run_metrics(data['latents'].numpy(), num_samples, runs, seed, flip, stats['mean'].numpy().reshape(-1),
                       stats['std'].numpy().reshape(-1), progress=progress)
