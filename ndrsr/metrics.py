"""Metrics ndrsr adds to BasicSR's registry (use them in the options' ``val.metrics``).

``calculate_colour_shift``: how far the mean colour of an image moved, the
largest per-channel difference of the means, in 0..255. For a restored photo
against its clean image it measures a colour cast or a brightness change that
PSNR mixes with everything else; against the network's own input (a clean or
real photo given as both lq and gt) it says whether restoring tinted it.
"""
from __future__ import annotations

import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY


@METRIC_REGISTRY.register()
def calculate_colour_shift(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, **kwargs) -> float:
    """max_c |mean(img[..., c]) - mean(img2[..., c])| for (H, W, C) images in 0..255 (BasicSR's metric inputs).

    Args:
        img, img2: (H, W, C) or (H, W) arrays of the same shape, range 0..255.
        crop_border: pixels ignored at each side.
    """
    if img.shape != img2.shape:
        raise ValueError(f'calculate_colour_shift: image shapes differ: {img.shape} and {img2.shape}.')
    a, b = img.astype(np.float64), img2.astype(np.float64)
    if crop_border:
        inner = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        a, b = a[inner], b[inner]
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return float(np.abs(a.reshape(-1, a.shape[-1]).mean(0) - b.reshape(-1, b.shape[-1]).mean(0)).max())


__all__ = ['calculate_colour_shift']
