"""Pad images to a multiple of the network's stride and crop results back."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_image_batch(x: torch.Tensor, channels: int, name: str) -> None:
    """Raise a clear ValueError unless ``x`` is a (B, channels, H, W) float tensor."""
    if not torch.is_tensor(x) or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f'{name} expects a (B, {channels}, H, W) tensor, got {shape}.')
    if x.shape[1] != channels:
        hint = (' Grayscale images must be repeated to 3 channels first (x.repeat(1, 3, 1, 1)); '
                'ndrsr-restore and the ndrsr datasets do that for you.') if x.shape[1] == 1 else ''
        raise ValueError(f'{name} expects {channels} input channels, got {x.shape[1]} '
                         f'(tensor shape {tuple(x.shape)}).{hint}')
    if not x.is_floating_point():
        raise ValueError(f'{name} expects a floating-point tensor in [0, 1], got {x.dtype}.')


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right to multiples of ``multiple``.

    Reflect padding, as the released test code does; where a side is too small
    to reflect (pad >= size, e.g. a 1x1 image), replicate padding is used.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = 'reflect' if ph < h and pw < w else 'replicate'
    return F.pad(x, (0, pw, 0, ph), mode=mode)
