"""Linear probe on frozen VAE posterior means (PAPER.md §4.2 (a), Table 2; protocol unspecified there: Q8).

Its command line is ``tools/analysis_tools/linear_probe.py TRAIN_LATENT_DIR VAL_LATENT_DIR``; :func:`probe_dirs`
runs it on two latent directories, :func:`train_probe` on in-memory latents. The latent directories are outputs of
``tools/extract_latents.py`` (``--split train`` and ``--split val``; labels are the class indices of the dataset).
Protocol (stated, as PAPER.md Q8 asks; MAE-style linear probing with SGD):

* features: the frozen posterior mean ``(d, h, w)``; ``gap`` = global average pool -> ``d`` dims (default),
  ``flatten`` = ``d*h*w`` dims (8192 for f16d32 at 256²); training images use their h-flipped latents at random
  when the shards have them (the only augmentation);
* classifier: ``BatchNorm1d(affine=False, eps=1e-6)`` + ``Linear`` (weight trunc-normal std 0.01, bias 0);
* optimisation: SGD momentum 0.9, weight decay 0, batch 1024, lr = 0.1 x batch / 256, 10 warm-up epochs then
  cosine to 0, 90 epochs, cross-entropy;
* metric: top-1 (and top-5) accuracy on the val latents after the last epoch.

Numbers depend on this choice: compare models only under the same protocol.

Memory. The shards are read one at a time and pooled while reading, so the raw latents of at most one shard are
alive at a time (ImageNet-train as f16d32 latents is ~41 GB raw, ~82 GB with flips):

* the training features (``(N, d)`` for ``gap``: 1.28M x 32 fp32 = 164 MB, twice that with flips;
  ``(N, d*h*w)`` for ``flatten``) are held in memory when they fit under ``--cache-mb`` (flips included). The probe
  is then trained exactly as by :func:`train_probe` on in-memory tensors (one global permutation per epoch).
* Otherwise they are **streamed**: every epoch reads the shards again in a random order and takes the items of each
  shard in a random permutation. This is shard-level shuffling, not a global permutation (a batch holds items of
  one shard, or of shards read one after the other), so its result differs from the in-memory path's. The items
  left over at the end of a shard start the next batch: both paths run the same ``ceil(N / batch)`` steps per epoch
  with the same batch sizes, hence the same lr schedule and the same BatchNorm1d running-statistics updates (one
  per step, same momentum).
* The val latents are always evaluated shard by shard, batch by batch (unlabelled val items count as misses).

The result records how the training features were held: ``data`` (``in_memory`` | ``streamed``) and ``feature_mb``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Protocol

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

__all__ = ['LinearProbe', 'ShardIndex', 'scan_shards', 'read_shard_features', 'TrainData', 'InMemoryFeatures',
           'StreamedShards', 'evaluate_batches', 'evaluate', 'fit_probe', 'train_probe', 'load_train_data',
           'probe_dirs']

Batches = Iterable[tuple[Tensor, Tensor]]


class LinearProbe(nn.Module):
    """``[GAP | flatten] -> BatchNorm1d(affine=False) -> Linear``."""

    def __init__(self, in_features: int, num_classes: int, pool: str = 'gap') -> None:
        super().__init__()
        if pool not in ('gap', 'flatten'):
            raise ValueError(f"pool must be 'gap' or 'flatten', got {pool!r}")
        self.pool = pool
        self.bn = nn.BatchNorm1d(in_features, affine=False, eps=1e-6)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    @staticmethod
    def features(z: Tensor, pool: str) -> Tensor:
        """``(B, d, h, w)`` -> ``(B, d)`` (gap) or ``(B, d*h*w)`` (flatten, a view)."""
        return z.mean(dim=(2, 3)) if pool == 'gap' else z.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Latents ``(B, d, h, w)`` (pooled here) or already pooled features ``(B, F)`` -> logits ``(B, K)``."""
        if x.dim() == 4:
            x = self.features(x.float(), self.pool)
        return self.fc(self.bn(x.float()))


def _lr_at(step: int, total: int, warmup: int, base_lr: float) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1 + math.cos(math.pi * t))


def _mb(num_bytes: int) -> float:
    return num_bytes / 2 ** 20


# ------------------------------------------------------------------------------------------------------ shard reading
@dataclass
class ShardIndex:
    """What a latent directory holds, read without loading any latents.

    Attributes:
        paths: the shard files, in ``list_shards`` order.
        counts: labelled items (label >= 0) per shard.
        num_items: all items, labelled or not.
        latent_shape: ``(d, h, w)``.
        has_flip: every shard has ``latents_flip``.
        max_label: the largest label (-1 when none).
    """
    paths: list[str]
    counts: list[int]
    num_items: int
    latent_shape: tuple[int, int, int]
    has_flip: bool
    max_label: int

    @property
    def num_labelled(self) -> int:
        return sum(self.counts)

    def in_features(self, pool: str) -> int:
        d, h, w = self.latent_shape
        return d if pool == 'gap' else d * h * w


def scan_shards(latent_dir: str) -> ShardIndex:
    """Labels and latent shapes of every shard of ``latent_dir`` (``latents`` are not read)."""
    from transvae.utils.latent_shards import list_shards
    paths = list_shards(latent_dir)
    if not paths:
        raise FileNotFoundError(f'no latents_*.safetensors in {latent_dir}')
    counts, shapes, flips, num_items, max_label = [], set(), [], 0, -1
    for path in paths:
        with safe_open(path, framework='pt') as f:
            labels = f.get_tensor('labels')
            shapes.add(tuple(f.get_slice('latents').get_shape()[1:]))
            flips.append('latents_flip' in f.keys())
        counts.append(int((labels >= 0).sum()))
        num_items += labels.numel()
        if labels.numel():
            max_label = max(max_label, int(labels.max()))
    if len(shapes) != 1:
        raise ValueError(f'{latent_dir}: shards of different latent shapes {sorted(shapes)}')
    return ShardIndex(paths, counts, num_items, shapes.pop(), all(flips), max_label)


def _pooled(z: Tensor, pool: str, keep: Optional[Tensor]) -> Tensor:
    """Raw latents ``(n, d, h, w)`` -> features ``(n', F)`` of the kept items (``keep``: ``(n,)`` bool or None)."""
    x = LinearProbe.features(z.float(), pool)
    return x if keep is None or bool(keep.all()) else x[keep]


def read_shard_features(path: str, pool: str, with_flip: bool = False,
                        labelled_only: bool = True) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """One shard's features, pooled as it is read (with ``gap`` the raw latents are dropped at once).

    Returns:
        ``features`` ``(n, F)``, ``labels`` ``(n,)`` int64, ``flip_features`` ``(n, F)`` (``None`` unless
        ``with_flip``); ``n`` counts only labelled items when ``labelled_only``.
    """
    with safe_open(path, framework='pt') as f:
        labels = f.get_tensor('labels')
        keep = labels >= 0 if labelled_only else None
        x = _pooled(f.get_tensor('latents'), pool, keep)
        xf = _pooled(f.get_tensor('latents_flip'), pool, keep) if with_flip else None
    return x, (labels if keep is None else labels[keep]), xf


# ----------------------------------------------------------------------------------------------- training data
class TrainData(Protocol):
    """Labelled training features, served as batches ``(x (B, F), y (B,))`` for one epoch at a time."""
    mode: str  # 'in_memory' | 'streamed'
    num_samples: int
    in_features: int
    feature_mb: float

    def batches(self, batch_size: int, g: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        ...


def _pick_flip(x: Tensor, xf: Optional[Tensor], idx: Tensor, g: torch.Generator) -> Tensor:
    """Rows ``idx`` of ``x`` ``(n, F)``, each replaced by its flipped row with probability 1/2 -> ``(len(idx), F)``."""
    out = x[idx]
    if xf is not None:
        use = torch.rand(idx.numel(), generator=g) < 0.5
        out = torch.where(use.view(-1, 1), xf[idx], out)
    return out


class InMemoryFeatures:
    """Features held in memory; each epoch is one global random permutation (the reference protocol).

    Args:
        features: ``(N, F)``.
        labels: ``(N,)`` int64, all >= 0.
        flip: ``(N, F)`` features of the h-flipped latents, or ``None``.
    """
    mode = 'in_memory'

    def __init__(self, features: Tensor, labels: Tensor, flip: Optional[Tensor] = None) -> None:
        self.features, self.labels, self.flip = features, labels, flip
        self.num_samples, self.in_features = features.shape
        nbytes = features.numel() * features.element_size()
        self.feature_mb = _mb(nbytes * (1 if flip is None else 2))

    @classmethod
    def from_shards(cls, index: ShardIndex, pool: str, with_flip: bool) -> 'InMemoryFeatures':
        """Read and pool shard by shard into preallocated ``(N, F)`` tensors (no concatenation of raw latents)."""
        n, dim = index.num_labelled, index.in_features(pool)
        feats = torch.empty(n, dim)
        flip = torch.empty(n, dim) if with_flip else None
        labels = torch.empty(n, dtype=torch.int64)
        pos = 0
        for path in index.paths:
            x, y, xf = read_shard_features(path, pool, with_flip)
            end = pos + y.numel()
            feats[pos:end], labels[pos:end] = x, y
            if flip is not None:
                flip[pos:end] = xf
            pos = end
            del x, xf  # free this shard before the next is read
        return cls(feats, labels, flip)

    def batches(self, batch_size: int, g: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(self.num_samples, generator=g)
        for i in range(0, self.num_samples, batch_size):
            idx = perm[i:i + batch_size]
            yield _pick_flip(self.features, self.flip, idx, g), self.labels[idx]


class StreamedShards:
    """Features read again from the shards every epoch: random shard order, random permutation within a shard.

    The items left at the end of a shard start the next batch, so an epoch is ``ceil(N / batch_size)`` batches of
    ``batch_size`` items (the last one ``N mod batch_size``), as in :class:`InMemoryFeatures`; at most one shard's
    latents (and flipped latents) plus one partial batch are in memory.
    """
    mode = 'streamed'

    def __init__(self, index: ShardIndex, pool: str, with_flip: bool) -> None:
        self.index, self.pool, self.with_flip = index, pool, with_flip
        self.num_samples, self.in_features = index.num_labelled, index.in_features(pool)
        self.feature_mb = _mb(4 * self.num_samples * self.in_features * (2 if with_flip else 1))

    def batches(self, batch_size: int, g: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        parts: list[tuple[Tensor, Tensor]] = []  # the batch being filled
        filled = 0
        for s in torch.randperm(len(self.index.paths), generator=g).tolist():
            if not self.index.counts[s]:
                continue
            x, y, xf = read_shard_features(self.index.paths[s], self.pool, self.with_flip)
            perm = torch.randperm(y.numel(), generator=g)
            i = 0
            while i < perm.numel():
                idx = perm[i:i + batch_size - filled]
                i += idx.numel()
                parts.append((_pick_flip(x, xf, idx, g), y[idx]))
                filled += idx.numel()
                if filled == batch_size:
                    yield _cat(parts)
                    parts, filled = [], 0
            del x, y, xf  # free this shard before the next is read
        if parts:
            yield _cat(parts)


def _cat(parts: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# ------------------------------------------------------------------------------------------------ training / eval
@torch.no_grad()
def evaluate_batches(model: LinearProbe, batches: Batches) -> dict[str, float]:
    """Top-1 / top-5 (%) over batches ``(latents (B, d, h, w) or features (B, F), labels (B,))``."""
    model.eval()
    device = next(model.parameters()).device
    top1 = top5 = n = 0
    for x, y in batches:
        logits = model(x.to(device))
        y = y.to(device)
        k = min(5, logits.shape[1])
        pred = logits.topk(k, dim=1).indices
        top1 += int((pred[:, 0] == y).sum())
        top5 += int((pred == y[:, None]).any(dim=1).sum())
        n += y.numel()
    return dict(top1=100.0 * top1 / max(n, 1), top5=100.0 * top5 / max(n, 1), num_val=n)


def _tensor_batches(latents: Tensor, labels: Tensor, batch_size: int) -> Batches:
    return ((latents[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, latents.shape[0], batch_size))


def _shard_batches(paths: list[str], pool: str, batch_size: int) -> Batches:
    """Val batches of pooled features, shard by shard (every item, labelled or not)."""
    for path in paths:
        x, y, _ = read_shard_features(path, pool, labelled_only=False)
        yield from _tensor_batches(x, y, batch_size)
        del x, y


def evaluate(model: LinearProbe, latents: Tensor, labels: Tensor, batch_size: int = 1024) -> dict[str, float]:
    """Top-1 / top-5 (%) of in-memory latents ``(N, d, h, w)`` (or features ``(N, F)``), labels ``(N,)``."""
    res = evaluate_batches(model, _tensor_batches(latents, labels, batch_size))
    return dict(top1=res['top1'], top5=res['top5'])


def fit_probe(train: TrainData, val_batches: Callable[[], Batches], num_classes: int, pool: str = 'gap',
              epochs: int = 90, batch_size: int = 1024, base_lr: float = 0.1, warmup_epochs: int = 10,
              seed: int = 0, device: str = 'cpu', progress: bool = True) -> dict:
    """Train the probe on ``train`` (either holding) and evaluate it on ``val_batches()``.

    Returns:
        ``dict(top1, top5, ...)`` with the protocol, ``data`` (``train.mode``) and ``feature_mb``.
    """
    from tqdm import tqdm
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = LinearProbe(train.in_features, num_classes, pool).to(device)
    lr = base_lr * batch_size / 256
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    steps_per_epoch = max(1, math.ceil(train.num_samples / batch_size))
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    step, loss = 0, torch.tensor(float('nan'))
    bar = tqdm(total=total, desc=f'probe ({train.mode})', disable=not progress)
    for _ in range(epochs):
        model.train()
        for x, y in train.batches(batch_size, g):
            for group in opt.param_groups:
                group['lr'] = _lr_at(step, total, warmup, lr)
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update()
    bar.close()
    if train.num_samples and step != total:
        raise RuntimeError(f'{step} steps run, {total} expected')  # the lr schedule assumes steps_per_epoch
    res = evaluate_batches(model, val_batches())
    res.update(pool=pool, epochs=epochs, batch_size=batch_size, lr=lr, in_features=train.in_features,
               num_classes=num_classes, num_train=int(train.num_samples), steps_per_epoch=steps_per_epoch,
               final_train_loss=float(loss.detach()), data=train.mode, feature_mb=train.feature_mb)
    return res


def train_probe(train_latents: Tensor, train_labels: Tensor, val_latents: Tensor, val_labels: Tensor,
                pool: str = 'gap', epochs: int = 90, batch_size: int = 1024, base_lr: float = 0.1,
                warmup_epochs: int = 10, num_classes: Optional[int] = None, train_flip: Optional[Tensor] = None,
                seed: int = 0, device: str = 'cpu', progress: bool = True) -> dict:
    """Train the probe on in-memory latents; returns ``dict(top1, top5, ...)`` on the val latents.

    Args:
        train_latents: ``(N, d, h, w)``; items with ``train_labels < 0`` are dropped.
        train_labels: ``(N,)`` int64.
        val_latents: ``(M, d, h, w)``.
        val_labels: ``(M,)`` int64.
        train_flip: ``(N, d, h, w)`` latents of the h-flipped training images, or ``None``.
    """
    keep = train_labels >= 0
    feats = LinearProbe.features(train_latents[keep].float(), pool)
    flip = None if train_flip is None else LinearProbe.features(train_flip[keep].float(), pool)
    train = InMemoryFeatures(feats, train_labels[keep], flip)
    num_classes = num_classes or int(max(train.labels.max(), val_labels.max())) + 1
    return fit_probe(train, lambda: _tensor_batches(val_latents, val_labels, batch_size), num_classes, pool=pool,
                     epochs=epochs, batch_size=batch_size, base_lr=base_lr, warmup_epochs=warmup_epochs,
                     seed=seed, device=device, progress=progress)


def load_train_data(index: ShardIndex, pool: str, cache_mb: float = 4096) -> TrainData:
    """:class:`InMemoryFeatures` when the features (flips included) fit under ``cache_mb``, else
    :class:`StreamedShards`."""
    streamed = StreamedShards(index, pool, index.has_flip)
    if streamed.feature_mb <= cache_mb:
        return InMemoryFeatures.from_shards(index, pool, index.has_flip)
    return streamed


def probe_dirs(train_dir: str, val_dir: str, pool: str = 'gap', cache_mb: float = 4096, batch_size: int = 1024,
               num_classes: Optional[int] = None, progress: bool = True, **kwargs) -> dict:
    """Train on the shards of ``train_dir`` and evaluate on those of ``val_dir`` (``kwargs``: of :func:`fit_probe`)."""
    tr, va = scan_shards(train_dir), scan_shards(val_dir)
    if tr.latent_shape != va.latent_shape:
        raise ValueError(f'train latents {tr.latent_shape} vs val latents {va.latent_shape}')
    train = load_train_data(tr, pool, cache_mb)
    if progress:
        print(f'linear probe: {train.num_samples} train features ({train.in_features} dims, '
              f'{"with" if tr.has_flip else "no"} flips, {train.feature_mb:.1f} MB) {train.mode} '
              f'(--cache-mb {cache_mb:g})')
    num_classes = num_classes or max(tr.max_label, va.max_label) + 1
    return fit_probe(train, lambda: _shard_batches(va.paths, pool, batch_size), num_classes, pool=pool,
                     batch_size=batch_size, progress=progress, **kwargs)
