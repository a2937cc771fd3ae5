"""ndrsr's networks in one safetensors file that rebuilds them on its own.

Layout of the file written by :func:`save_networks` (``ndrsr-export --format safetensors``)
    tensors
        ``<key>``                    NDRRestore's state dict, keys unchanged (what
                                     spandrel, chaiNNer and ComfyUI read);
        ``degrad.<key>``             NDRDegrad's state dict, when given (for ``ndrsr-degrade``);
        ``ndrsr.global_residual``    a 0-d uint8 flag: NDRRestore's one option that
                                     the tensor shapes do not tell (for readers that
                                     see only the tensors, such as spandrel).
    metadata (strings)
        ``format``: ``pt``; ``ndrsr.format``: :data:`FORMAT`; ``ndrsr.version``:
        :data:`VERSION`; ``network_g`` / ``network_degrad``: the networks' options
        as JSON (``type`` included); ``source``: where the weights came from.

A safetensors file holds tensors and strings only, so loading it runs no code.
:func:`read_networks` reads the file back; a file that is not safetensors,
or safetensors that ndrsr did not write (no NDR-Restore / NDR-Degrad keys), is
a :class:`~ndrsr.lib.checkpoint.WeightsError` naming the file.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Tuple

import torch

from ndrsr.lib.checkpoint import WeightsError, atomic_write

FORMAT = 'ndrsr-networks'
VERSION = '1'
DEGRAD_PREFIX = 'degrad.'
FLAG_PREFIX = 'ndrsr.'
GLOBAL_RESIDUAL_KEY = 'ndrsr.global_residual'
EXTENSION = '.safetensors'


def _missing_package() -> WeightsError:
    return WeightsError('reading or writing .safetensors files needs the safetensors package: '
                        'pip install "ndrsr[onnx]" (or pip install safetensors).', argument='weights')


def save_networks(path: str, restore: Mapping[str, torch.Tensor], restore_options: Mapping,
                  degrad: Optional[Mapping[str, torch.Tensor]] = None, degrad_options: Optional[Mapping] = None,
                  source: str = '') -> str:
    """Write NDRRestore's (and optionally NDRDegrad's) state dict with their options to ``path``, atomically.

    ``restore_options`` / ``degrad_options``: the keyword arguments the networks
    were built with (``type`` optional). Tensors are stored as contiguous
    float32 copies. Returns ``path``.
    """
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise _missing_package() from None
    options_g = {'type': 'NDRRestore', **{k: v for k, v in restore_options.items() if k != 'type'}}
    tensors: Dict[str, torch.Tensor] = {k: v.detach().float().contiguous().cpu().clone() for k, v in restore.items()}
    tensors[GLOBAL_RESIDUAL_KEY] = torch.tensor(int(bool(options_g.get('global_residual', False))), dtype=torch.uint8)
    metadata = {'format': 'pt', 'ndrsr.format': FORMAT, 'ndrsr.version': VERSION,
                'network_g': json.dumps(options_g), 'source': source}
    if degrad is not None:
        tensors.update({DEGRAD_PREFIX + k: v.detach().float().contiguous().cpu().clone() for k, v in degrad.items()})
        metadata['network_degrad'] = json.dumps(
            {'type': 'NDRDegrad', **{k: v for k, v in (degrad_options or {}).items() if k != 'type'}})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def _open(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise _missing_package() from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}. Check the path.')
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends: one message naming the file
        raise WeightsError(f'{path} is not a readable safetensors file ({err}). The file is truncated or corrupt; '
                           f'export it again with ndrsr-export.', argument='weights') from None
    return tensors, metadata


def _options(metadata: Mapping[str, str], section: str, path: str) -> Optional[dict]:
    if section not in metadata:
        return None
    try:
        opt = json.loads(metadata[section])
    except json.JSONDecodeError as err:
        raise WeightsError(f'{path}: its {section!r} metadata is not valid JSON ({err}); export the file again.',
                           argument='weights') from None
    if not isinstance(opt, dict):
        raise WeightsError(f'{path}: its {section!r} metadata is not a mapping of options; export the file again.',
                           argument='weights')
    return opt


def read_networks(path: str) -> Tuple[Optional[Dict[str, torch.Tensor]], Optional[Dict[str, torch.Tensor]], dict]:
    """Read a safetensors file -> (NDRRestore state dict or None, NDRDegrad state dict or None, options).

    ``options`` holds ``network_g`` / ``network_degrad`` from the metadata (for
    a file ndrsr wrote) or, for a bare state dict written elsewhere, the
    ``network_g`` implied by the global-residual flag if present; the rest of
    the sizes then come from the tensor shapes.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: not safetensors, or no NDR-Restore / NDR-Degrad weights inside.
    """
    tensors, metadata = _open(path)
    restore = {k: v for k, v in tensors.items() if not k.startswith((DEGRAD_PREFIX, FLAG_PREFIX))}
    degrad = {k[len(DEGRAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(DEGRAD_PREFIX)}
    if restore and not any(k.startswith('encoder1.0.') for k in restore):
        if any(k.startswith('encoder1.conv1.') for k in restore):  # a bare NDRDegrad state dict
            restore, degrad = {}, restore
        else:
            raise WeightsError(f'{path}: these safetensors hold no NDR-Restore or NDR-Degrad weights (first keys: '
                               f'{list(tensors)[:5]}); it is the file of another network. Give an ndrsr '
                               f'checkpoint or a file written by ndrsr-export.', argument='weights')
    if not restore and not degrad:
        raise WeightsError(f'{path}: no NDR-Restore or NDR-Degrad weights inside (first keys: {list(tensors)[:5]}).',
                           argument='weights')
    options = {}
    for section in ('network_g', 'network_degrad'):
        opt = _options(metadata, section, path)
        if opt is not None:
            options[section] = opt
    if 'network_g' not in options and GLOBAL_RESIDUAL_KEY in tensors and restore:
        from ndrsr.lib.checkpoint import infer_restore_options
        options['network_g'] = {'type': 'NDRRestore', **infer_restore_options(restore),
                                'global_residual': bool(tensors[GLOBAL_RESIDUAL_KEY].item())}
    return restore or None, degrad or None, options


def is_safetensors_path(path: str) -> bool:
    """Whether ``path`` names a safetensors file (by its extension)."""
    return str(path).lower().endswith(EXTENSION)


__all__ = ['FORMAT', 'VERSION', 'DEGRAD_PREFIX', 'GLOBAL_RESIDUAL_KEY', 'EXTENSION', 'save_networks', 'read_networks',
           'is_safetensors_path']
