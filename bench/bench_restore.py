"""Peak memory and time of tiled restoration of a 3840x2160 image (CPU, or CUDA with --device).

    .venv/bin/python bench/bench_restore.py [--tile 512] [--overlap 32] [--network full|small]
                                            [--weights W] [--max-tiles N] [--threads 2]
                                            [--device cpu|cuda] [--precision fp32|fp16|bf16]

Runs :func:`ndrsr.lib.tiling.tile_forward` (the path ``ndrsr-restore`` uses)
once on a synthetic photo-like 3840x2160 image and prints the wall time and
the process's peak resident memory (``ru_maxrss``, everything included:
Python, torch, the image, the output accumulators and one tile's
activations), plus the baseline before the run. On the CPU freed memory is kept
for reuse (``ndrsr.glue.allocator.retain_freed_memory()``), as ``ndrsr-restore`` does. ``--network full`` is the
released size (random weights unless ``--weights``); ``--max-tiles N`` stops
after N tiles (the memory peak is reached on the first tile: every tile is
the same size) and extrapolates the time to all tiles, which the output says.
On CUDA the peak GPU memory (``torch.cuda.max_memory_allocated``) is printed
too, and ``--precision`` is the autocast precision of ``ndrsr-restore``.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401
from ndrsr.archs import NDRRestore  # noqa: E402
from ndrsr.lib.tiling import plan_tiles, tile_forward  # noqa: E402
from ndrsr.lib.weights import load_restore_network  # noqa: E402

SMALL = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])


class _Stop(Exception):
    pass


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / (1024 if platform.system() == 'Darwin' else 1)


def photo(h: int, w: int) -> torch.Tensor:
    """(1, 3, h, w) smooth colours + edges + noise in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None]
    img = torch.stack([0.5 + 0.4 * torch.sin(12 * x + 5 * y), (x * y) ** 0.5,
                       0.5 + 0.3 * torch.cos(20 * y) * (x > 0.4)])
    return (img[None] + 0.03 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--height', type=int, default=2160)
    parser.add_argument('--width', type=int, default=3840)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--network', choices=['full', 'small'], default='full')
    parser.add_argument('--weights', help='checkpoint to load instead of random weights')
    parser.add_argument('--max-tiles', type=int, default=0, help='stop after N tiles and extrapolate the time (0: all)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'], default='fp32')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = load_restore_network(args.weights) if args.weights else \
        NDRRestore(**({} if args.network == 'full' else SMALL)).eval()
    device = torch.device(args.device)
    if device.type == 'cpu':
        from ndrsr.glue.allocator import retain_freed_memory
        retain_freed_memory()  # as ndrsr-restore does: freed memory is reused, no page faults per tile
    net = net.to(device)
    params = sum(p.numel() for p in net.parameters())
    img = photo(args.height, args.width)
    grid = plan_tiles(args.height, args.width, args.tile, args.overlap)
    n_tiles = len(grid.boxes())
    base = peak_rss_mib()
    times = []

    def progress(done: int, total: int) -> None:
        times.append(time.perf_counter())
        if args.max_tiles and done >= args.max_tiles:
            raise _Stop

    start = time.perf_counter()
    complete = True
    try:
        out = tile_forward(net, img, tile=args.tile, overlap=args.overlap, precision=args.precision,
                           progress=progress)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        assert out.shape == (1, 3, args.height, args.width) and torch.isfinite(out).all()
    except _Stop:
        complete = False
    wall = time.perf_counter() - start
    done = len(times)
    per_tile = (times[-1] - times[0]) / (done - 1) if done > 1 else wall / max(done, 1)
    total = wall if complete else (times[0] - start) + per_tile * (n_tiles - 1)
    print(f'image {args.width}x{args.height}, network {args.weights or args.network} ({params / 1e6:.2f} M params), '
          f'tile {grid.tile} overlap {grid.overlap}: {n_tiles} tiles, {args.threads} threads, '
          f'torch {torch.__version__}')
    if device.type == 'cuda':
        print(f'device {torch.cuda.get_device_name(device)}, precision {args.precision}: peak GPU memory '
              f'{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB')
    print(f'peak RSS {peak_rss_mib():.0f} MiB ({peak_rss_mib() / 1024:.2f} GiB; before the run {base:.0f} MiB)')
    if complete:
        print(f'time {wall:.1f} s for all {n_tiles} tiles ({wall / n_tiles:.2f} s/tile)')
    else:
        print(f'time {wall:.1f} s for {done}/{n_tiles} tiles ({per_tile:.2f} s/tile after the first); '
              f'extrapolated to all tiles: {total:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
