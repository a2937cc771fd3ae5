"""Data-pipeline throughput: disk vs LMDB, with and without on-the-fly synthesis, side by side in one run.

    .venv/bin/python bench/bench_data.py [--data ../shared/data] [--samples 40] [--rounds 3] [--workers 0]

Uses the real samples in ``--data`` when present (samples_rain, samples_haze:
paired with their original names; kodak24: clean), else generated images of
the same sizes. LMDBs are built into a temporary folder with
``ndrsr.data.make_lmdb``. Every configuration is timed in interleaved rounds
(A B C D, A B C D, ...) so machine load hits them alike; the table gives the
median samples/s per configuration and the median per-round LMDB/disk ratios.
gt_size 128, scale 1, flips and rotations on, one process (``--workers 0``)
unless asked otherwise.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ndrsr  # noqa: E402,F401  (compat fixes, registration)
from basicsr.data import build_dataloader, build_dataset  # noqa: E402
from basicsr.data.data_sampler import EnlargedSampler  # noqa: E402
from ndrsr.data.synthesis import apply_synthesis, parse_synthesis  # noqa: E402
from ndrsr.data.make_lmdb import make_lmdb  # noqa: E402


def generated_data(root: str) -> dict:
    """Stand-ins with the real names and sizes when the shared samples are absent."""
    rng = np.random.default_rng(0)

    def img(h, w):
        coarse = rng.random((6, 6, 3)).astype(np.float32)
        out = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + 0.03 * rng.standard_normal((h, w, 3))
        return (np.clip(out, 0, 1) * 255).astype(np.uint8)

    for sub in ('samples_rain/lq', 'samples_rain/gt', 'samples_haze/lq', 'samples_haze/gt', 'kodak24/gt'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for i in range(1, 6):
        gt = img(321, 481)
        cv2.imwrite(osp.join(root, 'samples_rain/gt', f'norain-{i}.png'), gt)
        cv2.imwrite(osp.join(root, 'samples_rain/lq', f'rain-{i}.png'), np.clip(gt.astype(int) + 30, 0, 255))
        cv2.imwrite(osp.join(root, 'samples_haze/gt', f'{i:04d}.png'), img(413, 550))
        cv2.imwrite(osp.join(root, 'samples_haze/lq', f'{i:04d}_0.8_0.2.jpg'), img(413, 550))
    for i in range(1, 25):
        cv2.imwrite(osp.join(root, 'kodak24/gt', f'kodim{i:02d}.png'), img(512, 768))
    return {'root': root, 'real': False}


def train_opt(sources, backend, workers=0):
    return dict(name='bench', type='MixedDegradationDataset', phase='train', scale=1, gt_size=128, use_hflip=True,
                use_rot=True, io_backend={'type': backend}, sources=sources, batch_size_per_gpu=1,
                num_worker_per_gpu=workers)


def time_config(opt, n, seed, workers):
    """samples/s of n consecutive samples of a freshly built dataset (first sample excluded: file opening)."""
    ds = build_dataset(opt)
    np.random.seed(seed)
    random.seed(seed)
    idx = np.random.default_rng(seed).integers(0, len(ds), n + 1)
    if workers == 0:
        ds[int(idx[0])]
        t = time.perf_counter()
        for i in idx[1:]:
            ds[int(i)]
        return n / (time.perf_counter() - t)
    loader = build_dataloader(ds, opt, num_gpu=0, sampler=EnlargedSampler(ds, 1, 0, max(1, n // len(ds) + 2)),
                              seed=seed)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def shared_samples_check(data: str) -> None:
    """The real Rain100L / RESIDE names load through the options alone (no renamed copies)."""
    from ndrsr.data.task_val_dataset import TaskValidationDataset
    print('\nShared samples through options (original file names):')
    for name, rule in (('samples_rain', 'rain'), ('samples_haze', 'reside')):
        lq, gt = osp.join(data, name, 'lq'), osp.join(data, name, 'gt')
        ds = TaskValidationDataset(dict(name=name, task=name.split('_')[1], dataroot_lq=lq, dataroot_gt=gt,
                                        pairing=rule, io_backend={'type': 'disk'}))
        for lq_stem, gt_stem in ds.source.items:
            s = ds[ds.source.items.index((lq_stem, gt_stem))]
            print(f'  {name} (pairing: {rule}): {ds.source.lq.names[lq_stem]:>20} <-> {ds.source.gt.names[gt_stem]:<14}'
                  f" lq {tuple(s['lq'].shape)} gt {tuple(s['gt'].shape)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=osp.join(osp.dirname(ROOT), 'shared', 'data'))
    parser.add_argument('--samples', type=int, default=40, help='samples per configuration per round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers (0: call the dataset directly)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix='ndrsr_bench_')
    try:
        data = args.data
        real = all(osp.isdir(osp.join(data, d)) for d in ('samples_rain', 'samples_haze', 'kodak24'))
        if not real:
            print(f'{data} not found: using generated images with the same names and sizes')
            data = generated_data(osp.join(tmp, 'data'))['root']
        folders = {k: osp.join(data, k) for k in ('samples_rain/lq', 'samples_rain/gt', 'samples_haze/lq',
                                                    'samples_haze/gt', 'kodak24/gt')}
        t = time.perf_counter()
        lmdbs = {k: osp.join(tmp, 'lmdb', k.replace('/', '_') + '.lmdb') for k in folders}
        for k in folders:
            make_lmdb(folders[k], lmdbs[k], verbose=False)
        build_s = time.perf_counter() - t

        def paired(where):
            return [dict(name='rain', task='rain', dataroot_lq=where['samples_rain/lq'],
                         dataroot_gt=where['samples_rain/gt'], pairing='rain'),
                    dict(name='haze', task='haze', dataroot_lq=where['samples_haze/lq'],
                         dataroot_gt=where['samples_haze/gt'], pairing='reside')]

        def synth(where):
            return [dict(name=t, dataroot_gt=where['kodak24/gt'], synthesize=[t])
                    for t in ('noise', 'rain', 'haze', 'downup2')]

        configs = {
            'paired (rain+haze), disk': train_opt(paired(folders), 'disk', args.workers),
            'paired (rain+haze), lmdb': train_opt(paired(lmdbs), 'lmdb', args.workers),
            'synthesis (noise/rain/haze/downup2), disk': train_opt(synth(folders), 'disk', args.workers),
            'synthesis (noise/rain/haze/downup2), lmdb': train_opt(synth(lmdbs), 'lmdb', args.workers),
        }
        rates = {k: [] for k in configs}
        for r in range(args.rounds):
            for k, opt in configs.items():
                rates[k].append(time_config(opt, args.samples, seed=r, workers=args.workers))
        print(f"\nData pipeline, gt_size 128, {args.samples} samples x {args.rounds} interleaved rounds, "
              f"workers {args.workers}, {'real shared samples' if real else 'generated images'} "
              f'(LMDBs built in {build_s:.1f} s)')
        print(f"{'configuration':<45} {'samples/s (median)':>19} {'min':>7} {'max':>7}")
        for k, v in rates.items():
            print(f'{k:<45} {statistics.median(v):>19.1f} {min(v):>7.1f} {max(v):>7.1f}')
        print('\nSide-by-side ratios (median over rounds):')
        for kind in ('paired (rain+haze)', 'synthesis (noise/rain/haze/downup2)'):
            ratio = statistics.median(lm / d for lm, d in zip(rates[f'{kind}, lmdb'], rates[f'{kind}, disk']))
            print(f'  {kind}: lmdb / disk = {ratio:.2f}')
        for backend in ('disk', 'lmdb'):
            ratio = statistics.median(
                s / p for s, p in zip(rates[f'synthesis (noise/rain/haze/downup2), {backend}'],
                                      rates[f'paired (rain+haze), {backend}']))
            print(f'  {backend}: synthesis / paired = {ratio:.2f}')

        print('\nSynthesis cost per 128x128 crop (ms, median of 30):')
        crop = np.random.default_rng(0).random((128, 128, 3), dtype=np.float32)
        for step in ('noise', 'rain', 'haze', 'down2', 'downup2'):
            steps = parse_synthesis([step])
            times = []
            for i in range(30):
                t = time.perf_counter()
                apply_synthesis(crop, steps, np.random.default_rng(i))
                times.append((time.perf_counter() - t) * 1000)
            print(f'  {step:<8} {statistics.median(times):6.2f}')
        if real:
            shared_samples_check(data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
