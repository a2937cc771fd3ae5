"""Small-budget CPU ablation study of NDR-Restore.

Trains every ablation row of the paper's Tables VIII-X (the variants of
scripts/make_ablation_options.py) with the same small budget, seed and data,
evaluates each on the same held-out images, and prints one table:
variant, seed, parameters, PSNR/SSIM per evaluation set, average, training time.

    .venv/bin/python bench/ablation_study.py                  # the study (< 1 h on 2 busy cores)
    .venv/bin/python bench/ablation_study.py --iters 5 --variants full,no_ndr --seeds 0   # smoke run

Training data (identical for every run): the clean scikit-image photos
(ndrsr.cli.demo.export_photos) and, when present, /work/shared/data/samples_noise/gt,
degraded on the fly with noise (sigma in {15, 25, 50}), synthetic rain and synthetic
haze; plus, when present, the real pairs samples_rain 1-3 and samples_haze
0001-0003 (pairs 4-5 / 0004, 0006 are held out for evaluation).

Evaluation (identical for every run; all crops are centre crops):
  noise25   held-out Kodak24 images, sigma 25 Gaussian noise, seeded per image
  rain_syn  the same Kodak images with the synthetic rain of ndrsr.data (seeded per image)
  haze_syn  the same Kodak images with the synthetic haze of ndrsr.data (seeded per image)
  rain_real samples_rain pairs 4 and 5 (real Rain100L-style pairs, never trained on)
  haze_real samples_haze pairs 0004 and 0006 (real RESIDE-style pairs, never trained on)
Without /work/shared/data the Kodak sets are replaced by the two scikit-image
validation photos and the real sets are dropped (the table says so).
PSNR/SSIM: basicsr.metrics.calculate_psnr/ssim on RGB, 8-bit, crop_border 0.

Network (reduced for the CPU; the NDR keeps the paper's sizes): NDR-Restore dim 16,
blocks [1,1,1,1], refinement 1, heads [1,1,2,2], query_dim 32 (paper 64), cp_rank 8
(paper 16), NDR (M, N) = (128, 32) unless the row changes it; NDR-Degrad dim 16.
Adam 5e-4 with linear warm-up and cosine decay to 1e-5, L1 for both losses,
batch 4 of 64x64 crops, grad clip 10, no EMA, 60 iterations, 2 runs in parallel with 1 torch thread each.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import logging
import os
import os.path as osp
import random
import shutil
import sys
import tempfile
import time
from copy import deepcopy

import numpy as np
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'scripts'))

import ndrsr  # noqa: E402,F401  (must precede basicsr: registers archs/data/models, compat fixes)
import cv2  # noqa: E402
from basicsr.data import build_dataset  # noqa: E402
from basicsr.metrics import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils import img2tensor, tensor2img  # noqa: E402
from make_ablation_options import VARIANTS  # noqa: E402

from ndrsr.data.synthesis import apply_synthesis, parse_synthesis  # noqa: E402
from ndrsr.data.task_val_dataset import image_seed  # noqa: E402
from ndrsr.cli.demo import export_photos  # noqa: E402

SHARED = osp.abspath(osp.join(ROOT, os.pardir, 'shared', 'data'))
KODAK_EVAL = ('kodim03', 'kodim07', 'kodim11', 'kodim15', 'kodim19', 'kodim23')
RAIN_TRAIN, RAIN_EVAL = ('norain-1', 'norain-2', 'norain-3'), ('rain-4', 'rain-5')
HAZE_TRAIN, HAZE_EVAL = ('0001', '0002', '0003'), ('0004_0.9_0.12', '0006_0.85_0.08')

SMALL_G = dict(type='NDRRestore', dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2],
               ffn_expansion_factor=2.66, ndr_atoms=32, ndr_dim=128, query_dim=32, cp_rank=8, query_mode='ndr',
               injection_mode='cp', upscale=1)
SMALL_D = dict(type='NDRDegrad', dim=16, query_dim=32, cp_rank=8, ca_reduction=16, injection_mode='cp', upscale=1)


# ----------------------------------------------------------------------------- data
def prepare_training_data(work: str, shared: str | None) -> dict:
    """Training dataset options (MixedDegradationDataset) for the study."""
    photos = export_photos(osp.join(work, 'photos'))
    clean_dirs = [osp.dirname(photos['train'][0])]
    if shared:
        clean_dirs.append(osp.join(shared, 'samples_noise', 'gt'))
    sources = []
    for task in ('noise', 'rain', 'haze'):
        for i, d in enumerate(clean_dirs):
            sources.append({'name': f'{task}_syn{i}', 'task': task, 'dataroot_gt': d, 'synthesize': [task]})
    if shared:
        meta = {}
        for name, stems in (('rain', RAIN_TRAIN), ('haze', HAZE_TRAIN)):
            meta[name] = osp.join(work, f'meta_{name}.txt')
            with open(meta[name], 'w') as f:
                f.write(''.join(f'{s}\n' for s in stems))
        sources.append({'name': 'rain_real', 'task': 'rain', 'dataroot_gt': osp.join(shared, 'samples_rain', 'gt'),
                        'dataroot_lq': osp.join(shared, 'samples_rain', 'lq'), 'pairing': 'rain',
                        'meta_info_file': meta['rain']})
        sources.append({'name': 'haze_real', 'task': 'haze', 'dataroot_gt': osp.join(shared, 'samples_haze', 'gt'),
                        'dataroot_lq': osp.join(shared, 'samples_haze', 'lq'), 'pairing': 'reside',
                        'meta_info_file': meta['haze']})
    # one third per task; within a task the sources share equally
    per_task = {t: sum(s['task'] == t for s in sources) for t in ('noise', 'rain', 'haze')}
    for s in sources:
        s['ratio'] = round(1.0 / 3 / per_task[s['task']], 4)
    return {'name': 'ablation_train', 'type': 'MixedDegradationDataset', 'phase': 'train', 'scale': 1,
            'gt_size': 64, 'use_hflip': True, 'use_rot': True, 'io_backend': {'type': 'disk'},
            'sources': sources}


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(size, h) // 8 * 8, min(size, w) // 8 * 8
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top:top + ch, left:left + cw]


def _read(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img.astype(np.float32) / 255.


def prepare_eval_sets(work: str, shared: str | None, crop: int) -> dict:
    """{set name: [(image name, lq HWC BGR float32, gt)]}, fixed for every run."""
    sets = {}
    if shared:
        clean = [(n, _read(osp.join(shared, 'kodak24', 'gt', n + '.png'))) for n in KODAK_EVAL]
    else:
        val_dir = osp.join(work, 'photos', 'val')
        clean = [(osp.splitext(n)[0], _read(osp.join(val_dir, n))) for n in sorted(os.listdir(val_dir))]
    clean = [(n, np.ascontiguousarray(_center_crop(img, crop))) for n, img in clean]
    for name, step in (('noise25', 'noise25'), ('rain_syn', 'rain'), ('haze_syn', 'haze')):
        steps = parse_synthesis([step])
        sets[name] = [(n, apply_synthesis(gt.copy(), steps, image_seed(n, 0)).astype(np.float32), gt)
                      for n, gt in clean]
    if shared:
        for name, folder, lq_stems, lq_ext, gt_of in (
                ('rain_real', 'samples_rain', RAIN_EVAL, '.png', lambda s: 'no' + s + '.png'),
                ('haze_real', 'samples_haze', HAZE_EVAL, '.jpg', lambda s: s.split('_')[0] + '.png')):
            items = []
            for s in lq_stems:
                lq = _read(osp.join(shared, folder, 'lq', s + lq_ext))
                gt = _read(osp.join(shared, folder, 'gt', gt_of(s)))
                items.append((s, np.ascontiguousarray(_center_crop(lq, crop)),
                              np.ascontiguousarray(_center_crop(gt, crop))))
            sets[name] = items
    return sets


def _to_u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255.).round().astype(np.uint8)


def metrics(restored: np.ndarray, gt: np.ndarray) -> tuple:
    return (calculate_psnr(restored, gt, crop_border=0, test_y_channel=False),
            calculate_ssim(restored, gt, crop_border=0, test_y_channel=False))


def input_metrics(sets: dict) -> dict:
    out = {}
    for name, items in sets.items():
        vals = [metrics(_to_u8(lq), _to_u8(gt)) for _, lq, gt in items]
        out[name] = tuple(float(np.mean(v)) for v in zip(*vals))
    return out


# ----------------------------------------------------------------------------- model
def variant_options(variant: str, seed: int, iters: int, work: str) -> dict:
    changes = VARIANTS[variant][1]
    net_g, net_d = deepcopy(SMALL_G), deepcopy(SMALL_D)
    train = {
        'schedule': 'joint',
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        'degrad_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        'optim_g': {'type': 'Adam', 'lr': 5e-4, 'weight_decay': 1e-8, 'betas': [0.9, 0.999]},
        'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [max(iters, 1)], 'restart_weights': [1],
                      'eta_min': 1e-5},
        'grad_clip': 10, 'ema_decay': 0, 'total_iter': iters, 'warmup_iter': max(1, min(20, iters // 10)),
    }
    net_g.update(changes.get('network_g', {}))
    net_d.update(changes.get('network_degrad', {}))
    train.update(changes.get('train', {}))
    unknown = set(changes) - {'network_g', 'network_degrad', 'train'}
    if unknown:
        raise KeyError(f'variant {variant}: unsupported sections {unknown}')
    root = osp.join(work, 'exp')
    return {
        'name': f'ablation_{variant}_s{seed}', 'model_type': 'NDRModel', 'is_train': True, 'dist': False, 'rank': 0,
        'world_size': 1, 'num_gpu': 0, 'scale': 1, 'manual_seed': seed,
        'network_g': net_g, 'network_degrad': net_d,
        'path': {'experiments_root': root, 'models': root, 'training_states': root, 'log': root,
                 'visualization': root, 'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'datasets': {}, 'train': train,
        'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
    }


def config_key(opt: dict) -> str:
    """What a run depends on besides the seed (two variants with the same key train identically)."""
    return json.dumps([opt['network_g'], opt['network_degrad'] if opt['train']['schedule'] != 'restore_only' else None,
                       opt['train']], sort_keys=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_init(worker_id: int, seed: int = 0) -> None:
    random.seed(seed + worker_id)
    np.random.seed(seed + worker_id)
    torch.manual_seed(seed + worker_id)
    cv2.setNumThreads(1)


class _WorkerInit:
    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, worker_id: int) -> None:
        _worker_init(worker_id, self.seed)


def _log(msg: str) -> None:
    print(msg, flush=True)


def _init_process(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.getLogger('basicsr').setLevel(logging.WARNING)


def train_and_evaluate(variant: str, seed: int, iters: int, train_opt: dict, sets: dict, work: str,
                       batch: int, workers: int, log) -> dict:
    opt = variant_options(variant, seed, iters, work)
    seed_everything(seed)
    model = build_model(opt)
    n_g = sum(p.numel() for p in model.get_bare_model(model.net_g).parameters())
    n_d = (sum(p.numel() for p in model.get_bare_model(model.net_degrad).parameters())
           if hasattr(model, 'net_degrad') else 0)

    dataset = build_dataset(dict(train_opt))
    gen = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=max(iters, 1) * batch,
                                             generator=gen)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                                         drop_last=True, worker_init_fn=_WorkerInit(seed),
                                         persistent_workers=False)
    warmup = opt['train']['warmup_iter']
    if workers == 0:  # the same data stream as one worker process (seeded by _worker_init)
        _worker_init(0, seed)
    t0 = time.time()
    losses = []
    for it, batch_data in enumerate(loader, start=1):
        if it > iters:
            break
        model.update_learning_rate(it, warmup_iter=warmup)
        model.feed_data(batch_data)
        model.optimize_parameters(it)
        losses.append(float(model.log_dict.get('l_restore', model.log_dict.get('l_pix', float('nan')))))
        if it % 50 == 0 or it == iters:
            log(f'  [{variant} s{seed}] iter {it}/{iters}  l_restore(avg last 50) {np.mean(losses[-50:]):.4f}  '
                f'lr {model.get_current_learning_rate()[0]:.2e}  {time.time() - t0:.0f} s')
    train_s = time.time() - t0

    t1 = time.time()
    results = {}
    for name, items in sets.items():
        vals = []
        for _, lq, gt in items:
            lq_t, gt_t = img2tensor([lq, gt], bgr2rgb=True, float32=True)
            model.feed_data({'lq': lq_t[None], 'gt': gt_t[None]})
            model.test()
            restored = tensor2img([model.output.detach().cpu()])
            vals.append(metrics(restored, _to_u8(gt)))
        results[name] = tuple(float(np.mean(v)) for v in zip(*vals))
    eval_s = time.time() - t1
    return {'variant': variant, 'seed': seed, 'params_g': n_g, 'params_degrad': n_d, 'train_s': train_s,
            'eval_s': eval_s, 'metrics': results, 'final_loss': float(np.mean(losses[-50:])) if losses else None,
            'key': config_key(opt)}


# ----------------------------------------------------------------------------- report
def fmt_row(r: dict, set_names: list) -> list:
    cells = [f"{r['metrics'][s][0]:.2f} / {r['metrics'][s][1]:.3f}" for s in set_names]
    avg_p = np.mean([r['metrics'][s][0] for s in set_names])
    avg_s = np.mean([r['metrics'][s][1] for s in set_names])
    return cells + [f'{avg_p:.2f} / {avg_s:.3f}']


def render_table(rows: list, inputs: dict, set_names: list, note: str) -> str:
    head = ['variant', 'seed', 'params (restore / degrad)'] + set_names + ['average', 'train s']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    inp = {'metrics': inputs}
    lines.append('| degraded input | - | - | ' + ' | '.join(fmt_row(inp, set_names)) + ' | - |')
    for r in rows:
        train = f"{r['train_s']:.0f}" if not r.get('reused_from') else f"(= {r['reused_from']})"
        lines.append(f"| {r['variant']} | {r['seed']} | {r['params_g']:,} / {r['params_degrad']:,} | "
                     + ' | '.join(fmt_row(r, set_names)) + f' | {train} |')
    out = '\n'.join(lines)
    # seed spread
    by_var = {}
    for r in rows:
        by_var.setdefault(r['variant'], []).append(r)
    multi = {v: rs for v, rs in by_var.items() if len(rs) > 1}
    if multi:
        head = ['variant', 'seeds'] + [f'{s} PSNR' for s in set_names] + ['average PSNR']
        lines = ['', 'Seed spread (PSNR mean, [min, max] over seeds):', '',
                 '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        for v, rs in multi.items():
            cells = []
            for s in set_names + ['__avg']:
                vals = [np.mean([r['metrics'][t][0] for t in set_names]) if s == '__avg' else r['metrics'][s][0]
                        for r in rs]
                cells.append(f'{np.mean(vals):.2f} [{min(vals):.2f}, {max(vals):.2f}]')
            lines.append(f"| {v} | {','.join(str(r['seed']) for r in rs)} | " + ' | '.join(cells) + ' |')
        out += '\n' + '\n'.join(lines)
    return out + ('\n\n' + note if note else '')


def write_csv(path: str, rows: list, inputs: dict, set_names: list) -> None:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['variant', 'seed', 'params_restore', 'params_degrad']
                   + [f'{s}_{m}' for s in set_names for m in ('psnr', 'ssim')]
                   + ['avg_psnr', 'avg_ssim', 'train_s', 'eval_s', 'final_l_restore', 'reused_from'])
        w.writerow(['degraded_input', '', '', ''] + [f'{inputs[s][i]:.4f}' for s in set_names for i in (0, 1)]
                   + [f'{np.mean([inputs[s][0] for s in set_names]):.4f}',
                      f'{np.mean([inputs[s][1] for s in set_names]):.4f}', '', '', '', ''])
        for r in rows:
            m = r['metrics']
            w.writerow([r['variant'], r['seed'], r['params_g'], r['params_degrad']]
                       + [f'{m[s][i]:.4f}' for s in set_names for i in (0, 1)]
                       + [f'{np.mean([m[s][0] for s in set_names]):.4f}',
                          f'{np.mean([m[s][1] for s in set_names]):.4f}', f"{r['train_s']:.1f}",
                          f"{r['eval_s']:.1f}", f"{r['final_loss']:.5f}" if r['final_loss'] is not None else '',
                          r.get('reused_from', '')])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--iters', type=int, default=60, help='training iterations per run (default 60)')
    p.add_argument('--seeds', default='0,1', help='seeds; the first is used by every variant (default 0,1)')
    p.add_argument('--seed-variants', default='full,no_ndr',
                   help='variants trained with every seed of --seeds (default full,no_ndr)')
    p.add_argument('--variants', default=','.join(VARIANTS), help='comma-separated subset of ' + ','.join(VARIANTS))
    p.add_argument('--out', default=osp.join(ROOT, 'bench', 'results'), help='folder for ablation_<date>.md/.csv')
    p.add_argument('--tag', default='', help='suffix of the result file names')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--eval-crop', type=int, default=128, help='centre crop of the evaluation images')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads (default 1: on 2 cores shared with other jobs, 2 OpenMP threads made '
                        'steps 5-40x slower and erratic)')
    p.add_argument('--jobs', type=int, default=2,
                   help='runs trained in parallel, one process each (default 2: one per core with --threads 1)')
    p.add_argument('--workers', type=int, default=0, help='DataLoader workers per run (default 0)')
    p.add_argument('--no-shared', action='store_true', help='ignore /work/shared/data (as when it is absent)')
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    logging.getLogger('basicsr').setLevel(logging.WARNING)
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f'unknown variants {bad}; choose from {list(VARIANTS)}')
    seeds = [int(s) for s in args.seeds.split(',')]
    multi = {v.strip() for v in args.seed_variants.split(',') if v.strip()}
    # the multi-seed variants first (the seed spread is needed to read the rest), then the other rows
    runs = [(v, s) for v in variants if v in multi for s in seeds]
    runs += [(v, seeds[0]) for v in variants if v not in multi]

    shared = None if args.no_shared or not osp.isdir(osp.join(SHARED, 'kodak24', 'gt')) else SHARED
    notes = []
    if shared is None:
        notes.append(f'NOTE: {SHARED} is absent (or --no-shared): trained on the scikit-image photos only and '
                     'evaluated on the two scikit-image validation photos (synthetic noise/rain/haze); no real '
                     'rain/haze pairs.')

    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.date.today().isoformat() + (f'_{args.tag}' if args.tag else '')
    md_path, csv_path = (osp.join(args.out, f'ablation_{stamp}.{ext}') for ext in ('md', 'csv'))

    def log(msg):
        print(msg, flush=True)

    work = tempfile.mkdtemp(prefix='ndr_ablation_')
    t_all = time.time()
    try:
        train_opt = prepare_training_data(work, shared)
        sets = prepare_eval_sets(work, shared, args.eval_crop)
        set_names = list(sets)
        inputs = input_metrics(sets)
        log(f'runs: {len(runs)} ({", ".join(f"{v}/s{s}" for v, s in runs)}); iters {args.iters}, batch '
            f'{args.batch}x64x64, {args.jobs} parallel runs x {args.threads} torch thread(s), '
            f'data workers {args.workers}')
        log('training sources: ' + ', '.join(f"{s['name']}({s['ratio']})" for s in train_opt['sources']))
        log('evaluation sets: ' + ', '.join(f'{k}: {len(v)} x {v[0][2].shape[0]}x{v[0][2].shape[1]}'
                                            for k, v in sets.items()))
        for n in notes:
            log(n)
        # identical configurations (ndr_m128_n32 is full) are trained once
        keys = [config_key(variant_options(v, s, args.iters, work)) + f'|{s}' for v, s in runs]
        unique = {}
        for (v, s), k in zip(runs, keys):
            unique.setdefault(k, (v, s))
        done = {}

        def finish(k, r):
            done[k] = r
            log(f'done {r["variant"]} seed {r["seed"]}: train {r["train_s"]:.0f} s, eval {r["eval_s"]:.0f} s; '
                + ', '.join(f'{n} {m[0]:.2f}/{m[1]:.3f}' for n, m in r['metrics'].items()))
            rows = [dict(done[k2], variant=v2, **({'reused_from': done[k2]['variant']} if v2 != done[k2]['variant']
                                                  else {}))
                    for (v2, _), k2 in zip(runs, keys) if k2 in done]
            write_csv(csv_path, rows, inputs, set_names)  # partial results survive an interruption
            return rows

        jobs = [(k, v, s) for k, (v, s) in unique.items()]
        for v, s in runs:
            if unique[keys[runs.index((v, s))]] != (v, s):
                log(f'{v} seed {s}: same configuration as {unique[keys[runs.index((v, s))]][0]}; result reused')
        if args.jobs <= 1:
            for i, (k, v, s) in enumerate(jobs, 1):
                log(f'[{i}/{len(jobs)}] {v} seed {s}: {VARIANTS[v][0]}')
                rows = finish(k, train_and_evaluate(v, s, args.iters, train_opt, sets, work, args.batch,
                                                    args.workers, log))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            import signal
            pool = ProcessPoolExecutor(args.jobs, mp_context=mp.get_context('spawn'), initializer=_init_process,
                                       initargs=(args.threads,))

            def stop(signum, frame):  # SIGTERM/SIGINT: end the training processes too (they are not daemons)
                for proc in list(getattr(pool, '_processes', {}).values()):
                    proc.terminate()
                raise SystemExit(128 + signum)

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            with pool:
                futures = {pool.submit(train_and_evaluate, v, s, args.iters, train_opt, sets, work, args.batch,
                                       args.workers, _log): k for k, v, s in jobs}
                log(f'{len(jobs)} trainings on {args.jobs} processes')
                from concurrent.futures import as_completed
                for fut in as_completed(futures):
                    rows = finish(futures[fut], fut.result())
        total = time.time() - t_all
        note = '\n'.join(notes + [
            f'Command: python bench/ablation_study.py {" ".join(argv if argv is not None else sys.argv[1:])}'.strip(),
            f'{args.iters} iterations x batch {args.batch} of 64x64 per run; {args.jobs} runs in parallel, '
            f'{args.threads} torch thread(s) each; '
            f'total wall time {total / 60:.1f} min (load from other jobs on the machine included).',
            'Cells: PSNR (dB) / SSIM, RGB, mean over the images of each set. '
            'params: NDR-Restore / NDR-Degrad (0 = not built, restore_only).'])
        table = render_table(rows, inputs, set_names, note)
        print('\n' + table, flush=True)
        with open(md_path, 'w') as f:
            f.write(f'# Ablation study, {datetime.date.today().isoformat()}\n\n' + table + '\n')
        log(f'wrote {md_path} and {csv_path}')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
