"""Training step of the fast path: the blocks' channel split as ``Tensor.split`` vs as two slices, one run.

    .venv/bin/python bench/bench_train_split.py [--steps 12] [--threads 2] [--batch 4] [--size 96]

The attention and the gated feed-forward of the fast path divide one tensor
into parts along the channels (q/k/v; gate/value). Written as slices
(``y[:, :h]``, ``y[:, h:]``), autograd's backward of each slice allocates a
zero tensor of the whole input and copies the part's gradient into it; written
as ``y.split(h)``, the backward is one ``cat``. This script trains two copies
of the same networks (options/train_small_all_in_one_v2.yml: the small model at
its crops and batch) on the same batches, interleaved step by step, one with
the blocks as shipped (split) and one with the slicing variant, which it
derives from the shipped source by replacing the split line (so the two differ
in nothing else). Prints the median step times, their ratio and the largest
loss difference (0: the same numbers).
"""
from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import textwrap
import time

from _common import ROOT, header, set_up  # noqa: E402  (puts the repository on sys.path)

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401  (before basicsr: the import aliases)
from basicsr.archs import build_network  # noqa: E402,I001
from bench_train import Trainer  # noqa: E402
from ndrsr.glue.allocator import retain_freed_memory  # noqa: E402
from ndrsr.archs import restormer_blocks as blocks  # noqa: E402
from ndrsr.glue.options_io import load_options_file  # noqa: E402

SPLITS = {  # class -> (the shipped split line, the slicing it replaced)
    blocks.FastGatedFeedForward: ('y.split(hidden, dim=1)', 'y[:, :hidden], y[:, hidden:]'),
    blocks.FastTransposedAttention: ('qkv.split(c, dim=-1)', 'qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]'),
}


def slicing_forward(cls):
    """``cls.forward`` with its split written as slices (compiled from the shipped source)."""
    source = textwrap.dedent(inspect.getsource(cls.forward))
    split, slices = SPLITS[cls]
    assert split in source, f'{cls.__name__}.forward no longer splits with {split}'
    namespace = dict(vars(blocks))
    exec(source.replace(split, slices), namespace)  # noqa: S102  (our own source)
    return namespace['forward']


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=12, help='timed steps per variant (after 1 warm-up step)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=None, help='default: the recipe batch')
    p.add_argument('--size', type=int, default=None, help='default: the recipe crop')
    args = p.parse_args(argv)
    device, _ = set_up('cpu', 'fp32', args.threads, False)
    retain_freed_memory()  # as ndrsr/train.py
    print(header(device, 'fp32', runs=args.steps))
    opt = load_options_file(f'{ROOT}/options/train_small_all_in_one_v2.yml')
    batch = args.batch or opt['datasets']['train']['batch_size_per_gpu']
    size = args.size or opt['datasets']['train']['gt_size']
    torch.manual_seed(0)
    restore, degrad = build_network(dict(opt['network_g'])).train(), build_network(dict(opt['network_degrad'])).train()
    forwards = {'split (shipped)': {cls: cls.forward for cls in SPLITS},
                'slicing': {cls: slicing_forward(cls) for cls in SPLITS}}
    trainers = {k: Trainer(copy.deepcopy(restore), copy.deepcopy(degrad), True, None) for k in forwards}
    gen = torch.Generator().manual_seed(1)
    times = {k: [] for k in trainers}
    losses = {k: [] for k in trainers}
    try:
        for i in range(args.steps + 1):
            lq, gt = torch.rand(batch, 3, size, size, generator=gen), torch.rand(batch, 3, size, size, generator=gen)
            for k, trainer in trainers.items():
                for cls, fwd in forwards[k].items():
                    cls.forward = fwd
                t = time.perf_counter()
                losses[k].append(trainer.step(lq, gt))
                if i:
                    times[k].append(time.perf_counter() - t)
    finally:
        for cls, fwd in forwards['split (shipped)'].items():
            cls.forward = fwd
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = max(abs(a - b) for a, b in zip(*losses.values()))
    print('\n| variant | batch x crop | median s/step | min-max s | slicing / variant |')
    print('|---|---|---|---|---|')
    for k, v in times.items():
        print(f"| {k} | {batch}x{size}^2 | {med[k]:.3f} | {min(v):.3f}-{max(v):.3f} | {med['slicing'] / med[k]:.2f}x |")
    print(f'\nlargest loss difference between the variants over {args.steps + 1} steps: {diff:.1e}')


if __name__ == '__main__':
    main()
