"""Mixed precision for training: which autocast dtype ``train.autocast`` asks for, and whether this machine has it.

bfloat16 autocast pays off on CPUs with native bf16 arithmetic (Intel AMX or AVX512-BF16); elsewhere bf16
is emulated and slower than float32, so it is refused with the reason rather than silently slow.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch

NATIVE_BF16_FLAGS = ('amx_bf16', 'avx512_bf16')  # /proc/cpuinfo flags of native bf16 arithmetic
AUTOCAST_CHOICES = (None, 'bf16')


@functools.lru_cache(maxsize=1)
def cpu_native_bf16_flags(cpuinfo: str = '/proc/cpuinfo') -> tuple:
    """The native-bf16 flags the CPU reports (empty where it has none or the file cannot be read)."""
    try:
        with open(cpuinfo, encoding='utf-8', errors='replace') as f:
            flags = set()
            for line in f:
                if line.startswith('flags'):
                    flags.update(line.split(':', 1)[1].split())
                    break
    except OSError:
        return ()
    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in flags)


def cpu_has_native_bf16() -> bool:
    """True where this CPU computes bfloat16 natively (AMX or AVX512-BF16) and torch's oneDNN can use it."""
    return bool(cpu_native_bf16_flags()) and torch.backends.mkldnn.is_available()


def training_autocast_dtype(option: Optional[str], device: torch.device) -> Optional[torch.dtype]:
    """``train.autocast`` -> the autocast dtype (None: float32 training).

    Raises:
        ValueError: an unknown value, or bf16 on a CPU without native bf16 / a GPU without bf16 support.
    """
    if option is None:
        return None
    if option not in AUTOCAST_CHOICES:
        raise ValueError(f'train.autocast must be ~ (float32) or bf16, got {option!r}.')
    if device.type == 'cpu' and not cpu_has_native_bf16():
        raise ValueError('train.autocast: bf16 needs a CPU with native bf16 (AMX or AVX512-BF16); this CPU has '
                         'neither, so bf16 would be emulated and slower than float32. Remove train.autocast.')
    if device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise ValueError('train.autocast: bf16 is not supported by this GPU; remove train.autocast.')
    return torch.bfloat16
