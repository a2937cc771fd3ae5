"""The command-line options that cannot apply to ONNX weights, refused before any image is read."""
from __future__ import annotations

import argparse

from ndrsr.cli.errors import UsageError


def refuse_onnx_options(weights: str, args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` if ``weights`` is an ONNX export and ``args`` ask for what it cannot do.

    An ONNX export holds NDR-Restore's float32 forward only: no degradation
    maps (``--save-maps``), no reduced precision (``--precision fp16/bf16``),
    no network options (``--opt``: the file knows its network).
    """
    from ndrsr.lib.onnx_runtime import is_onnx_path
    if not is_onnx_path(weights):
        return
    if getattr(args, 'save_maps', False):
        raise UsageError(f'--save-maps: the degradation maps need the PyTorch network; {weights} is an ONNX export '
                         f'of the restoration only. Use the .pth or .safetensors weights for the maps.')
    if getattr(args, 'precision', 'auto') not in ('auto', 'fp32'):
        raise UsageError(f'--precision {args.precision}: onnxruntime runs ONNX weights in fp32 ({weights}); drop '
                         f'--precision, or use the .pth / .safetensors weights for {args.precision}.')
    if getattr(args, 'opt', None):
        raise UsageError(f'--opt: {weights} is an ONNX export and knows its network; drop --opt.')
