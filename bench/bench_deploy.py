"""Deployment paths side by side, in one run: PyTorch fp32 / bf16, onnxruntime fp32 (and int8), torch.compile.

    .venv/bin/python bench/bench_deploy.py [--networks small paper] [--sizes 256 512] [--big]
                                           [--runs 3] [--threads 2] [--int8] [--compile]

Every path restores through :func:`ndrsr.lib.tiling.tile_forward` (what
``ndrsr-restore`` runs): ``torch-fp32`` (the optimised view, float32),
``torch-bf16`` (the same under ``torch.autocast('cpu', bfloat16)``; needs a CPU
with native bf16), ``ort-fp32`` (the network exported by
:func:`ndrsr.lib.export.export_onnx`, run by onnxruntime through
:mod:`ndrsr.lib.onnx_runtime`), with ``--int8`` ``ort-int8`` (onnxruntime's
dynamic int8 quantisation of that export) and with ``--compile``
``torch-compile`` (the view under ``torch.compile(dynamic=True)``; its first
call, the compilation, is timed apart).

Networks: ``small`` is the shipped default model (its real weights);
``paper`` is the released network size with random weights (speed does not
depend on the weights; its differences are not meaningful for quality).

Timing: on each image size the paths take turns, run after run (``--runs``),
so a load that changes during the run (the machine is shared) hits them
alike; the table gives the median time, the ratio to torch-fp32 measured in
the same run, and the largest difference to torch-fp32 in 8-bit levels
(x 255). ``--big`` adds a 4000 x 3000 (12 MP) photo-like image, tiled (512,
overlap 32), for the small network, one run of torch-fp32 and of the path
that was fastest at the largest ``--sizes``. The load average is
printed before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401
from bench.bench_restore import photo  # noqa: E402
from ndrsr.archs import NDRRestore  # noqa: E402
from ndrsr.archs.fast_path import prepare_for_inference  # noqa: E402
from ndrsr.lib.cpu_features import cpu_bf16_support  # noqa: E402
from ndrsr.lib.tiling import tile_forward  # noqa: E402
from ndrsr.lib.weights import load_restore_network  # noqa: E402


def network(name: str) -> torch.nn.Module:
    if name == 'small':
        from ndrsr.lib.model_zoo import resolve_model
        return load_restore_network(resolve_model('small').restore)
    torch.manual_seed(0)
    return NDRRestore().eval()


class Compiled(torch.nn.Module):
    """The optimised view under torch.compile, as a module the tiler can run (no parameters of its own)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.fn = torch.compile(prepare_for_inference(net), dynamic=True)
        self.stride, self.upscale = net.stride, net.upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def paths(net: torch.nn.Module, tmp: str, args) -> dict:
    """name -> (module for tile_forward, precision)."""
    from ndrsr.lib.export import export_onnx
    from ndrsr.lib.onnx_runtime import load_onnx_restore
    out = {'torch-fp32': (net, 'fp32')}
    if cpu_bf16_support()[0]:
        out['torch-bf16'] = (net, 'bf16')
    onnx_path = os.path.join(tmp, 'net.onnx')
    start = time.perf_counter()
    export_onnx(net, onnx_path)
    print(f'  ONNX export: {time.perf_counter() - start:.1f} s, {os.path.getsize(onnx_path) / 2**20:.1f} MiB')
    out['ort-fp32'] = (load_onnx_restore(onnx_path, threads=args.threads), 'fp32')
    if args.int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        int8_path = os.path.join(tmp, 'net_int8.onnx')
        quantize_dynamic(onnx_path, int8_path, weight_type=QuantType.QInt8)
        out['ort-int8'] = (load_onnx_restore(int8_path, threads=args.threads), 'fp32')
    if args.compile:
        compiled = Compiled(net)
        x = photo(args.sizes[0], args.sizes[0])
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        print(f'  torch.compile: first call (compilation) {time.perf_counter() - start:.1f} s at {args.sizes[0]}^2')
        out['torch-compile'] = (compiled, 'fp32')
    return out


def run_path(module, precision: str, img: torch.Tensor, tile: int) -> tuple:
    start = time.perf_counter()
    out = tile_forward(module, img, tile=tile, overlap=32, precision=precision)
    return time.perf_counter() - start, out


def compare(label: str, ways: dict, img: torch.Tensor, runs: int, tile: int) -> dict:
    """Print one row per path; returns {path: median seconds}."""
    times = {name: [] for name in ways}
    outputs = {}
    for name, (module, precision) in ways.items():  # warm-up (first-call allocations, ORT's arena)
        t, outputs[name] = run_path(module, precision, img, tile)
        if runs == 0:  # one timed run each (the 12 MP case): the warm-up is the measurement
            times[name].append(t)
    for _ in range(runs):
        for name, (module, precision) in ways.items():
            t, _ = run_path(module, precision, img, tile)
            times[name].append(t)
    base = statistics.median(times['torch-fp32'])
    ref = outputs['torch-fp32'].clamp(0, 1)
    for name in ways:
        med = statistics.median(times[name])
        diff = float((outputs[name].clamp(0, 1) - ref).abs().max()) * 255
        print(f'| {label} | {name} | {med:.2f} s | {base / med:.2f}x | {diff:.2f} |', flush=True)
    return {name: statistics.median(times[name]) for name in ways}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--networks', nargs='+', default=['small', 'paper'], choices=['small', 'paper'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[256, 512])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--big', action='store_true', help='also a 12 MP image, tiled (small network)')
    parser.add_argument('--int8', action='store_true', help="also onnxruntime's dynamic int8 quantisation")
    parser.add_argument('--compile', action='store_true', help='also torch.compile (CPU, dynamic shapes)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ndrsr.glue.allocator import retain_freed_memory
    retain_freed_memory()  # as ndrsr-restore does
    import onnxruntime
    print(f'torch {torch.__version__} | onnxruntime {onnxruntime.__version__} | threads {args.threads} | '
          f'bf16: {cpu_bf16_support()[1]} | load average {os.getloadavg()[0]:.2f}')
    print('| network, image | path | median time | speed vs torch-fp32 | max diff vs torch-fp32 (levels of 255) |')
    print('|---|---|---:|---:|---:|')
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            net = network(name)
            print(f'  {name}: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters')
            ways = paths(net, tmp, args)
            for size in args.sizes:
                medians = compare(f'{name}, {size}x{size}', ways, photo(size, size), args.runs, 0)
            if args.big and name == 'small':  # torch-fp32 and the fastest other path at the largest size
                fastest = min((n for n in medians if n not in ('torch-fp32', 'torch-compile')), key=medians.get)
                big = {n: ways[n] for n in ('torch-fp32', fastest)}
                compare(f'{name}, 4000x3000 (12 MP), tiles 512', big, photo(3000, 4000), 0, 512)
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
