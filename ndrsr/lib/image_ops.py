"""What the image tools and the web page do to one image: restore it, read its degradation maps, transfer a
degradation onto it.

``ndrsr-restore``, ``ndrsr-degrade`` and ``ndrsr-app`` call these functions, so
the same input and options give the same output everywhere. They work on the
float RGB arrays of :class:`ndrsr.lib.image_files.ImageFile` ((H, W, 3)
float32 in [0, 1]); reading and writing files (bit depth, alpha, grayscale)
stays with :mod:`ndrsr.lib.image_files`. ``runtime`` below means the keyword
arguments ``tile``, ``overlap`` and ``precision`` of :mod:`ndrsr.lib.tiling`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ndrsr.lib.tiling import DEFAULT_OVERLAP, network_stride, tile_degrade, tile_forward, tile_recognise
from ndrsr.lib.transfer import (DIFFERENCE_FITS, FIT_MODES, degradation_difference, fit_degradations,
                                removed_share, transfer_degradations)

# Below this share of its degradation representation removed by the restoration, an image has little to
# transfer with a difference fit (the model does not recognise a degradation in it).
LITTLE_REMOVED = 0.05
TileProgress = Optional[Callable[[int, int], None]]


def to_batch(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 RGB in [0, 1] -> (1, 3, H, W) tensor (what the networks take)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def to_rgb(batch: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) network output -> (H, W, 3) float32 RGB clamped to [0, 1]."""
    return batch[0].clamp(0, 1).permute(1, 2, 0).numpy()


def restore_rgb(net: nn.Module, rgb: np.ndarray, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                precision: str = 'fp32', progress: TileProgress = None) -> np.ndarray:
    """Restore (H, W, 3) float32 RGB with NDR-Restore -> (sH, sW, 3) float32 in [0, 1] (s: its up-scaling)."""
    with torch.no_grad():
        return to_rgb(tile_forward(net, to_batch(rgb), tile=tile, overlap=overlap, precision=precision,
                                   progress=progress))


def recognise_rgb(net: nn.Module, rgb: np.ndarray, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                  precision: str = 'fp32') -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """What NDR-Restore recognises in (H, W, 3) float32 RGB: ([U1..U3], [S1..S3]) as
    :func:`ndrsr.lib.tiling.tile_recognise` returns them ((1, Q|N, Hp / 2^(i-1), Wp / 2^(i-1)), CPU)."""
    with torch.no_grad():
        return tile_recognise(net, to_batch(rgb), tile=tile, overlap=overlap, precision=precision)


@dataclass
class LikeDegradation:
    """The degradation of a ``--like`` image, ready to transfer.

    us: [U1..U3] (1, Q, .., ..) at the like image's padded level sizes: its U's as they are
        (fits resize / mirror / mean), or the degradation part alone (the difference fits).
    fit: the fit mode it was recognised for (:data:`ndrsr.lib.transfer.FIT_MODES`).
    removed: share of its U's that its restoration removes (difference fits; None otherwise).
    """
    us: List[torch.Tensor]
    fit: str
    removed: Optional[float] = None

    @property
    def little_to_transfer(self) -> bool:
        """True when a difference fit has little to transfer (the restoration removes little)."""
        return self.removed is not None and self.removed < LITTLE_REMOVED

    def warning(self, name: str) -> Optional[str]:
        """The warning the tools and the page give when there is little to transfer (``name``: the image), else
        None."""
        if not self.little_to_transfer:
            return None
        return (f'{name}: the restoration removes little from this image ({self.removed:.1%} of its degradation '
                f'representation), so --fit {self.fit} has little to transfer: the model does not recognise its '
                f'degradation (try another --like image, another --model, or --fit mean).')


def recognise_like(restore_net: nn.Module, rgb: np.ndarray, fit: str = 'difference', tile: int = 0,
                   overlap: int = DEFAULT_OVERLAP, precision: str = 'fp32') -> LikeDegradation:
    """The degradation of the degraded example (H, W, 3) float32 RGB to transfer with ``fit``."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit mode must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    runtime = dict(tile=tile, overlap=overlap, precision=precision)
    with torch.no_grad():
        lq = to_batch(rgb)
        us, _ = tile_recognise(restore_net, lq, **runtime)
        if fit not in DIFFERENCE_FITS:
            return LikeDegradation(us, fit)
        difference = degradation_difference(restore_net, lq, us=us, **runtime)
    return LikeDegradation(difference, fit, removed_share(us, difference))


def degrade_rgb(degrad_net: nn.Module, like: LikeDegradation, clean: np.ndarray,
                restore_net: Optional[nn.Module] = None, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                precision: str = 'fp32', progress: TileProgress = None) -> np.ndarray:
    """Render ``like``'s degradation onto the clean (sH, sW, 3) float32 RGB -> (sH, sW, 3) float32 in [0, 1].

    ``restore_net`` (the difference fits) recognises the clean image's own U's. Raises ValueError when the
    clean image's size is not a multiple of NDR-Degrad's up-scaling s.
    """
    s = int(getattr(degrad_net, 'upscale', 1))
    h, w = clean.shape[:2]
    if h % s or w % s:
        raise ValueError(f'the network works at {s}x: the clean image size {w}x{h} must be a multiple of {s}.')
    runtime = dict(tile=tile, overlap=overlap, precision=precision)
    with torch.no_grad():
        batch = to_batch(clean)
        if like.fit in DIFFERENCE_FITS:
            if restore_net is None:
                raise ValueError(f'--fit {like.fit} needs NDR-Restore to recognise the clean image (restore_net)')
            own = batch if s == 1 else F.interpolate(batch, scale_factor=1 / s, mode='bicubic', antialias=True)
            fitted = transfer_degradations(restore_net, like.us, own, spread=DIFFERENCE_FITS[like.fit], **runtime)
        else:
            fitted = fit_degradations(like.us, h // s, w // s, like.fit, network_stride(degrad_net))
        return to_rgb(tile_degrade(degrad_net, batch, fitted, progress=progress, **runtime))


__all__ = ['LITTLE_REMOVED', 'LikeDegradation', 'degrade_rgb', 'recognise_like', 'recognise_rgb', 'restore_rgb',
           'to_batch', 'to_rgb']
