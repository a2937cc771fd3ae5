"""What every benchmark in bench/ shares: the repository on sys.path, the device/precision set-up and a run header.

Precisions (``--precision``):

* ``fp32``: float32 everywhere; on CUDA TF32 is switched **off** for matmuls and
  cuDNN convolutions (PyTorch leaves it on for cuDNN by default), so fp32
  figures are true float32.
* ``tf32``: float32 tensors with TF32 tensor-core matmuls/convolutions (CUDA only;
  the same as fp32 on the CPU).
* ``bf16`` / ``fp16``: ``torch.autocast`` to that dtype, float32 weights.
"""
from __future__ import annotations

import argparse
import os
import sys
from os import path as osp
from typing import Iterator, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

AUTOCAST_DTYPES = {'fp32': None, 'tf32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PRECISIONS = sorted(AUTOCAST_DTYPES)


def sync(device: torch.device) -> None:
    """Wait for the device (a no-op on the CPU): host timers then measure finished work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def set_up(device_name: str, precision: str, threads: int, cudnn_benchmark: bool = False
           ) -> 'tuple[torch.device, Optional[torch.dtype]]':
    """Fix threads, TF32 and cuDNN autotuning for ``precision``; return (device, autocast dtype or None)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    tf32 = precision == 'tf32'
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return device, AUTOCAST_DTYPES[precision]


def header(device: torch.device, precision: str, **extra: object) -> str:
    """One line naming torch, the device, threads and precision (plus ``extra`` key=value pairs)."""
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        name += f' (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, ' \
                f'cudnn.benchmark {torch.backends.cudnn.benchmark})'
    else:
        name = f'CPU ({os.cpu_count()} cores visible)'
    parts = [f'torch {torch.__version__}', f'device {name}', f'threads {torch.get_num_threads()}',
             f'precision {precision}'] + [f'{k} {v}' for k, v in extra.items()]
    return ' | '.join(parts)


def add_allocator_argument(parser: argparse.ArgumentParser) -> None:
    """``--allocator both|default|retain`` (see :func:`allocator_phases`)."""
    parser.add_argument('--allocator', choices=['both', 'default', 'retain'], default='both',
                        help="CPU: time every path with glibc's default allocator, then after "
                             'ndrsr.glue.allocator.retain_freed_memory() (both), or only one of them')


def allocator_phases(choice: str, device: torch.device) -> Iterator[Tuple[str, str]]:
    """Yield (phase, row-label suffix) per allocator phase, switching to the retained allocator in between.

    glibc's default comes first: ``retain_freed_memory()`` cannot be undone in a
    process. On CUDA there is one phase (its caching allocator already reuses memory).
    """
    phases = ['default', 'retain'] if choice == 'both' else [choice]
    if device.type == 'cuda':
        phases = ['default']
    for phase in phases:
        if phase == 'retain':
            from ndrsr.glue.allocator import retain_freed_memory
            print(f'ndrsr.glue.allocator.retain_freed_memory(): {retain_freed_memory()}')
        yield phase, ('+retain' if len(phases) > 1 and phase == 'retain' else '')
