"""Checkpoint files: atomic writes and safe loads.

A checkpoint is written to ``<path>.tmp-<pid>`` and renamed over ``<path>``
only once complete, so a run killed while saving never leaves a truncated
file where a good one was (``os.replace`` is atomic on POSIX and Windows).
Loading always uses ``weights_only=True``: checkpoints may come from others.
"""
from __future__ import annotations

import os
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, all or nothing."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        torch.save(obj, tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str) -> Any:
    """Load a checkpoint on the CPU with ``weights_only=True`` and a clear error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}. Check the path in the options '
                                f'(path.pretrain_network_*) or the --weights argument.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file and the fix
        raise ValueError(f'cannot load checkpoint {path}: {err}. The file is truncated, corrupt, or not a '
                         f'plain state dict (ndrsr loads checkpoints with weights_only=True).') from err
