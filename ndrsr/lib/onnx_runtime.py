"""Run an NDR-Restore ONNX export (``ndrsr-export --format onnx``) through onnxruntime.

:func:`load_onnx_restore` returns an :class:`OnnxRestoreNetwork`: an ``nn.Module``
without parameters whose ``forward`` runs the ONNX graph, with the ``stride`` and
``upscale`` attributes the tiler reads. So :func:`ndrsr.lib.tiling.tile_forward`
(and with it ``ndrsr-restore``: tiling, 16-bit, alpha) runs an ONNX file exactly
as it runs PyTorch weights.

Padding: the graph pads its input to a multiple of 8 itself (reflect, as the
network does; that needs each side at least 5 pixels), and this runner pads on
the host beforehand with the network's own rule (:func:`ndrsr.archs.padding.pad_to_multiple`,
replicate below 8 pixels), so any size works and the result equals the PyTorch
network's.

Only NDR-Restore's forward is exported: the degradation maps (``--save-maps``)
and ``ndrsr-degrade`` need the PyTorch network (.pth or .safetensors weights).
Errors name the file: :class:`~ndrsr.lib.checkpoint.WeightsError` for a corrupt
file, an ONNX model that ndrsr did not export, or a missing onnxruntime.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import torch
from torch import nn

from ndrsr.archs.padding import check_image_batch, pad_to_multiple
from ndrsr.lib.checkpoint import WeightsError

FORMAT = 'ndrsr-onnx'
EXTENSION = '.onnx'
INPUT_NAME = 'input'
OUTPUT_NAME = 'output'


def is_onnx_path(path: str) -> bool:
    """Whether ``path`` names an ONNX file (by its extension)."""
    return str(path).lower().endswith(EXTENSION)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise WeightsError('running .onnx weights needs onnxruntime: pip install "ndrsr[onnx]" '
                           '(or pip install onnxruntime).', argument='weights') from None
    return onnxruntime


def onnx_providers(device: str | torch.device = 'cpu') -> list:
    """onnxruntime execution providers for ``device`` (CUDA only where onnxruntime has it; a clear error otherwise)."""
    ort = _import_onnxruntime()
    device = torch.device(device)
    if device.type == 'cuda':
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            err = ValueError(f'this onnxruntime ({ort.__version__}) has no CUDA provider '
                             f'(available: {ort.get_available_providers()}); run ONNX weights on the CPU '
                             f'(--device cpu) or install onnxruntime-gpu.')
            err.argument = 'device'
            raise err
        return [('CUDAExecutionProvider', {'device_id': device.index or 0}), 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class OnnxRestoreNetwork(nn.Module):
    """NDR-Restore as an onnxruntime session, callable like the PyTorch network.

    forward(lq (B, 3, H, W) float in [0, 1]) -> restored (B, 3, sH, sW) float32 on the CPU.

    Attributes:
        path: the ONNX file. stride: 8 (what the input is padded to). upscale: s.
        options: the NDRRestore options the file was exported from (from its metadata).
    """

    def __init__(self, session, path: str, metadata: dict):
        super().__init__()
        self.session = session
        self.path = path
        self.stride = int(metadata.get('ndrsr.stride', 8))
        self.upscale = int(metadata.get('ndrsr.upscale', 1))
        self.in_channels = 3
        self.options = json.loads(metadata.get('network_g', '{}'))

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        check_image_batch(lq, self.in_channels, f'the ONNX network {self.path}')
        h, w = lq.shape[-2:]
        x = pad_to_multiple(lq.detach().float().cpu(), self.stride)
        out, = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x.numpy())})
        return torch.from_numpy(out)[..., :h * self.upscale, :w * self.upscale]

    def recognise(self, lq: torch.Tensor):
        raise WeightsError(f'{self.path} is an ONNX export of the restoration only: the degradation maps need the '
                           f'PyTorch network (.pth or .safetensors weights).', argument='weights')

    def extra_repr(self) -> str:
        return f'path={self.path!r}, upscale={self.upscale}'


def load_onnx_restore(path: str, device: str | torch.device = 'cpu', threads: Optional[int] = None,
                      upscale: Optional[int] = None) -> OnnxRestoreNetwork:
    """Open an ndrsr ONNX export for inference.

    Args:
        path: a file written by :func:`ndrsr.lib.export.export_onnx` (``ndrsr-export --format onnx``).
        device: 'cpu', or 'cuda[:N]' where onnxruntime has the CUDA provider.
        threads: onnxruntime's intra-op threads (default: ``torch.get_num_threads()``).
        upscale: if given, the exported network must have this up-scaling.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: onnxruntime missing, the file is not ONNX (truncated,
            corrupt), or it is an ONNX model that ndrsr did not export.
    """
    ort = _import_onnxruntime()
    if not os.path.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}. Check the path.')
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.log_severity_level = 3  # errors only: the message below names the file
    try:
        session = ort.InferenceSession(path, options, providers=onnx_providers(device))
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - InvalidProtobuf, Fail, ...: one message naming the file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f'{path} is not a loadable ONNX model ({first}). The file is truncated or corrupt; '
                           f'export it again with ndrsr-export --format onnx.', argument='weights') from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if metadata.get('ndrsr.format') != FORMAT or inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
        raise WeightsError(f'{path} is an ONNX model that ndrsr-export did not write (inputs {inputs}, outputs '
                           f'{outputs}, no {FORMAT!r} metadata). Export NDR-Restore with ndrsr-export --format onnx.',
                           argument='weights')
    net = OnnxRestoreNetwork(session, path, metadata)
    if upscale is not None and int(upscale) != net.upscale:
        raise WeightsError(f'upscale {upscale} was asked for, but the network in {path} restores at upscale '
                           f'{net.upscale}. Use weights trained for {upscale}x.', argument='upscale')
    return net


__all__ = ['FORMAT', 'EXTENSION', 'INPUT_NAME', 'OUTPUT_NAME', 'OnnxRestoreNetwork', 'is_onnx_path',
           'load_onnx_restore', 'onnx_providers']
