"""Restormer building blocks used by NDR-Restore (and the up/down samplers shared
with NDR-Degrad).

All modules take and return feature maps of shape ``(B, C, H, W)``.
The arithmetic follows the released implementation (Restormer's "WithBias"
layer norm, multi-Dconv transposed attention, gated-Dconv feed-forward).

The attention, the feed-forward and the block have a second, faster algorithm
beside them (``Fast*``: the same function with the residual add fused into the
output GEMM, computed on channels-last activations), as BasicSR's ECBSR keeps
its re-parameterised form beside the branches it fuses. They share the plain
classes' parameters; :func:`ndrsr.archs.fast_path.fast_view` swaps them in
(:data:`FAST_VARIANTS`). The layer norm needs no second class: it computes in
its input's memory layout.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

from .layout import from_nhwc, is_channels_last, nhwc, reduced_precision, to_channels_last


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis at every pixel, with weight and bias.

    ``(x - mean_c) / sqrt(var_c + 1e-5) * weight + bias`` with the population
    variance, as Restormer's ``WithBias_LayerNorm``. (B, C, H, W) -> (B, C, H, W)
    in the input's memory layout: on a channels-last input, where the channel
    axis is the contiguous one, it is one ``F.layer_norm`` over the NHWC view.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_channels_last(x):
            return from_nhwc(F.layer_norm(nhwc(x), (x.shape[1], ), self.weight, self.bias, self.eps))
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


class FastTransposedAttention(TransposedAttention):
    """:class:`TransposedAttention` on NHWC activations with the residual fused.

    ``forward(x)`` -> attention output (B, C, H, W); ``forward(x, residual)``
    -> ``residual + attention output``, both channels-last.

    The per-head Gram matrix ``q_h^T k_h`` is divided by the outer product of
    the L2 norms (exactly ``F.normalize``'s ``max(||.||, 1e-12)``) instead of
    normalising full-size copies of q and k (in reduced precision q and k are
    normalised first: the un-normalised sum over HW overflows float16). The
    attention map is folded into the output projection (``W_proj @
    blockdiag(A)``, a (C, C) matrix per image), so ``attn @ v``, the
    projection and the residual add are one GEMM (``baddbmm``).
    """

    def attention_maps(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Per-head softmax maps (B, heads, c, c) from q, k (B, HW, C) (rows may be strided).

        ``softmax(normalize(q_h) normalize(k_h)^T * t_h)`` with the L2 norms over
        HW (clamped at 1e-12 as ``F.normalize``) divided out of the Gram matrix
        instead of normalising full-size copies of q and k.
        """
        b, hw, c = q.shape
        heads, ch = self.heads, c // self.heads
        qn = (q * q).sum(1, dtype=torch.float32).sqrt().clamp_min(1e-12).view(b, heads, ch, 1)
        kn = (k * k).sum(1, dtype=torch.float32).sqrt().clamp_min(1e-12).view(b, heads, 1, ch)
        low = reduced_precision(q)
        if low:
            # The un-normalised Gram matrix sums HW products and overflows float16 (inf / inf = NaN); in
            # reduced precision normalise q and k first, as the plain path does (entries within [-1, 1]).
            q = q * (1 / qn).reshape(b, 1, c).to(q.dtype)
            k = k * (1 / kn).reshape(b, 1, c).to(k.dtype)
        if heads == 1:
            gram = torch.bmm(q.transpose(1, 2), k).unsqueeze(1)
        else:  # per-head (ch, HW) / (HW, ch) copies: one dense bmm beats per-head strided GEMMs
            qh = q.reshape(b, hw, heads, ch).permute(0, 2, 3, 1).reshape(b * heads, ch, hw)
            kh = k.reshape(b, hw, heads, ch).permute(0, 2, 1, 3).reshape(b * heads, hw, ch)
            gram = torch.bmm(qh, kh).view(b, heads, ch, ch)
        if not low:
            gram = gram / (qn * kn)
        return (gram * self.temperature).softmax(dim=-1)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = nhwc(self.qkv_dwconv(self.qkv(to_channels_last(x)))).reshape(b, h * w, 3 * c)
        q, k, v = qkv.split(c, dim=-1)  # split, not slicing: its backward is one cat, not a zero-fill per slice
        attn = self.attention_maps(q, k)  # (B, heads, ch, ch)
        ch = c // self.heads
        # proj(attn @ v) = (W_proj blockdiag(attn)) v: one (C, C) matrix per image.
        w_proj = self.proj.weight.view(c, self.heads, ch).transpose(0, 1)  # (heads, C_out, ch)
        mix = torch.matmul(w_proj, attn).transpose(1, 2).reshape(b, c, c)  # (B, C_out, C)
        if residual is None or reduced_precision(v):
            out = torch.bmm(v, mix.transpose(1, 2))
            if residual is not None:  # the residual stream stays float32 under autocast, as in the plain path
                return residual + from_nhwc(out.view(b, h, w, c))
        else:
            res = nhwc(to_channels_last(residual)).reshape(b, h * w, c)
            out = torch.baddbmm(res, v, mix.transpose(1, 2))
        return from_nhwc(out.view(b, h, w, c))


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


class FastGatedFeedForward(GatedFeedForward):
    """:class:`GatedFeedForward` on NHWC activations with the residual fused.

    ``forward(x[, residual])`` -> (residual +) ``project_out(gelu(a) * b)``, channels-last:
    the output projection adds the residual in the same GEMM (``addmm``), and
    ``gelu(a) * b`` is computed in place when no gradient is needed.
    """

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.dwconv(self.project_in(to_channels_last(x)))
        hidden = y.shape[1] // 2
        gate, value = y.split(hidden, dim=1)  # split, not slicing: one cat in backward, not a zero-fill per half
        g = F.gelu(gate)
        g = g.mul_(value) if not torch.is_grad_enabled() else g * value
        g = nhwc(to_channels_last(g)).reshape(b * h * w, hidden)
        weight = self.project_out.weight.view(c, hidden).t()
        if residual is None or reduced_precision(g):
            out = torch.mm(g, weight)
            if residual is not None:  # the residual stream stays float32 under autocast, as in the plain path
                return residual + from_nhwc(out.view(b, h, w, c))
        else:
            out = torch.addmm(nhwc(to_channels_last(residual)).reshape(b * h * w, c), g, weight)
        return from_nhwc(out.view(b, h, w, c))


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


class FastTransformerBlock(TransformerBlock):
    """:class:`TransformerBlock` with both residual adds fused into the output GEMMs (channels-last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_last(x)
        x = self.attn(self.norm1(x), residual=x)
        return self.ffn(self.norm2(x), residual=x)


# The faster algorithm of each plain class (exact types: the view swaps these and nothing else).
FAST_VARIANTS: Dict[Type[nn.Module], Type[nn.Module]] = {
    TransposedAttention: FastTransposedAttention,
    GatedFeedForward: FastGatedFeedForward,
    TransformerBlock: FastTransformerBlock,
}



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
