"""Export ndrsr's networks for use outside PyTorch training code: ONNX and safetensors.

ONNX (:func:`export_onnx`)
    NDR-Restore's forward, float32, with a dynamic batch, height and width, at
    opset :data:`ONNX_OPSET`, then checked with ``onnx.checker``. Two exporters
    (``exporter``): ``'torchscript'`` (the default: PyTorch's tracing exporter,
    ``torch.onnx.export(..., dynamo=False)``; deprecated by PyTorch but seconds
    per export) and ``'dynamo'`` (PyTorch's current ``torch.export``-based
    exporter, which needs onnxscript and takes minutes on a small CPU, since it
    reasons about every symbolic shape). Both give graphs within 1e-6 of PyTorch.
    The graph pads the input to a multiple of 8 (reflect) and crops the output
    back, so it takes any size whose sides are at least 5 pixels; ndrsr's
    runner (:mod:`ndrsr.lib.onnx_runtime`) pads on the host first and takes any
    size. The file's metadata (``ndrsr.format``, ``ndrsr.stride``,
    ``ndrsr.upscale``, ``network_g`` as JSON, ``source``) lets the runner check
    what it opens. :func:`onnx_parity` compares onnxruntime's output with
    PyTorch's on several sizes.
safetensors (:func:`export_safetensors`)
    NDR-Restore's weights, NDR-Degrad's beside them when known, and both
    networks' options in the metadata (:mod:`ndrsr.lib.safetensors_file`).

Both write atomically (a temporary file renamed over the output).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ndrsr.lib.checkpoint import WeightsError, atomic_write

ONNX_OPSET = 20
# Sizes the parity check runs (odd ones included); each side >= 5 so that the graph's own padding applies too.
PARITY_SIZES: Tuple[Tuple[int, int], ...] = ((37, 53), (64, 64), (77, 130))
PARITY_TOLERANCE = 1e-4
FORMATS = ('onnx', 'safetensors')
EXPORTERS = ('torchscript', 'dynamo')


@dataclass
class NetworkSpec:
    """What an export needs: the state dicts and the options of NDRRestore (and NDRDegrad, if known).

    restore / degrad: state dicts (degrad None when no NDR-Degrad weights go with the model).
    restore_options / degrad_options: the networks' keyword arguments (``type`` may be present).
    source: where the weights came from, for the file's metadata.
    """
    restore: Dict[str, torch.Tensor]
    restore_options: dict
    degrad: Optional[Dict[str, torch.Tensor]] = None
    degrad_options: Optional[dict] = None
    source: str = ''

    def restore_network(self) -> nn.Module:
        """The NDRRestore these weights build, loaded strictly, eval mode, CPU float32."""
        from ndrsr.archs import NDRRestore
        from ndrsr.lib.weights import build_and_load
        return build_and_load(NDRRestore, self.restore_options, self.restore, self.source).eval()


def network_spec(weights: str, opt_path: Optional[str] = None) -> NetworkSpec:
    """Gather the networks of a weights file (any format ndrsr reads) for export.

    NDR-Degrad comes from the same file (released checkpoint, ndrsr
    safetensors) or from ``net_degrad*.pth`` beside ``net_g*.pth``; without
    it only NDR-Restore is exported. Both networks are built and loaded
    strictly first, so a file that does not fit fails here, before anything is written.
    """
    from ndrsr.archs import NDRDegrad, NDRRestore
    from ndrsr.lib.weights import build_and_load, degrad_weights_next_to, network_options, read_weights

    loaded = read_weights(weights)
    if loaded.restore is None:
        raise WeightsError(f'{weights} holds NDR-Degrad weights only; export the NDR-Restore checkpoint '
                           f'(net_g*.pth), with its net_degrad*.pth beside it.', argument='weights')
    opt_g, opt_g_source = network_options('network_g', weights, opt_path, loaded)
    spec = NetworkSpec(dict(loaded.restore), dict(opt_g), source=os.path.basename(weights))
    build_and_load(NDRRestore, opt_g, loaded.restore, loaded.source, opt_g_source)
    degrad_loaded, degrad_path = loaded, weights
    if loaded.degrad is None:
        sibling = degrad_weights_next_to(weights)
        degrad_loaded, degrad_path = (read_weights(sibling), sibling) if sibling else (None, None)
    if degrad_loaded is not None and degrad_loaded.degrad is not None:
        opt_d, opt_d_source = network_options('network_degrad', degrad_path, opt_path, degrad_loaded)
        build_and_load(NDRDegrad, opt_d, degrad_loaded.degrad, degrad_loaded.source, opt_d_source)
        spec.degrad, spec.degrad_options = dict(degrad_loaded.degrad), dict(opt_d)
    return spec


def export_safetensors(spec: NetworkSpec, out: str) -> str:
    """Write ``spec`` as one safetensors file (see :mod:`ndrsr.lib.safetensors_file`); returns ``out``."""
    from ndrsr.lib.safetensors_file import save_networks
    return save_networks(out, spec.restore, spec.restore_options, spec.degrad, spec.degrad_options, spec.source)


class _ExportedRestore(nn.Module):
    """NDRRestore's plain forward (B, 3, H, W) -> (B, 3, sH, sW): what the ONNX graph computes."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the graph input's name
        return self.net(input)


def _import_onnx(exporter: str):
    try:
        import onnx
        if exporter == 'dynamo':
            import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
    except ImportError as err:
        raise WeightsError(f'exporting ONNX needs onnx and onnxscript ({err}): pip install "ndrsr[onnx]".',
                           argument='format') from None
    return onnx


def export_onnx(net: nn.Module, out: str, opset: int = ONNX_OPSET, source: str = '',
                options: Optional[dict] = None, exporter: str = 'torchscript') -> str:
    """Export NDRRestore ``net`` to ONNX at ``out`` (dynamic batch, height, width; float32); returns ``out``.

    ``options``: the network's options, stored in the metadata (``network_g``).
    ``exporter``: 'torchscript' or 'dynamo' (see the module docstring).
    The model is checked with ``onnx.checker.check_model(full_check=True)``
    before it is renamed into place.
    """
    if exporter not in EXPORTERS:
        raise WeightsError(f'exporter must be one of {EXPORTERS}, got {exporter!r}', argument='exporter')
    onnx = _import_onnx(exporter)
    from ndrsr.lib.onnx_runtime import FORMAT, INPUT_NAME, OUTPUT_NAME

    net = net.eval().float().cpu()
    sample = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    folder = os.path.dirname(os.path.abspath(out))
    with tempfile.TemporaryDirectory(dir=folder, prefix='.ndrsr-export-') as tmp:
        raw = os.path.join(tmp, 'raw.onnx')
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            axes = {0: 'batch', 2: 'height', 3: 'width'}
            if exporter == 'dynamo':
                torch.onnx.export(_ExportedRestore(net), (sample,), raw, dynamo=True, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=False,
                                  dynamic_shapes={'input': axes}, verbose=False)
            else:
                torch.onnx.export(_ExportedRestore(net), (sample,), raw, dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
        model = onnx.load(raw)
    metadata = {'ndrsr.format': FORMAT, 'ndrsr.network': 'NDRRestore', 'ndrsr.stride': str(getattr(net, 'stride', 8)),
                'ndrsr.upscale': str(getattr(net, 'upscale', 1)), 'source': source,
                'network_g': json.dumps({'type': 'NDRRestore', **{k: v for k, v in (options or {}).items()
                                                                   if k != 'type'}})}
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = ('NDR-Restore (ndrsr): input (B, 3, H, W) float32 RGB in [0, 1] -> output (B, 3, sH, sW); '
                        'any H, W >= 5 (padded to a multiple of 8 inside)')
    onnx.checker.check_model(model, full_check=True)
    atomic_write(out, lambda tmp: onnx.save(model, tmp))
    return out


def onnx_parity(net: nn.Module, path: str, sizes: Sequence[Tuple[int, int]] = PARITY_SIZES,
                batch: int = 1) -> Dict[Tuple[int, int], float]:
    """Max |onnxruntime - PyTorch| of ``path`` against ``net`` on random inputs of each (H, W) in ``sizes``.

    The ONNX graph runs on the inputs as they are (its own padding), not through
    ndrsr's runner, so this checks the graph itself.
    """
    from ndrsr.lib.onnx_runtime import INPUT_NAME, load_onnx_restore

    session = load_onnx_restore(path).session
    gen = torch.Generator().manual_seed(1)
    diffs = {}
    net = net.eval()
    for h, w in sizes:
        x = torch.rand(batch, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = net(x)
        out, = session.run(None, {INPUT_NAME: x.numpy()})
        diffs[(h, w)] = float((torch.from_numpy(out) - ref).abs().max())
    return diffs


__all__ = ['FORMATS', 'EXPORTERS', 'ONNX_OPSET', 'PARITY_SIZES', 'PARITY_TOLERANCE', 'NetworkSpec', 'network_spec',
           'export_safetensors', 'export_onnx', 'onnx_parity']
