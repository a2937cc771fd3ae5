"""The page's bundled examples: scikit-image's photos (files inside its wheel, as the demo uses), degraded
with noise, rain and haze by the training data's synthesis (:mod:`ndrsr.data.degradations`), seeded, so the
same files come out on every machine.
"""
from __future__ import annotations

import os
from os import path as osp
from typing import Dict, Tuple

import numpy as np

EXAMPLE_SIDE = 320  # long side of the examples: a restoration takes about a second on a CPU
# file name -> (scikit-image photo, synthesis steps as the options write them, seed)
EXAMPLES: Dict[str, Tuple[str, list, int]] = {
    'chelsea_noise25.png': ('chelsea.png', ['noise25'], 1),
    'motorcycle_rain.png': ('motorcycle_right.png', ['rain'], 2),
    'coffee_haze.png': ('coffee.png', [{'type': 'haze', 'beta': 1.6, 'airlight': 0.85}], 3),
    'astronaut_clean.png': ('astronaut.png', ['clean'], 4),
}
DEGRADED = ('chelsea_noise25.png', 'motorcycle_rain.png', 'coffee_haze.png')
CLEAN = 'astronaut_clean.png'


def skimage_photo(name: str) -> np.ndarray:
    """A scikit-image data photo as (H, W, 3) float32 RGB in [0, 1], long side :data:`EXAMPLE_SIDE`."""
    import cv2
    import skimage
    path = osp.join(osp.dirname(skimage.__file__), 'data', name)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'scikit-image photo {name} not found in {osp.dirname(path)}; reinstall '
                                f'scikit-image (pip install --force-reinstall scikit-image)')
    f = EXAMPLE_SIDE / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * f) // 8 * 8, round(img.shape[0] * f) // 8 * 8),
                     interpolation=cv2.INTER_AREA)
    return img[:, :, ::-1].astype(np.float32) / 255.


def write_examples(folder: str) -> Dict[str, str]:
    """Write the examples into ``folder`` (once: existing files are kept); returns {file name: path}."""
    from ndrsr.data.synthesis import apply_synthesis, parse_synthesis
    from ndrsr.lib.image_files import write_rgb8
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, (photo, steps, seed) in EXAMPLES.items():
        path = osp.join(folder, name)
        if not osp.exists(path):
            degraded = apply_synthesis(skimage_photo(photo), parse_synthesis(steps, name), np.random.default_rng(seed))
            write_rgb8(path, degraded)
        paths[name] = path
    return paths


__all__ = ['CLEAN', 'DEGRADED', 'EXAMPLES', 'EXAMPLE_SIDE', 'skimage_photo', 'write_examples']
