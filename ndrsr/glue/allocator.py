"""Keep freed memory in the process instead of handing it back to the kernel (glibc on Linux).

Why: with glibc's defaults every large tensor (above the mmap threshold, at
most 32 MiB) is a fresh ``mmap`` and is unmapped when freed, so the next
forward touches new pages and the kernel zero-fills every 4 KiB page again.
A default-size NDRRestore forward on the CPU spends a large share of its time
in such page faults (measured in docs/performance.md). With
``retain_freed_memory()`` large blocks come from the heap, freed blocks are
reused and the heap is not trimmed: no page faults after the first forward
and the same numbers, for a higher peak resident memory (BENCHMARKS.md,
"CPU inference speed", gives both).

ndrsr's own entry points (``ndrsr/train.py``, ``ndrsr/test.py``,
``ndrsr-restore`` / ``ndrsr-degrade``, the demo) call it at
start; importing ndrsr does not change the allocator of your process. Set
``NDRSR_RETAIN_FREED_MEMORY=0`` to keep glibc's defaults.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
ENV = 'NDRSR_RETAIN_FREED_MEMORY'


def _glibc():
    if not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc':
        return None
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:
        return None


def retain_freed_memory() -> bool:
    """Serve large allocations from the heap and never trim it (glibc ``mallopt``).

    Returns True when applied; False on other C libraries / platforms, or when
    ``$NDRSR_RETAIN_FREED_MEMORY`` is ``0`` (nothing changes then). Lasts for
    the life of the process.
    """
    if os.environ.get(ENV, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1  # no mmap'ed chunks: freed large blocks stay reusable
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1  # keep up to 2 GiB of free heap top
    return bool(ok)
