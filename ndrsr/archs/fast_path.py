"""The optimised view of NDRRestore / NDRDegrad: the same function, run faster.

``prepare_for_inference(net)`` returns a module computing the same function as
``net`` (equal up to float rounding; the tests bound the difference at 1e-4 in
float32); callers run it under ``torch.inference_mode()``.
``prepare_for_training(net)`` returns the same view in training mode: it is
differentiable and its gradients land on ``net``'s own parameters.

This module holds only the view mechanics; what makes the view faster lives
beside the plain modules:

* the activations are channels-last from the first convolution to the last
  (:class:`ChannelsLastInputConv2d` / :class:`ContiguousOutputConv2d` below),
  and the layer norm, the CP modulation and the degradation injection compute
  in their input's layout (``restormer_blocks.ChannelLayerNorm``,
  ``ndr_modules.CPModulation``, ``ndr_modules.DegradationInjection``);
* the transposed attention, the gated feed-forward and the transformer block
  have a second algorithm with the residual fused into the output GEMM
  (``restormer_blocks.FAST_VARIANTS``), swapped in by exact type.

How the view is built (nothing of the caller's module changes)
--------------------------------------------------------------
:func:`fast_view` makes a *shadow* of the module tree: every module is a
shallow copy holding the **same** ``Parameter`` and buffer objects (no weight
is copied, so the view always sees the current weights, and an optimizer over
``net.parameters()`` trains it), with the blocks of :data:`FAST_BLOCKS` swapped
for their fast subclasses, which keep every parameter name (``state_dict`` keys
are unchanged). ``train()``/``eval()`` on the view only touch the shadow
copies, so the caller's module keeps its mode, its memory format and its
forward. The plain eager path is ``net`` itself; the benchmarks run both side
by side (docs/performance.md, BENCHMARKS.md).

``torch.compile`` is available as an option (``compile=True``); it is not the
default (see docs/performance.md).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Type

import torch
from torch import nn

from .layout import to_channels_last
from .restormer_blocks import FAST_VARIANTS

# Exact-type swaps (subclasses of the ablation modules are left as they are).
FAST_BLOCKS: Dict[Type[nn.Module], Type[nn.Module]] = dict(FAST_VARIANTS)
# Network attributes whose convolutions enter / leave the channels-last layout.
ENTRY_CONVS = ('embed', )
EXIT_CONVS = ('output', )


class ChannelsLastInputConv2d(nn.Conv2d):
    """The first convolution of a network: switches its input to channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(to_channels_last(x))


class ContiguousOutputConv2d(nn.Conv2d):
    """The last convolution of a network: returns a standard (NCHW-contiguous) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


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
    parameter-sharing :func:`fast_view`, cheap to build, so it can be made per
    call; code that runs many images builds it once. Methods of the network
    work on it too (``NDRRestore.forward(..., return_degradation=True)``,
    ``.recognise()``). Use it under ``torch.inference_mode()`` (or ``no_grad``).

    compile: also wrap the view's forward in ``torch.compile`` (slow to
        compile on the CPU; see docs/performance.md).
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


__all__ = ['FAST_BLOCKS', 'ChannelsLastInputConv2d', 'ContiguousOutputConv2d', 'fast_view', 'prepare_for_inference',
           'prepare_for_training']
