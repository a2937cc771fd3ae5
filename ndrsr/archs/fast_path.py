"""Optimised execution of NDRRestore / NDRDegrad (issue 6).

``prepare_for_inference(net)`` returns a module computing the same function as
``net`` (<= 1e-4 max abs difference in float32; ~1e-6 in practice) but faster;
callers run it under ``torch.inference_mode()``. ``prepare_for_training(net)``
returns the same optimised view in training mode: it is differentiable and its
gradients land on ``net``'s own parameters.

How the view is built (nothing of the caller's module changes)
--------------------------------------------------------------
:func:`fast_view` makes a *shadow* of the module tree: every module is a
shallow copy holding the **same** ``Parameter`` and buffer objects (no weight
is copied, so the view always sees the current weights, and an optimizer over
``net.parameters()`` trains it), with the blocks below swapped for fast
subclasses that keep every parameter name (``state_dict`` keys are unchanged).
``train()``/``eval()`` on the view only touch the shadow copies, so the
caller's module keeps its mode, its memory format and its forward.

The plain eager path is the modules in :mod:`ndrsr.archs.restormer_blocks` /
:mod:`ndrsr.archs.ndr_modules` as written (``net`` itself); the benchmarks run
both side by side.

What the fast blocks change (profiled at 256x256, default size, 2 CPU threads;
see docs/performance.md):

* channels-last (NHWC) activations throughout. oneDNN's depthwise 3x3 and 1x1
  convolutions are 1.5-3x faster on NHWC than on NCHW, and the channel layer
  norm becomes ``F.layer_norm`` over the contiguous last axis (one fused pass
  instead of transpose, mean, var, sub, div, sqrt, mul, add and a copy back).
* transposed attention without normalised copies of q and k: the per-head
  Gram matrix ``q_h^T k_h`` is divided by the outer product of the L2 norms
  (exactly ``F.normalize``'s ``max(||.||, 1e-12)``); the attention map is folded
  into the output projection (``W_proj @ blockdiag(A)``, a (C, C) matrix per
  image), so ``attn @ v`` and the projection are one GEMM, which also adds the
  residual (``baddbmm``).
* the feed-forward's output projection adds the residual in the same GEMM
  (``addmm``), and ``gelu(a) * b`` is done in place.
* the CP modulation cube ``mean_k c_k (x) h_k (x) w_k`` is one batched GEMM over
  the rank axis, ``(B, HW, K) @ (B, K, C) / K``, with a channels-last result
  (``CPModulation.cube`` itself uses the same GEMM in NCHW instead of the
  released code's broadcast products through (B, K, C, H, W) tensors), and
  the injection's ``scale * F' + shift`` is one ``addcmul``.

``torch.compile`` is available as an option (``compile=True``); it is not the
default (see docs/performance.md for the measured compile time).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

from .ndr_modules import CPModulation, DegradationInjection
from .restormer_blocks import ChannelLayerNorm, GatedFeedForward, TransformerBlock, TransposedAttention

CHANNELS_LAST = torch.channels_last


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


# ----------------------------------------------------------------------------- fast blocks
class FastChannelLayerNorm(ChannelLayerNorm):
    """:class:`ChannelLayerNorm` as one ``F.layer_norm`` over the NHWC channel axis.

    (B, C, H, W) -> (B, C, H, W) channels-last.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_last(x)
        return from_nhwc(F.layer_norm(nhwc(x), (x.shape[1], ), self.weight, self.bias, self.eps))


class FastTransposedAttention(TransposedAttention):
    """:class:`TransposedAttention` on NHWC activations with the residual fused.

    ``forward(x)`` -> attention output (B, C, H, W); ``forward(x, residual)``
    -> ``residual + attention output``, both channels-last.
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
        q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
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


class FastGatedFeedForward(GatedFeedForward):
    """:class:`GatedFeedForward` on NHWC activations with the residual fused.

    ``forward(x[, residual])`` -> (residual +) ``project_out(gelu(a) * b)``, channels-last.
    """

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.dwconv(self.project_in(to_channels_last(x)))
        hidden = y.shape[1] // 2
        gate, value = y[:, :hidden], y[:, hidden:]
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


class FastTransformerBlock(TransformerBlock):
    """:class:`TransformerBlock` with both residual adds fused into the output GEMMs (channels-last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_last(x)
        x = self.attn(self.norm1(x), residual=x)
        return self.ffn(self.norm2(x), residual=x)


class FastCPModulation(CPModulation):
    """:class:`CPModulation` with the cube as a GEMM over the rank axis.

    ``cube[b, c, h, w] = (1/K) sum_k c_k[b, c] h_k[b, h] w_k[b, w]`` computed as
    ``(B, HW, K) @ (B, K, C)`` -> channels-last (B, C, H, W); no (B, K, C, H, W) tensor.
    """

    def cube(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        c_k, hw = self.rank_factors(x)
        return from_nhwc(torch.bmm(hw.transpose(1, 2), c_k).view(b, h, w, c))  # (B, HW, K) @ (B, K, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_channels_last(x) * self.cube(x)


class FastDegradationInjection(DegradationInjection):
    """:class:`DegradationInjection` with ``scale * F' + shift`` as one ``addcmul``."""

    def forward(self, feature: torch.Tensor, degradation: torch.Tensor) -> torch.Tensor:
        u = self.cp_degradation(self.embed(degradation))
        return torch.addcmul(self.shift(u), self.scale(u), self.cp_feature(feature))


class ChannelsLastInputConv2d(nn.Conv2d):
    """The first convolution of a network: switches its input to channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(to_channels_last(x))


class ContiguousOutputConv2d(nn.Conv2d):
    """The last convolution of a network: returns a standard (NCHW-contiguous) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


# Exact-type swaps (subclasses of the ablation modules are left as they are).
FAST_BLOCKS: Dict[Type[nn.Module], Type[nn.Module]] = {
    ChannelLayerNorm: FastChannelLayerNorm,
    TransposedAttention: FastTransposedAttention,
    GatedFeedForward: FastGatedFeedForward,
    TransformerBlock: FastTransformerBlock,
    CPModulation: FastCPModulation,
    DegradationInjection: FastDegradationInjection,
}
# Network attributes whose convolutions enter / leave the channels-last layout.
ENTRY_CONVS = ('embed', )
EXIT_CONVS = ('output', )


def _shadow(module: nn.Module, top: bool) -> nn.Module:
    """Shallow copy of ``module`` sharing its parameters and buffers, children shadowed too."""
    # A new object whose attribute dicts (parameters, buffers, hooks, ...) are
    # copies holding the same tensors and hooks as ``module``'s.
    new = object.__new__(type(module))
    new.__dict__ = {key: (copy.copy(value) if isinstance(value, (dict, set)) else value)
                    for key, value in module.__dict__.items()}
    fast = FAST_BLOCKS.get(type(module))
    if fast is not None:
        new.__class__ = fast
    new._modules = {name: (None if child is None else _shadow(child, False))
                    for name, child in module._modules.items()}
    if top:
        for names, cls in ((ENTRY_CONVS, ChannelsLastInputConv2d), (EXIT_CONVS, ContiguousOutputConv2d)):
            for name in names:
                child = new._modules.get(name)
                if child is not None and type(child) is nn.Conv2d:
                    child.__class__ = cls
    return new


def fast_view(net: nn.Module) -> nn.Module:
    """The optimised view of ``net`` (NDRRestore, NDRDegrad or any module built from these blocks).

    Shares every parameter and buffer with ``net`` (no copy); same
    ``state_dict`` keys; ``net`` itself is not modified. The view starts in
    ``net``'s training mode.
    """
    return _shadow(net, top=True)


def prepare_for_inference(net: nn.Module, compile: bool = False,
                          compile_options: Optional[Dict[str, object]] = None) -> nn.Module:
    """Return the inference-optimised equivalent of ``net``, in eval mode.

    ``net`` is not modified (its mode included): the result is a
    parameter-sharing :func:`fast_view`, cheap to build (tens of ms), so it can be
    made for every call. Methods of the network work on it too
    (``NDRRestore.forward(..., return_degradation=True)``, ``.recognise()``).
    Use it under ``torch.inference_mode()`` (or ``no_grad``).

    compile: also wrap the view's forward in ``torch.compile``. Slow to compile
        (minutes on CPU); see docs/performance.md.
    compile_options: keyword arguments of ``torch.compile`` (default
        ``{'dynamic': True}``: any image size without recompiling), e.g.
        ``{'mode': 'reduce-overhead', 'dynamic': False}`` for CUDA graphs at a
        fixed size.
    """
    view = fast_view(net).eval()
    if compile:
        view.forward = torch.compile(view.forward, **(compile_options or {'dynamic': True}))
    return view


def prepare_for_training(net: nn.Module) -> nn.Module:
    """The optimised view of ``net`` for training steps (training mode).

    Gradients of a loss computed with the view accumulate in ``net``'s own
    parameters, so build the optimizer over ``net.parameters()`` as usual and
    call the view instead of ``net`` in the step. ``net.train()/eval()`` do
    not propagate to the view: build the view after setting the mode or call
    ``view.train()`` too.
    """
    return fast_view(net).train(net.training)
