"""Restormer building blocks used by NDR-Restore (and the up/down samplers shared
with NDR-Degrad).

All modules take and return feature maps of shape ``(B, C, H, W)``.
The arithmetic follows the released implementation (Restormer's "WithBias"
layer norm, multi-Dconv transposed attention, gated-Dconv feed-forward).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis at every pixel, with weight and bias.

    ``(x - mean_c) / sqrt(var_c + 1e-5) * weight + bias`` with the population
    variance, as Restormer's ``WithBias_LayerNorm``. (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        mu = t.mean(-1, keepdim=True)
        var = t.var(-1, keepdim=True, unbiased=False)
        t = (t - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return t.transpose(1, 2).reshape(b, c, h, w)


class TransposedAttention(nn.Module):
    """Multi-Dconv head transposed attention (attention across channels).

    q, k, v come from a 1x1 conv and a depthwise 3x3 conv; per head the
    ``(C/h) x (C/h)`` attention map is ``softmax(norm(q) norm(k)^T * t)``.
    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f'channels ({channels}) must be divisible by heads ({heads})')
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=False)
        self.proj = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q = q.reshape(b, self.heads, c // self.heads, h * w)
        k = k.reshape(b, self.heads, c // self.heads, h * w)
        v = v.reshape(b, self.heads, c // self.heads, h * w)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        out = (attn @ v).reshape(b, c, h, w)
        return self.proj(out)


class GatedFeedForward(nn.Module):
    """Gated-Dconv feed-forward: ``project_out(gelu(a) * b)`` where ``a, b``
    are the two halves of a 1x1 + depthwise 3x3 expansion to
    ``2 * int(C * expansion)`` channels. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, expansion: float):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``. (B, C, H, W) -> same."""

    def __init__(self, channels: int, heads: int, ffn_expansion: float):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.attn = TransposedAttention(channels, heads)
        self.norm2 = ChannelLayerNorm(channels)
        self.ffn = GatedFeedForward(channels, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stack(channels: int, blocks: int, heads: int, ffn_expansion: float) -> nn.Sequential:
    """``blocks`` transformer blocks at one width."""
    return nn.Sequential(*[TransformerBlock(channels, heads, ffn_expansion) for _ in range(blocks)])


class Downsample(nn.Module):
    """3x3 conv C -> C/2 (no bias) then pixel-unshuffle 2: (B, C, H, W) -> (B, 2C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


class Upsample(nn.Module):
    """3x3 conv C -> 2C (no bias) then pixel-shuffle 2: (B, C, H, W) -> (B, C/2, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)
