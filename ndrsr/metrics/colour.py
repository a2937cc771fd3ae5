"""Colour metrics in BasicSR's registry: the mean colour change between two images, and its chromatic part.

``calculate_colour_shift``: how far the mean colour of an image moved, the
largest per-channel difference of the means, in 0..255. For a restored photo
against its clean image it measures a colour cast or a brightness change that
PSNR mixes with everything else; against the network's own input (a clean or
real photo given as both lq and gt) it says whether restoring tinted it.

``calculate_colour_cast``: the chromatic part of that change, in 0..255: the
per-channel mean differences minus their average (a pure brightening or
darkening moves every channel alike and gives 0; a red cast does not).
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
    return float(np.abs(_mean_colour_change(img, img2, crop_border, 'calculate_colour_shift')).max())


@METRIC_REGISTRY.register()
def calculate_colour_cast(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, **kwargs) -> float:
    """max_c |d_c - mean_c d_c| with d_c = mean(img[..., c]) - mean(img2[..., c]), images in 0..255.

    The part of the mean-colour change that is not a brightness change (0 for a grey image).

    Args:
        img, img2: (H, W, C) or (H, W) arrays of the same shape, range 0..255.
        crop_border: pixels ignored at each side.
    """
    d = _mean_colour_change(img, img2, crop_border, 'calculate_colour_cast')
    return float(np.abs(d - d.mean()).max())


def _mean_colour_change(img: np.ndarray, img2: np.ndarray, crop_border: int, name: str) -> np.ndarray:
    """(C,) per-channel mean of img minus that of img2."""
    if img.shape != img2.shape:
        raise ValueError(f'{name}: image shapes differ: {img.shape} and {img2.shape}.')
    a, b = img.astype(np.float64), img2.astype(np.float64)
    if crop_border:
        inner = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        a, b = a[inner], b[inner]
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a.reshape(-1, a.shape[-1]).mean(0) - b.reshape(-1, b.shape[-1]).mean(0)


__all__ = ['calculate_colour_cast', 'calculate_colour_shift']
