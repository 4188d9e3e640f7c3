"""Image-file helpers shared by the dataset tests (module `dataset_helpers`, on the path via tests/helpers)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def write_rgb(path, h: int = 24, w: int = 32, seed: int = 0, fmt: str | None = None) -> np.ndarray:
    arr = np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(str(path), format=fmt)
    return arr


def make_corrupt_folder(root) -> dict:
    """A flat folder with one good image and three bad files (truncated JPEG, empty, text named .jpg)."""
    root.mkdir(parents=True, exist_ok=True)
    write_rgb(root / 'a_good.png', 40, 48)
    write_rgb(root / 'b_full.jpg', 64, 64, seed=1, fmt='JPEG')
    data = (root / 'b_full.jpg').read_bytes()
    (root / 'b_full.jpg').unlink()
    (root / 'b_truncated.jpg').write_bytes(data[:len(data) // 2])
    (root / 'c_empty.jpg').write_bytes(b'')
    (root / 'd_text.jpg').write_text('this is not an image\n')
    good = {str(root / 'a_good.png')}
    bad = {str(root / n) for n in ('b_truncated.jpg', 'c_empty.jpg', 'd_text.jpg')}
    return dict(good=good, bad=bad)
