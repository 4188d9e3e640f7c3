"""Linear probe on frozen VAE posterior means (PAPER.md §4.2 (a), Table 2; protocol unspecified there: Q8).

``python tools/analysis_tools/linear_probe.py TRAIN_LATENT_DIR VAL_LATENT_DIR [--pool gap|flatten] [--epochs 90]``

The latent directories are outputs of ``tools/extract_latents.py`` (``--split train`` and ``--split val``; labels are
the class indices of the dataset). Protocol (stated, as PAPER.md Q8 asks; MAE-style linear probing with SGD):

* features: the frozen posterior mean ``(d, h, w)``; ``gap`` = global average pool -> ``d`` dims (default),
  ``flatten`` = ``d*h*w`` dims (8192 for f16d32 at 256²); training images use their h-flipped latents at random
  when the shards have them (the only augmentation);
* classifier: ``BatchNorm1d(affine=False, eps=1e-6)`` + ``Linear`` (weight trunc-normal std 0.01, bias 0);
* optimisation: SGD momentum 0.9, weight decay 0, batch 1024, lr = 0.1 x batch / 256, 10 warm-up epochs then
  cosine to 0, 90 epochs, cross-entropy;
* metric: top-1 (and top-5) accuracy on the val latents after the last epoch.

Numbers depend on this choice: compare models only under the same protocol.
"""
from __future__ import annotations

import argparse
import json
import math
import os.path as osp
import sys
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


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
        """``(B, d, h, w)`` -> ``(B, d)`` (gap) or ``(B, d*h*w)`` (flatten)."""
        return z.mean(dim=(2, 3)) if pool == 'gap' else z.flatten(1)

    def forward(self, z: Tensor) -> Tensor:
        return self.fc(self.bn(self.features(z.float(), self.pool)))


def _lr_at(step: int, total: int, warmup: int, base_lr: float) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model: LinearProbe, latents: Tensor, labels: Tensor, batch_size: int = 1024) -> dict[str, float]:
    model.eval()
    top1 = top5 = 0
    for i in range(0, latents.shape[0], batch_size):
        logits = model(latents[i:i + batch_size])
        y = labels[i:i + batch_size]
        k = min(5, logits.shape[1])
        pred = logits.topk(k, dim=1).indices
        top1 += int((pred[:, 0] == y).sum())
        top5 += int((pred == y[:, None]).any(dim=1).sum())
    n = latents.shape[0]
    return dict(top1=100.0 * top1 / n, top5=100.0 * top5 / n)


def train_probe(train_latents: Tensor, train_labels: Tensor, val_latents: Tensor, val_labels: Tensor,
                pool: str = 'gap', epochs: int = 90, batch_size: int = 1024, base_lr: float = 0.1,
                warmup_epochs: int = 10, num_classes: Optional[int] = None, train_flip: Optional[Tensor] = None,
                seed: int = 0, device: str = 'cpu', progress: bool = True) -> dict:
    """Train the probe; returns ``dict(top1, top5, ...)`` on the val latents."""
    from tqdm import tqdm
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep = train_labels >= 0
    train_latents, train_labels = train_latents[keep], train_labels[keep]
    if train_flip is not None:
        train_flip = train_flip[keep]
    num_classes = num_classes or int(max(train_labels.max(), val_labels.max())) + 1
    in_features = LinearProbe.features(train_latents[:1].float(), pool).shape[1]
    model = LinearProbe(in_features, num_classes, pool).to(device)
    lr = base_lr * batch_size / 256
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    n = train_latents.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    step = 0
    for _ in tqdm(range(epochs), desc='probe epochs', disable=not progress):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            z = train_latents[idx]
            if train_flip is not None:
                use = torch.rand(idx.numel(), generator=g) < 0.5
                z = torch.where(use.view(-1, 1, 1, 1), train_flip[idx], z)
            for group in opt.param_groups:
                group['lr'] = _lr_at(step, total, warmup, lr)
            loss = F.cross_entropy(model(z.to(device)), train_labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    res = evaluate(model, val_latents.to(device), val_labels.to(device))
    res.update(pool=pool, epochs=epochs, batch_size=batch_size, lr=lr, in_features=in_features,
               num_classes=num_classes, num_train=int(n), num_val=int(val_latents.shape[0]),
               final_train_loss=float(loss))
    return res


def probe_dirs(train_dir: str, val_dir: str, **kwargs) -> dict:
    from extract_latents import load_latents
    tr, va = load_latents(train_dir), load_latents(val_dir, with_flip=False)
    return train_probe(tr['latents'], tr['labels'], va['latents'], va['labels'],
                       train_flip=tr.get('latents_flip'), **kwargs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description='Linear probe on frozen posterior means (top-1)')
    p.add_argument('train_dir')
    p.add_argument('val_dir')
    p.add_argument('--pool', default='gap', choices=['gap', 'flatten'])
    p.add_argument('--epochs', type=int, default=90)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--base-lr', type=float, default=0.1, help='lr = base_lr * batch_size / 256')
    p.add_argument('--warmup-epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', help='write the result as JSON')
    args = p.parse_args(argv)
    res = probe_dirs(args.train_dir, args.val_dir, pool=args.pool, epochs=args.epochs, batch_size=args.batch_size,
                     base_lr=args.base_lr, warmup_epochs=args.warmup_epochs, seed=args.seed, device=args.device)
    print(f"linear probe ({args.pool}): top-1 {res['top1']:.2f}  top-5 {res['top5']:.2f}  "
          f"({res['num_train']} train / {res['num_val']} val latents, {res['num_classes']} classes)")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
