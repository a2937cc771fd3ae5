"""Degradation transfer: a degradation recognised in one image, fitted to another and put onto it.

NDR-Restore recognises the degradations U_i (B, Q, Hp_i, Wp_i) of an image at
its three encoder levels (:func:`~ndrsr.lib.tiling.tile_recognise`);
NDR-Degrad applies U's to a clean image (:func:`~ndrsr.lib.tiling.tile_degrade`).
This module fits U's to an image of another size (:func:`fit_degradations`,
modes :data:`FIT_MODES`) and isolates the degradation from the scene that an
image's U's also carry (:func:`degradation_difference`,
:func:`transfer_degradations`). ``ndrsr-degrade --fit`` takes its modes from here.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ndrsr.lib.tiling import (DEFAULT_OVERLAP, STRIDE, argument_error, level_sizes, network_stride, tile_forward,
                              tile_recognise)

FIT_MODES = ('difference', 'difference-mean', 'resize', 'mirror', 'mean')
DIFFERENCE_FITS = {'difference': 'mirror', 'difference-mean': 'mean'}  # how each spreads the difference


def fit_degradations(us: Sequence[torch.Tensor], height: int, width: int, mode: str = 'resize',
                     stride: int = STRIDE) -> List[torch.Tensor]:
    """Fit recognised degradations [U1..U3] to an image of another size (H, W).

    'resize': bilinear interpolation of each U_i to the target's level size
    (the spatial layout is stretched: right for spatially uniform noise/haze,
    and for rain the streaks are stretched with the image).
    'mirror': the U_i are mirror-tiled (and cropped) to the target size, so
    the degradation keeps its scale (streak length, grain size) on a larger
    image. 'mean': each U_i is averaged over the image and spread over the
    target (the kind and strength of the degradation without the layout of the
    image it was recognised on: that image's scene does not show through).
    Already matching sizes are returned unchanged ('resize', 'mirror').
    ``stride``: what the networks pad to (``network_stride(net)``).
    'difference' and 'difference-mean' (the degradation alone, on the clean
    image's own U's) need the networks: :func:`degradation_difference` and
    :func:`transfer_degradations`.
    """
    if mode not in FIT_MODES:
        raise argument_error(f"fit mode must be one of {', '.join(FIT_MODES)}, got {mode!r}", 'mode')
    if mode in DIFFERENCE_FITS:
        raise argument_error(f"{mode!r} needs the networks: use transfer_degradations()", 'mode')
    out = []
    for u, size in zip(us, level_sizes(height, width, stride)):
        if mode == 'mean':
            out.append(u.mean(dim=(-2, -1), keepdim=True).expand(*u.shape[:-2], *size).contiguous())
        elif tuple(u.shape[-2:]) == size:
            out.append(u)
        elif mode == 'resize':
            out.append(F.interpolate(u, size=size, mode='bilinear', align_corners=False))
        else:
            out.append(_mirror_tile(u, size))
    return out


def degradation_difference(restore_net: nn.Module, degraded: torch.Tensor, tile: int = 0,
                           overlap: int = DEFAULT_OVERLAP, precision: str = 'fp32',
                           us: Optional[Sequence[torch.Tensor]] = None) -> List[torch.Tensor]:
    """The degradation of ``degraded`` (B, 3, H, W) alone: U_i(degraded) - U_i(restored degraded).

    The U's of an image carry its scene as well as its degradation; those of its
    restoration carry (nearly) the scene alone, so their difference is the part
    of each U that the degradation adds (grain, streaks, veil), at the padded
    level sizes of (H, W), float32 on the CPU. It holds only what the
    restoration removes (see :func:`removed_share`). ``us``: the U's of
    ``degraded`` if already recognised (:func:`tile_recognise`).
    """
    runtime = dict(tile=tile, overlap=overlap, precision=precision)
    if us is None:
        us, _ = tile_recognise(restore_net, degraded, **runtime)
    restored = tile_forward(restore_net, degraded, **runtime).clamp(0, 1)
    scene, _ = tile_recognise(restore_net, restored, **runtime)
    return [u - c for u, c in zip(us, scene)]


def removed_share(us: Sequence[torch.Tensor], difference: Sequence[torch.Tensor]) -> float:
    """How much of the U's [U1..U3] of an image its restoration removes: mean over levels of |difference_i| / |U_i|.

    Near 0: the restoration leaves the image (nearly) as it is, so the network does
    not recognise a degradation there and a difference fit has little to transfer.
    """
    shares = [float(d.norm() / u.norm().clamp_min(1e-12)) for u, d in zip(us, difference)]
    return sum(shares) / len(shares)


def transfer_degradations(restore_net: nn.Module, difference: Sequence[torch.Tensor], clean: torch.Tensor,
                          tile: int = 0, overlap: int = DEFAULT_OVERLAP, precision: str = 'fp32',
                          spread: str = 'mirror') -> List[torch.Tensor]:
    """U's for NDRDegrad that put ``difference`` (:func:`degradation_difference`) onto ``clean``.

    ``clean`` (B, 3, H, W) keeps its own U's (its scene) and gets the degradation
    part added: U_i = U_i(clean) + spread(difference_i). ``spread='mirror'``
    mirror-tiles the difference to the clean image's size, so grain and streaks
    keep their scale (the 'difference' fit); ``'mean'`` averages it over the
    degraded image and adds it evenly (the 'difference-mean' fit: a uniform
    veil or cast, no grain or streaks, and none of the degraded image's scene,
    which a spatially varying degradation such as haze otherwise carries).
    Use them with :func:`tile_degrade`.
    """
    if spread not in ('mirror', 'mean'):
        raise argument_error(f"spread must be 'mirror' or 'mean', got {spread!r}", 'spread')
    own, _ = tile_recognise(restore_net, clean, tile=tile, overlap=overlap, precision=precision)
    h, w = clean.shape[-2:]
    fitted = fit_degradations(difference, h, w, spread, network_stride(restore_net))
    return [u + d for u, d in zip(own, fitted)]


def _mirror_tile(u: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    for dim, target in ((-2, size[0]), (-1, size[1])):
        parts, n, flip = [], 0, False
        while n < target:
            parts.append(u.flip(dim) if flip else u)
            n += u.shape[dim]
            flip = not flip
        u = torch.cat(parts, dim=dim).narrow(dim, 0, target)
    return u


__all__ = ['FIT_MODES', 'DIFFERENCE_FITS', 'fit_degradations', 'degradation_difference', 'removed_share',
           'transfer_degradations']
