"""Tiny labelled image folders for stage tests."""
from __future__ import annotations

import numpy as np
from PIL import Image


def digit_folder(root, per_class: int = 3) -> None:
    """10 classes of 8×8 grey images: class c is a bright bar at row c % 8 (learnable tokens)."""
    g = np.random.default_rng(0)
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for k in range(per_class):
            a = (g.random((8, 8)) * 40).astype(np.uint8)
            a[c % 8, :] = 255
            a[:, (c + k) % 8] = 200
            Image.fromarray(a, mode="L").save(root / str(c) / f"{k}.png")
