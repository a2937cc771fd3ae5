"""Training-step speed: plain eager networks vs the optimised view, side by side in one run.

    .venv/bin/python bench/bench_train.py [--configs demo default] [--runs 3] [--threads 2]
        [--device cpu|cuda] [--precision fp32|tf32|bf16] [--cudnn-benchmark] [--batch N] [--size N]

One step is the released joint schedule with both networks in both
directions: ``out, U = restore(lq)``, ``loss = L1(degrad(gt, U), lq) + L1(out, gt)``,
backward, gradient clipping (max norm 10, over both networks), Adam
(lr 1e-4, weight decay 1e-8). "plain" calls the networks as written; "fast"
calls ``ndrsr.archs.fast_path.prepare_for_training(net)`` views (same
parameters, same optimizer). Each path trains its own copy of the same
initial weights on the same batches, interleaved step by step (A B A B ...)
after one warm-up step each; the table gives the median step time,
iterations/s, the fast/plain ratio, the first-step loss difference and the
max parameter difference between the two copies after all steps.

Precisions: see ``bench/_common.py`` (``fp32`` is true float32, TF32 off, on
CUDA too; bf16 is autocast; fp16 would need a loss scaler and is not offered).

Allocator (CPU): both paths are timed with glibc's default allocator, then
(same process) after ``ndrsr.glue.allocator.retain_freed_memory()``, which
``ndrsr/train.py`` switches on (rows ``+retain``); speed-ups are against
``plain`` with the default allocator.

Configs: ``demo`` = the networks, crop size and batch of options/train_demo.yml
(dim 16, 64x64 crops, batch 4); ``default`` = the released networks (27.3M + 9.6M
parameters) at the released 128x128 crops, batch 4.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from os import path as osp
from typing import Dict, List, Tuple

# _common puts the repository on sys.path
from _common import ROOT, add_allocator_argument, allocator_phases, header, set_up, sync  # noqa: E402

import torch  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import clip_grad_norm_  # noqa: E402

import ndrsr  # noqa: E402,F401  (compat fixes, registration)
from basicsr.archs import build_network  # noqa: E402
from ndrsr.archs.fast_path import prepare_for_training  # noqa: E402


def config(name: str) -> Tuple[dict, dict, int, int]:
    """(network_g options, network_degrad options, gt crop size, batch) of a named configuration."""
    if name == 'default':
        return {'type': 'NDRRestore'}, {'type': 'NDRDegrad'}, 128, 4
    with open(osp.join(ROOT, 'options', 'train_demo.yml')) as f:
        opt = yaml.safe_load(f)
    train = opt['datasets']['train']
    return dict(opt['network_g']), dict(opt['network_degrad']), train['gt_size'], train['batch_size_per_gpu']


class Trainer:
    """One training path: the two networks (or their fast views), Adam over the networks' parameters."""

    def __init__(self, restore: nn.Module, degrad: nn.Module, fast: bool, dtype, grad_clip: float = 10.0):
        self.params = list(restore.parameters()) + list(degrad.parameters())
        self.restore = prepare_for_training(restore) if fast else restore
        self.degrad = prepare_for_training(degrad) if fast else degrad
        self.optimizer = torch.optim.Adam(self.params, lr=1e-4, weight_decay=1e-8)
        self.dtype, self.grad_clip = dtype, grad_clip

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(lq.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            out, us = self.restore(lq, return_degradation=True)
            loss = (self.degrad(gt, us) - lq).abs().mean() + (out - gt).abs().mean()
        loss.backward()
        clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        return loss.item()


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--configs', nargs='+', choices=['demo', 'default'], default=['demo', 'default'])
    p.add_argument('--runs', type=int, default=3, help='timed steps per path (after 1 warm-up step)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--precision', choices=['bf16', 'fp32', 'tf32'], default='fp32',
                   help='fp32 (TF32 off) | tf32 | bf16 autocast; see bench/_common.py')
    p.add_argument('--cudnn-benchmark', action='store_true', help='torch.backends.cudnn.benchmark = True')
    add_allocator_argument(p)
    p.add_argument('--batch', type=int, default=None, help='override the config batch')
    p.add_argument('--size', type=int, default=None, help='override the config crop size')
    args = p.parse_args(argv)

    device, dtype = set_up(args.device, args.precision, args.threads, args.cudnn_benchmark)
    print(header(device, args.precision, runs=args.runs))
    rows, baseline = [], {}
    for phase, suffix in allocator_phases(args.allocator, device):
        for cfg in args.configs:
            g_opt, d_opt, size, batch = config(cfg)
            size, batch = args.size or size, args.batch or batch
            torch.manual_seed(0)
            restore, degrad = build_network(g_opt).to(device).train(), build_network(d_opt).to(device).train()
            trainers: Dict[str, Trainer] = {
                'plain': Trainer(copy.deepcopy(restore), copy.deepcopy(degrad), False, dtype),
                'fast': Trainer(copy.deepcopy(restore), copy.deepcopy(degrad), True, dtype),
            }
            gen = torch.Generator().manual_seed(1)
            batches = [(torch.rand(batch, 3, size, size, generator=gen).to(device),
                        torch.rand(batch, 3, size, size, generator=gen).to(device)) for _ in range(args.runs + 1)]
            times: Dict[str, List[float]] = {k: [] for k in trainers}
            losses: Dict[str, List[float]] = {k: [] for k in trainers}
            for i, (lq, gt) in enumerate(batches):  # step 0 = warm-up
                for k, trainer in trainers.items():
                    sync(device)
                    t = time.perf_counter()
                    losses[k].append(trainer.step(lq, gt))
                    sync(device)
                    if i:
                        times[k].append(time.perf_counter() - t)
            param_diff = max((a - b).abs().max().item()
                             for a, b in zip(trainers['plain'].params, trainers['fast'].params))
            med = {k: statistics.median(v) for k, v in times.items()}
            baseline.setdefault(cfg, med['plain'])
            n_params = sum(p.numel() for p in trainers['plain'].params)
            for k in trainers:
                rows.append((cfg, f'{batch}x{size}^2', n_params, k + suffix, med[k], min(times[k]), max(times[k]),
                             1 / med[k], baseline[cfg] / med[k], abs(losses[k][0] - losses['plain'][0]),
                             param_diff if k == 'fast' else 0.0))
            print(f'  {cfg} {phase} allocator done: ' + ', '.join(f'{k} {med[k]:.2f} s/it' for k in trainers))
    rows.sort(key=lambda row: args.configs.index(row[0]))
    print()
    print('| config | batch x crop | params | path | median s/it | min-max s | it/s | speed-up vs plain '
          '(default allocator) | '
          'first-loss diff | max param diff after steps |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for cfg, shape, n, k, m, lo, hi, its, ratio, dl, dp in rows:
        print(f'| {cfg} | {shape} | {n / 1e6:.1f}M | {k} | {m:.3f} | {lo:.3f}-{hi:.3f} | {its:.3f} | {ratio:.2f}x | '
              f'{dl:.1e} | {dp:.1e} |')


if __name__ == '__main__':
    main()
