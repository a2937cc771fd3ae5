"""Mixed precision for training: the autocast dtype ``train.autocast`` asks for, checked against the machine.

bfloat16 autocast pays off on CPUs with native bf16 arithmetic (Intel AMX or AVX512-BF16,
:func:`ndrsr.lib.cpu_features.cpu_bf16_support`); elsewhere bf16 is emulated and slower than float32, so it
is refused with the reason rather than silently slow.
"""
from __future__ import annotations

from typing import Optional

import torch

from ndrsr.lib.cpu_features import cpu_bf16_support

AUTOCAST_CHOICES = (None, 'bf16')


def training_autocast_dtype(option: Optional[str], device: torch.device) -> Optional[torch.dtype]:
    """``train.autocast`` -> the autocast dtype (None: float32 training).

    Raises:
        ValueError: an unknown value, or bf16 on a CPU without native bf16 / a GPU without bf16 support.
    """
    if option is None:
        return None
    if option not in AUTOCAST_CHOICES:
        raise ValueError(f'train.autocast must be ~ (float32) or bf16, got {option!r}.')
    if device.type == 'cpu':
        native, reason = cpu_bf16_support()
        if not native:
            raise ValueError(f'train.autocast: bf16 is refused here: {reason}. Remove train.autocast to train in '
                             'float32.')
    if device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise ValueError('train.autocast: bf16 is not supported by this GPU; remove train.autocast.')
    return torch.bfloat16
