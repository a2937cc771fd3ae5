"""What the CPU can compute natively: bf16 for ``--precision bf16`` on the CPU.

bf16 under ``torch.autocast('cpu')`` pays off only where the CPU has bf16
instructions (Intel AMX ``amx_bf16`` or ``avx512_bf16``, as listed in
``/proc/cpuinfo``) and PyTorch's oneDNN can use them; elsewhere oneDNN emulates
bf16 with float32 arithmetic, slower than float32 itself.
"""
from __future__ import annotations

import functools
from typing import Tuple

import torch

BF16_FLAGS = ('amx_bf16', 'avx512_bf16')
CPUINFO = '/proc/cpuinfo'


def cpu_flags(cpuinfo: str = CPUINFO) -> frozenset:
    """The CPU's feature flags from ``cpuinfo`` (Linux); empty where the file does not exist."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> Tuple[bool, str]:
    """(whether this CPU computes bf16 natively for PyTorch, the reason in words)."""
    native = [f for f in BF16_FLAGS if f in cpu_flags()]
    if not native:
        return False, (f'this CPU has no native bf16 instructions (none of {", ".join(BF16_FLAGS)} in {CPUINFO}); '
                       f'bf16 would be emulated and slower than fp32')
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, f'this PyTorch build ({torch.__version__}) cannot use the CPU\'s bf16 instructions (oneDNN)'
    return True, f'the CPU has {" and ".join(native)}'


__all__ = ['BF16_FLAGS', 'cpu_flags', 'cpu_bf16_support']
