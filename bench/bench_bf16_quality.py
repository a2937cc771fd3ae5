"""What bf16 on the CPU costs in quality, and what it saves in time, on the default model's held-out sets.

    .venv/bin/python bench/bench_bf16_quality.py [--opt options/test_small_all_in_one.yml] [--model small]
                                                 [--sets heldout_noise25 ...] [--max-images 15] [--threads 2]

Builds the named validation sets of ``--opt`` (the default model's evaluation,
docs/models.md; they need ../shared/data) with ndrsr's own dataset classes,
restores every image with :func:`ndrsr.lib.tiling.tile_forward` in fp32 and in
bf16 (``torch.autocast('cpu', bfloat16)``), one after the other per image, and
prints per set the mean PSNR (RGB, 8-bit rounded outputs, as ndrsr-restore
writes them) of both, their difference, and the summed time of each. This is
the measurement behind ``--precision auto`` on the CPU (docs/performance.md,
BENCHMARKS.md): bf16 is chosen only if it is at least 1.3x faster and costs at
most 0.05 dB on every set.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401
from ndrsr.lib.cpu_features import cpu_bf16_support  # noqa: E402
from ndrsr.lib.tiling import tile_forward  # noqa: E402

DEFAULT_SETS = ('heldout_noise25', 'heldout_noise50', 'heldout_rain_light', 'heldout_rain_heavy', 'heldout_haze',
                'heldout_clean', 'rain100l_samples', 'sots_outdoor_samples')


def psnr8(out: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR of 8-bit rounded ``out`` against ``gt`` (both (3, H, W) in [0, 1])."""
    mse = ((out.clamp(0, 1) * 255).round() / 255 - gt).pow(2).mean()
    return float(10 * torch.log10(1 / mse.clamp_min(1e-12)))


def datasets(opt_path: str, names):
    import yaml
    from basicsr.data import build_dataset
    with open(opt_path) as f:
        opt = yaml.safe_load(f)
    for key, ds in opt['datasets'].items():
        if ds.get('name') in names:
            yield ds['name'], build_dataset(dict(ds, phase='val', scale=opt.get('scale', 1)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--opt', default='options/test_small_all_in_one.yml')
    parser.add_argument('--model', default='small')
    parser.add_argument('--sets', nargs='+', default=list(DEFAULT_SETS))
    parser.add_argument('--max-images', type=int, default=15)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    supported, reason = cpu_bf16_support()
    if not supported:
        print(f'bf16 is not supported here: {reason}')
        return 1
    torch.set_num_threads(args.threads)
    from ndrsr.glue.allocator import retain_freed_memory
    from ndrsr.lib.model_zoo import resolve_model
    from ndrsr.lib.weights import load_restore_network
    retain_freed_memory()
    files = resolve_model(args.model)
    net = load_restore_network(files.restore)
    print(f'model {files.name} | torch {torch.__version__} | threads {args.threads} | {reason} | '
          f'load average {os.getloadavg()[0]:.2f}')
    print('| set | images | PSNR fp32 | PSNR bf16 | bf16 - fp32 | time fp32 | time bf16 | speed-up |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    totals = {'fp32': 0.0, 'bf16': 0.0}
    worst = 0.0
    for name, ds in datasets(args.opt, set(args.sets)):
        n = min(len(ds), args.max_images)
        scores = {'fp32': [], 'bf16': []}
        times = {'fp32': 0.0, 'bf16': 0.0}
        for i in range(n):
            item = ds[i]
            lq, gt = item['lq'][None], item['gt']
            for precision in ('fp32', 'bf16'):
                start = time.perf_counter()
                out = tile_forward(net, lq, precision=precision)
                times[precision] += time.perf_counter() - start
                scores[precision].append(psnr8(out[0], gt))
        means = {p: sum(s) / len(s) for p, s in scores.items()}
        delta = means['bf16'] - means['fp32']
        worst = min(worst, delta)
        for p in totals:
            totals[p] += times[p]
        print(f"| {name} | {n} | {means['fp32']:.3f} | {means['bf16']:.3f} | {delta:+.3f} | {times['fp32']:.1f} s | "
              f"{times['bf16']:.1f} s | {times['fp32'] / times['bf16']:.2f}x |", flush=True)
    print(f"all sets: fp32 {totals['fp32']:.1f} s, bf16 {totals['bf16']:.1f} s, speed-up "
          f"{totals['fp32'] / totals['bf16']:.2f}x; worst PSNR change {worst:+.3f} dB | load average after "
          f'{os.getloadavg()[0]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
