"""The embedded demo: restore degraded photos with the model that ships with ndrsr, then
fine-tune it for a few minutes through the real training pipeline and show both.

    python -m ndrsr.cli.demo [-opt options/train_demo.yml] [--skip-train]     (what scripts/demo.sh runs)

1. exports scikit-image's bundled natural colour photos to ``datasets/demo/{train,val}``
   (no download: they are files inside the scikit-image wheel);
2. degrades the validation photos (noise sigma 25, rain, haze; seeded per image) and
   restores them with the shipped model (``ndrsr.lib.model_zoo``, model ``small_v3``, which it fine-tunes);
3. fine-tunes that model on the training photos with the real training pipeline,
   ``python ndrsr/train.py -opt options/train_demo.yml`` (NDR-Restore + NDR-Degrad,
   bidirectional, a few hundred iterations on the CPU);
4. writes, in ``results/<name>/``: ``comparison.png`` (a row per task: degraded /
   shipped model / fine-tuned / clean, PSNR printed on each), ``metrics.md`` and
   ``metrics.csv`` (PSNR/SSIM of the degraded input, the shipped model and the
   fine-tuned model, per task and on average).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from os import path as osp
from typing import Dict, List, Optional

import cv2
import numpy as np

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir, osp.pardir))  # the repository
# scikit-image's bundled natural colour photos (files inside the wheel, not fetched).
TRAIN_PHOTOS = ('astronaut.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png')
VAL_PHOTOS = ('chelsea.png', 'motorcycle_right.png')


VAL_MAX_SIDE = 256  # validation photos are down-scaled (area) so CPU validation takes seconds
DEMO_MODEL = 'small_v3'  # the shipped model the demo restores with and options/train_demo.yml fine-tunes


def export_photos(dest: str) -> Dict[str, List[str]]:
    """Copy the bundled photos into ``dest/train`` and ``dest/val`` (PNG). Idempotent.

    Validation photos are down-scaled to at most ``VAL_MAX_SIDE`` pixels. Files of
    an older demo that are no longer in the lists are removed from ``dest``.
    """
    import skimage
    src_dir = osp.join(osp.dirname(skimage.__file__), 'data')
    written = {}
    for split, names in (('train', TRAIN_PHOTOS), ('val', VAL_PHOTOS)):
        os.makedirs(osp.join(dest, split), exist_ok=True)
        wanted = {osp.splitext(n)[0] + '.png' for n in names}
        for stale in set(os.listdir(osp.join(dest, split))) - wanted:
            os.remove(osp.join(dest, split, stale))
        written[split] = []
        for name in names:
            out = osp.join(dest, split, osp.splitext(name)[0] + '.png')
            if not osp.exists(out):
                img = cv2.imread(osp.join(src_dir, name), cv2.IMREAD_COLOR)
                if img is None:
                    raise FileNotFoundError(f'scikit-image photo {name} not found in {src_dir}; '
                                            f'reinstall scikit-image (pip install --force-reinstall scikit-image)')
                if split == 'val' and max(img.shape[:2]) > VAL_MAX_SIDE:
                    f = VAL_MAX_SIDE / max(img.shape[:2])
                    img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)),
                                     interpolation=cv2.INTER_AREA)
                cv2.imwrite(out, img)
            written[split].append(out)
    return written


def run_training(opt_path: str) -> float:
    """Run the BasicSR training pipeline in a subprocess; returns the wall time in seconds."""
    start = time.time()
    cmd = [sys.executable, osp.join(ROOT, 'ndrsr', 'train.py'), '-opt', opt_path, '--auto_resume']
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.time() - start


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


COLUMNS = ('degraded', 'shipped', 'fine-tuned')


def _psnr_ssim(img: np.ndarray, gt: np.ndarray):
    from basicsr.metrics import calculate_psnr, calculate_ssim
    return calculate_psnr(img, gt, 0), calculate_ssim(img, gt, 0)


def evaluate_and_show(opt_path: str, out_dir: str, finetuned: Optional[str]) -> List[dict]:
    """Restore every validation set of the options with the shipped model and the fine-tuned one
    (when ``finetuned`` is a checkpoint); write the picture and the tables."""
    import ndrsr  # noqa: F401  (import aliases and registries before basicsr.data)
    import torch
    from basicsr.data import build_dataset
    from basicsr.utils import tensor2img

    from ndrsr.lib.model_zoo import resolve_model
    from ndrsr.glue.options_io import load_options_file
    from ndrsr.lib.tiling import tile_forward
    from ndrsr.lib.weights import load_restore_network

    opt = load_options_file(opt_path)
    shipped = resolve_model(DEMO_MODEL)
    nets = {'shipped': load_restore_network(shipped.restore)}
    if finetuned:
        nets['fine-tuned'] = load_restore_network(finetuned, opt_path)
    scale = opt.get('scale', 1)
    rows, tiles = [], []
    for key, dopt in opt['datasets'].items():
        if not key.startswith('val'):
            continue
        dopt = dict(dopt, phase='val', scale=scale)
        dataset = build_dataset(dopt)
        sums: Dict[str, float] = {}
        for i in range(len(dataset)):
            item = dataset[i]
            lq = item['lq'][None]
            imgs = {'degraded': tensor2img([lq]), 'clean': tensor2img([item['gt'][None]])}
            with torch.no_grad():
                for name, net in nets.items():
                    imgs[name] = tensor2img([tile_forward(net, lq)])
            scores = {}
            for name in COLUMNS:
                if name in imgs:
                    scores[name] = _psnr_ssim(imgs[name], imgs['clean'])
                    sums[f'psnr_{name}'] = sums.get(f'psnr_{name}', 0.0) + scores[name][0]
                    sums[f'ssim_{name}'] = sums.get(f'ssim_{name}', 0.0) + scores[name][1]
            if i == 0:
                task = item.get('task', dopt['name'])
                row = [_label(imgs['degraded'], f"{task}: degraded {scores['degraded'][0]:.2f} dB")]
                row += [_label(imgs[n], f'{n} {scores[n][0]:.2f} dB') for n in COLUMNS[1:] if n in imgs]
                row.append(_label(imgs['clean'], 'clean'))
                tiles.append(np.concatenate(row, axis=1))
        n = max(len(dataset), 1)
        rows.append(dict(task=dopt['name'], images=len(dataset), **{k: v / n for k, v in sums.items()}))
    keys = [k for k in rows[0] if k not in ('task', 'images')] if rows else []
    if rows:
        rows.append(dict(task='average', images=sum(r['images'] for r in rows),
                         **{k: float(np.mean([r[k] for r in rows])) for k in keys}))
    os.makedirs(out_dir, exist_ok=True)
    width = max(t.shape[1] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, 4, 0, width - t.shape[1], cv2.BORDER_CONSTANT, value=0) for t in tiles]
    cv2.imwrite(osp.join(out_dir, 'comparison.png'), np.concatenate(tiles, axis=0))
    with open(osp.join(out_dir, 'metrics.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    present = [c for c in COLUMNS if f'psnr_{c}' in keys]
    with open(osp.join(out_dir, 'metrics.md'), 'w') as f:
        f.write(f'Shipped model: {osp.relpath(shipped.restore, ROOT)}'
                + (f'; fine-tuned: {osp.relpath(finetuned, ROOT)} (params_ema)' if finetuned else '') + '\n\n')
        f.write('| task | images | ' + ' | '.join(f'PSNR {c}' for c in present) + ' | '
                + ' | '.join(f'SSIM {c}' for c in present) + ' |\n')
        f.write('|---|---:|' + '---:|' * (2 * len(present)) + '\n')
        for r in rows:
            f.write(f"| {r['task']} | {r['images']} | " + ' | '.join(f"{r[f'psnr_{c}']:.2f}" for c in present) + ' | '
                    + ' | '.join(f"{r[f'ssim_{c}']:.4f}" for c in present) + ' |\n')
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ndrsr.cli.demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', default=osp.join(ROOT, 'options', 'train_demo.yml'))
    parser.add_argument('--skip-train', action='store_true',
                        help='no fine-tuning: show the shipped model (and an earlier fine-tuning, if any)')
    args = parser.parse_args(argv)
    from ndrsr.glue.allocator import retain_freed_memory
    retain_freed_memory()  # see ndrsr/glue/allocator.py
    from ndrsr.glue.options_io import load_options_file
    name = load_options_file(args.opt)['name']
    export_photos(osp.join(ROOT, 'datasets', 'demo'))
    seconds = None if args.skip_train else run_training(args.opt)
    finetuned = osp.join(ROOT, 'experiments', name, 'models', 'net_g_latest.pth')
    out_dir = osp.join(ROOT, 'results', name)
    rows = evaluate_and_show(args.opt, out_dir, finetuned if osp.isfile(finetuned) else None)
    with open(osp.join(out_dir, 'metrics.md')) as f:
        print(f.read())
    if seconds is not None:
        print(f'fine-tuning wall time: {seconds / 60:.1f} min')
    print(f'wrote {osp.join(out_dir, "comparison.png")}, metrics.md, metrics.csv')
    return 0 if rows else 1


if __name__ == '__main__':
    sys.exit(main())
