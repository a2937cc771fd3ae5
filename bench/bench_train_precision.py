"""Training-step speed of a recipe's networks at its crop and batch: float32 vs bf16 autocast vs channels-last,
side by side in one run, and whether they follow the same loss curve.

    .venv/bin/python bench/bench_train_precision.py [-opt options/train_small_all_in_one_v4.yml] [--steps 12]
        [--threads 2]

Paths (every one the optimised training view of ``ndrsr.archs.fast_path``, the joint step of
``bench/bench_train.py``: both networks, both losses, clipping, Adam): ``fp32``; ``bf16`` (autocast, float32
weights: what ``train.autocast: bf16`` does); ``fp32+cl`` / ``bf16+cl`` (networks and batches in
channels-last memory format). Each path trains its own copy of the same initial weights on the same
random batches, interleaved step by step after one warm-up step. The table gives the median step time,
the speed-up against fp32 measured in this run, and the largest relative difference of a path's loss from
fp32's over all steps (the same loss curve: a few percent at most). bf16 rows are skipped where the CPU
has no native bf16 (the reason is printed).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from os import path as osp
from typing import Dict, List

from _common import ROOT, header, set_up, sync  # noqa: E402  (puts the repository on sys.path)
from bench_train import Trainer  # noqa: E402

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401  (compat fixes, registration)
from basicsr.archs import build_network  # noqa: E402
from ndrsr.glue.options_io import load_options_file  # noqa: E402
from ndrsr.lib.cpu_features import cpu_bf16_support  # noqa: E402


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('-opt', default=osp.join(ROOT, 'options', 'train_small_all_in_one_v4.yml'),
                   help='training options: their networks, gt_size and batch_size_per_gpu')
    p.add_argument('--steps', type=int, default=12, help='timed steps per path (after 1 warm-up step)')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)

    device, _ = set_up('cpu', 'fp32', args.threads)
    opt = load_options_file(args.opt)
    train = opt['datasets']['train']
    size, batch = int(train['gt_size']), int(train['batch_size_per_gpu'])
    native, reason = cpu_bf16_support()
    print(header(device, 'fp32 / bf16 autocast', steps=args.steps, options=osp.relpath(args.opt, ROOT)))
    if not native:
        print(f'bf16 skipped: {reason}')
    torch.manual_seed(0)
    restore, degrad = build_network(dict(opt['network_g'])).train(), build_network(dict(opt['network_degrad'])).train()
    paths = {'fp32': (None, False), 'fp32+cl': (None, True)}
    if native:
        paths.update({'bf16': (torch.bfloat16, False), 'bf16+cl': (torch.bfloat16, True)})
    trainers: Dict[str, Trainer] = {}
    for name, (dtype, channels_last) in paths.items():
        r, d = copy.deepcopy(restore), copy.deepcopy(degrad)
        if channels_last:
            r, d = r.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        trainers[name] = Trainer(r, d, True, dtype)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(batch, 3, size, size, generator=gen), torch.rand(batch, 3, size, size, generator=gen))
               for _ in range(args.steps + 1)]
    times: Dict[str, List[float]] = {k: [] for k in trainers}
    losses: Dict[str, List[float]] = {k: [] for k in trainers}
    for i, (lq, gt) in enumerate(batches):  # step 0 = warm-up
        for name, trainer in trainers.items():
            x, y = lq, gt
            if paths[name][1]:
                x, y = (t.contiguous(memory_format=torch.channels_last) for t in (lq, gt))
            sync(device)
            t = time.perf_counter()
            losses[name].append(trainer.step(x, y))
            if i:
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print('| path | batch x crop | median s/it | min-max s | it/s | speed-up vs fp32 (this run) | '
          'max loss difference vs fp32 over the steps |')
    print('|---|---|---|---|---|---|---|')
    for name in trainers:
        diff = max(abs(a - b) / abs(b) for a, b in zip(losses[name], losses['fp32']))
        print(f'| {name} | {batch}x{size}^2 | {med[name]:.3f} | {min(times[name]):.3f}-{max(times[name]):.3f} | '
              f'{1 / med[name]:.2f} | {med["fp32"] / med[name]:.2f}x | {100 * diff:.3g} % |')


if __name__ == '__main__':
    main()
