"""The FID-10K (no CFG) series of the paper's Fig. 6, as transcribed in docs/PAPER.md §4.3 (k-steps -> FID)."""
from __future__ import annotations

_A = list(range(60, 201, 10))
_BC = list(range(40, 201, 10))

#: panel -> (title, {curve label: [(k-steps, FID), ...]})
FIG6: dict[str, tuple[str, dict[str, list[tuple[int, float]]]]] = {
    'a': ('LightningDiT-B/2, f8d16 VAEs, batch 1024', {
        'TransVAE-L-f8d16 (paper)': list(zip(_A, [54.29, 47.69, 43.27, 40.09, 37.43, 35.91, 34.68, 33.48, 32.55,
                                                   31.72, 30.84, 30.20, 29.67, 29.34, 28.72])),
        'FLUX-VAE (paper)': list(zip(_A, [66.60, 58.65, 53.58, 49.69, 47.05, 45.17, 43.40, 42.24, 41.38, 40.30,
                                          39.75, 39.68, 38.74, 37.76, 37.45])),
        'SD3.5-VAE (paper)': list(zip(_A, [57.93, 51.92, 48.00, 45.49, 42.85, 41.30, 39.75, 38.73, 37.55, 36.40,
                                           35.73, 35.27, 34.65, 34.13, 33.52])),
    }),
    'b': ('LightningDiT-B/1, f16d32 VAEs, batch 1024', {
        'TransVAE-T (paper)': list(zip(_BC, [102.29, 57.58, 42.32, 35.46, 31.36, 28.98, 27.49, 26.29, 25.19, 23.92,
                                             23.53, 23.11, 22.52, 22.33, 21.90, 21.79, 21.54])),
        'TransVAE-L (paper)': list(zip(_BC, [73.64, 39.62, 28.14, 22.87, 20.58, 18.98, 18.03, 17.04, 16.43, 16.18,
                                             15.84, 15.40, 14.96, 14.68, 14.57, 14.42, 14.30])),
    }),
    'c': ('LightningDiT-XL/1, f16d32 VAEs, batch 1024', {
        'TransVAE-T (paper)': list(zip(_BC[:7], [59.85, 27.09, 17.70, 14.25, 12.36, 11.16, 10.49])),
        'TransVAE-L (paper)': list(zip(_BC[:7], [41.82, 15.16, 9.81, 8.44, 7.71, 7.39, 7.04])),
    }),
}


def plot_fid_vs_step(runs: dict[str, list[tuple[int, float]]], path: str, panel: str | None = None,
                     title: str | None = None) -> str:
    """Plot measured ``runs`` (label -> [(step, FID)]) next to the paper's panel; steps in thousands on the x-axis.

    Returns the PNG path.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    if panel is not None:
        if panel not in FIG6:
            raise KeyError(f'panel must be one of {sorted(FIG6)}, got {panel!r}')
        paper_title, series = FIG6[panel]
        for label, pts in series.items():
            ax.plot([s for s, _ in pts], [f for _, f in pts], '--', marker='.', alpha=0.6, label=label)
        title = title or f'Fig. 6({panel}): {paper_title}'
    for label, pts in runs.items():
        pts = sorted(pts)
        ax.plot([s / 1000 for s, _ in pts], [f for _, f in pts], '-o', label=label)
    ax.set_xlabel('training steps (k)')
    ax.set_ylabel('FID (no CFG)')
    ax.set_title(title or 'FID vs training step', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
