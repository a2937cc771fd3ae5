"""Optimised inference path (owned by the speed work, issue 6).

``prepare_for_inference(net)`` returns a module computing the same function as
``net`` (<= 1e-4 max abs difference in float32) but faster; callers use it
under ``torch.inference_mode()``. Until the optimised path lands this is the
plain network itself.
"""
from __future__ import annotations

from torch import nn


def prepare_for_inference(net: nn.Module) -> nn.Module:
    """Return an inference-optimised equivalent of ``net`` (currently ``net`` in eval mode)."""
    return net.eval()
