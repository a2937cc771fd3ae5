"""Inference latency of NDRRestore: plain eager path vs the optimised path, side by side in one run.

    .venv/bin/python bench/bench_arch.py [--sizes 256 512] [--runs 5] [--threads 2]
        [--device cpu|cuda] [--precision fp32|tf32|bf16|fp16] [--compile] [--compile-mode MODE]
        [--cudnn-benchmark] [--cuda-graph] [--net restore|degrad]

"plain" is the network as written (``net`` under ``torch.inference_mode()``);
"fast" is ``ndrsr.archs.fast_path.prepare_for_inference(net)``; "compiled"
(with ``--compile``) is ``prepare_for_inference(net, compile=True)`` (with
``--compile-mode``: that ``torch.compile`` mode, e.g. ``reduce-overhead`` for
CUDA graphs, with static shapes), whose compile time is measured and printed
separately. "graph" (with ``--cuda-graph``, CUDA only) is the fast path
captured once per size in a CUDA graph and replayed: what the network costs
without Python and kernel-launch overhead. Precisions: see ``bench/_common.py`` (``fp32`` is true float32,
TF32 off, on CUDA too). For every size the paths run
interleaved (A B A B ...) after one warm-up each, so machine load hits them
alike; the table gives medians, min-max, the fast/plain ratio, the peak memory
of one forward, the FLOP count (``torch.utils.flop_counter``: every
convolution and matmul, 2 per multiply-add) and the GFLOP/s achieved against a
measured float32 matmul ceiling (median of 2048x2048 matmuls, best of the
measurements before and after), i.e. how far each path is from the floor
``FLOP / ceiling``.

Allocator (CPU): every path is timed twice, first with glibc's default
allocator, then (same process) after ``ndrsr.glue.allocator.retain_freed_memory()``,
which ndrsr's entry points (ndrsr-restore, train.py, test.py) switch on: rows
``plain+retain`` / ``fast+retain``. Speed-ups are against ``plain`` with the
default allocator, the straightforward eager baseline (``--allocator`` picks one).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over one forward; on
the CPU the peak resident set size during one forward (``VmHWM`` reset through
``/proc/self/clear_refs``, freed heap returned with ``malloc_trim``) minus the
resident size before it: activations and workspaces, not the weights.

Random weights (seeded), random input in [0, 1]. Two differences are printed
for every size: the max abs difference to the plain path at the same precision
(the optimisation's own error), and to the plain path in true float32 (what the
precision costs, for bf16/fp16/tf32).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import time
from typing import Callable, Dict, List

# _common puts the repository on sys.path
from _common import PRECISIONS, add_allocator_argument, allocator_phases, header, set_up, sync  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import ndrsr  # noqa: E402,F401  (compat fixes, registration)
from ndrsr.archs import NDRDegrad, NDRRestore  # noqa: E402
from ndrsr.archs.fast_path import prepare_for_inference  # noqa: E402


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call (synchronised on CUDA)."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def matmul_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, reps: int = 7) -> float:
    """Median GFLOP/s of n x n matmuls in ``dtype`` (the machine's matrix ceiling; n = 2048 CPU, 8192 CUDA).

    On CUDA in float32 the TF32 setting in force applies (see ``_common.set_up``).
    """
    n = 8192 if device.type == 'cuda' else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3 if device.type == 'cuda' else 1):
        timed(lambda: a @ b, device)
    ts = [timed(lambda: a @ b, device) for _ in range(reps)]
    return 2 * n**3 / statistics.median(ts) / 1e9


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory (MiB) added by one call of ``fn`` (see the module docstring)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
    except OSError:
        return float('nan')
    before = _status_kib('VmRSS')
    fn()
    return (_status_kib('VmHWM') - before) / 1024


def build(net_name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    net = NDRRestore() if net_name == 'restore' else NDRDegrad()
    return net.to(device).eval()


def make_call(net: torch.nn.Module, net_name: str, x: torch.Tensor, us, dtype) -> Callable[[], torch.Tensor]:
    """A no-argument callable running ``net`` on the benchmark input under inference mode (and autocast)."""
    device_type = x.device.type

    def call():
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            return net(x) if net_name == 'restore' else net(x, us)
    return call


def cuda_graph_call(call: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``call`` captured in a CUDA graph (same input tensor); the result replays it and returns its output."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside the capture (cuDNN algorithm choice, allocator)
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = call()

    def replay() -> torch.Tensor:
        graph.replay()
        return out
    return replay


def count_flops(call: Callable[[], object], net: torch.nn.Module) -> float:
    """FLOPs of one call (the counter's module tracker needs parameters that do not require grad)."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            call()
        return counter.get_total_flops()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def plain_fp32_output(net: torch.nn.Module, net_name: str, x: torch.Tensor, us) -> torch.Tensor:
    """The plain path's output in true float32 (TF32 off), the reference of every precision."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return make_call(net, net_name, x, us, None)().float()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[256, 512])
    p.add_argument('--runs', type=int, default=5, help='timed runs per path and size (after 1 warm-up)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--device', default='cpu')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32',
                   help='fp32 (TF32 off) | tf32 | bf16 / fp16 autocast; see bench/_common.py')
    p.add_argument('--compile', action='store_true', help='also time prepare_for_inference(net, compile=True)')
    p.add_argument('--compile-mode', default=None,
                   help='torch.compile mode for --compile (e.g. reduce-overhead: CUDA graphs, static shapes)')
    p.add_argument('--cudnn-benchmark', action='store_true', help='torch.backends.cudnn.benchmark = True')
    p.add_argument('--cuda-graph', action='store_true', help='also time the fast path replayed from a CUDA graph')
    p.add_argument('--net', choices=['restore', 'degrad'], default='restore')
    add_allocator_argument(p)
    args = p.parse_args(argv)

    device, dtype = set_up(args.device, args.precision, args.threads, args.cudnn_benchmark)
    print(header(device, args.precision, net=args.net, batch=args.batch, runs=args.runs))
    ceiling_dtype = dtype or torch.float32
    ceiling_name = f'{str(ceiling_dtype).replace("torch.", "")}{" (TF32)" if args.precision == "tf32" else ""}'
    ceiling_before = matmul_ceiling(device, ceiling_dtype)
    print(f'{ceiling_name} matmul ceiling: {ceiling_before:.1f} GFLOP/s')

    net = build(args.net, device)
    paths: Dict[str, torch.nn.Module] = {'plain': net}
    t = time.perf_counter()
    paths['fast'] = prepare_for_inference(net)
    print(f'prepare_for_inference: {1e3 * (time.perf_counter() - t):.1f} ms')
    compile_s = None
    if args.compile:
        options = {'mode': args.compile_mode, 'dynamic': False} if args.compile_mode else None
        paths['compiled'] = prepare_for_inference(net, compile=True, compile_options=options)

    rows, baseline = [], {}
    for phase, suffix in allocator_phases(args.allocator, device):
        for size in args.sizes:
            gen = torch.Generator().manual_seed(size)
            x = torch.rand(args.batch, 3, size, size, generator=gen).to(device)
            us = None
            if args.net == 'degrad':
                with torch.inference_mode():
                    _, us = NDRRestore(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                                       heads=[1, 1, 1, 1], query_dim=64).to(device)(x, return_degradation=True)
            calls = {k: make_call(m, args.net, x, us, dtype) for k, m in paths.items()}
            if args.cuda_graph and device.type == 'cuda':
                calls['graph'] = cuda_graph_call(calls['fast'])
            flops = count_flops(calls['plain'], net)
            reference = plain_fp32_output(net, args.net, x, us)
            outs, peaks, times = {}, {}, {k: [] for k in calls}
            for k, call in calls.items():  # warm-up (compilation for 'compiled') + peak memory + output
                t = time.perf_counter()
                call()
                sync(device)
                if k == 'compiled':
                    compile_s = time.perf_counter() - t
                    print(f'  {size}^2: torch.compile warm-up (compile + first run): {compile_s:.1f} s')
                holder = {}
                peaks[k] = peak_memory_mib(lambda: holder.setdefault('y', call()), device)
                outs[k] = holder['y'].float().clone()
            for _ in range(args.runs):  # interleaved A B (C) A B (C) ...
                for k, call in calls.items():
                    times[k].append(timed(call, device))
            med = {k: statistics.median(v) for k, v in times.items()}
            baseline.setdefault(size, med['plain'])
            for k in calls:
                diff = (outs[k] - outs['plain']).abs().max().item()
                diff32 = (outs[k] - reference).abs().max().item()
                rows.append((size, k + suffix, med[k], min(times[k]), max(times[k]), baseline[size] / med[k],
                             peaks[k], flops / med[k] / 1e9, diff, diff32))
            print(f'  {size}^2 {phase} allocator done: ' + ', '.join(f'{k} {med[k]:.4f} s' for k in calls) +
                  f' | {flops / 1e9:.1f} GFLOP')
    rows.sort(key=lambda row: row[0])
    ceiling = max(ceiling_before, matmul_ceiling(device, ceiling_dtype))
    print(f'{ceiling_name} matmul ceiling after: {ceiling:.1f} GFLOP/s (best of before/after used below)')

    print()
    print('| size | path | median s | min-max s | speed-up vs plain (default allocator) | peak MiB | GFLOP/s | '
          'x floor (FLOP/ceiling) | max abs diff vs plain | vs plain fp32 |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for size, k, m, lo, hi, ratio, peak, gfs, d, d32 in rows:
        floor = (gfs * m) / ceiling  # seconds at the ceiling
        print(f'| {size}^2 | {k} | {m:.4f} | {lo:.4f}-{hi:.4f} | {ratio:.2f}x | {peak:.0f} | {gfs:.1f} | '
              f'{m / floor:.2f} | {d:.2e} | {d32:.2e} |')
    if compile_s is not None:
        print(f'\ntorch.compile warm-up (last size): {compile_s:.1f} s')


if __name__ == '__main__':
    main()
