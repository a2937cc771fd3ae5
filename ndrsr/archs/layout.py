"""Memory layout of (B, C, H, W) activations: NCHW (PyTorch's default) or channels-last (NHWC in memory).

The modules compute the same function in either layout and return their
input's layout; the optimised view (:mod:`ndrsr.archs.fast_path`) feeds them
channels-last tensors, where oneDNN's convolutions are faster on the CPU and
the channel axis is the contiguous one (docs/performance.md).
"""
from __future__ import annotations

import torch

CHANNELS_LAST = torch.channels_last


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a channels-last (B, C, H, W) tensor that is not also NCHW-contiguous (C = 1 or H = W = 1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=CHANNELS_LAST)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in channels-last memory format (a no-op when it already is)."""
    return x.contiguous(memory_format=CHANNELS_LAST)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """Channels-last (B, C, H, W) -> its (B, H, W, C) view (contiguous, no copy)."""
    return x.permute(0, 2, 3, 1)


def from_nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) contiguous -> (B, C, H, W) channels-last view (no copy)."""
    return t.permute(0, 3, 1, 2)


def reduced_precision(x: torch.Tensor) -> bool:
    """True under autocast or for float16/bfloat16 activations (then sums that can overflow stay in float32)."""
    if x.dtype != torch.float32:
        return True
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() if x.is_cuda else torch.is_autocast_cpu_enabled()


__all__ = ['CHANNELS_LAST', 'is_channels_last', 'to_channels_last', 'nhwc', 'from_nhwc', 'reduced_precision']
