"""The embedded demo: train a small NDR-Restore on photos that ship with
scikit-image, degraded on the fly (noise, rain, haze), then show what it learnt.

    python -m ndrsr.cli.demo [-opt options/train_demo.yml] [--skip-train]     (what scripts/demo.sh runs)

1. exports scikit-image's bundled colour photos to ``datasets/demo/{train,val}``
   (no download: they are files inside the scikit-image wheel);
2. runs the real training pipeline, ``python ndrsr/train.py -opt options/train_demo.yml``;
3. restores each validation set with the trained network and writes, in
   ``results/<name>/``: ``comparison.png`` (a row per task: degraded / restored /
   clean, PSNR printed on each), ``metrics.md`` and ``metrics.csv`` (PSNR/SSIM of
   the degraded input and of the restored output, per task and on average).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from os import path as osp
from typing import Dict, List

import cv2
import numpy as np

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir, osp.pardir))  # the repository
# scikit-image's bundled colour photos (files inside the wheel, not fetched).
TRAIN_PHOTOS = ('astronaut.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png', 'ihc.png', 'hubble_deep_field.jpg')
VAL_PHOTOS = ('chelsea.png', 'motorcycle_right.png')


VAL_MAX_SIDE = 256  # validation photos are down-scaled (area) so CPU validation takes seconds


def export_photos(dest: str) -> Dict[str, List[str]]:
    """Copy the bundled photos into ``dest/train`` and ``dest/val`` (PNG). Idempotent.

    Validation photos are down-scaled to at most ``VAL_MAX_SIDE`` pixels.
    """
    import skimage
    src_dir = osp.join(osp.dirname(skimage.__file__), 'data')
    written = {}
    for split, names in (('train', TRAIN_PHOTOS), ('val', VAL_PHOTOS)):
        os.makedirs(osp.join(dest, split), exist_ok=True)
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


def evaluate_and_show(opt_path: str, out_dir: str) -> List[dict]:
    """Restore every validation set of the options with the trained network; write the picture and tables."""
    import ndrsr  # noqa: F401  (import aliases and registries before basicsr.data)
    import torch
    import yaml
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    from ndrsr.archs.fast_path import prepare_for_inference
    from ndrsr.checkpoint import load_checkpoint

    with open(opt_path) as f:
        opt = yaml.safe_load(f)
    weights = osp.join(ROOT, 'experiments', opt['name'], 'models', 'net_g_latest.pth')
    ckpt = load_checkpoint(weights)
    net = build_network(dict(opt['network_g']))
    net.load_state_dict(ckpt.get('params_ema', ckpt['params']))
    net = prepare_for_inference(net.eval())
    scale = opt.get('scale', 1)
    rows, tiles = [], []
    for key, dopt in opt['datasets'].items():
        if not key.startswith('val'):
            continue
        dopt = dict(dopt, phase='val', scale=scale)
        dataset = build_dataset(dopt)
        sums = dict(psnr_in=0.0, ssim_in=0.0, psnr_out=0.0, ssim_out=0.0)
        for i in range(len(dataset)):
            item = dataset[i]
            with torch.inference_mode():
                out = net(item['lq'][None])
            lq = item['lq'][None]
            if scale > 1:
                lq = torch.nn.functional.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False)
            imgs = [tensor2img([t.cpu()]) for t in (lq, out, item['gt'][None])]
            p_in, p_out = calculate_psnr(imgs[0], imgs[2], 0), calculate_psnr(imgs[1], imgs[2], 0)
            sums['psnr_in'] += p_in
            sums['psnr_out'] += p_out
            sums['ssim_in'] += calculate_ssim(imgs[0], imgs[2], 0)
            sums['ssim_out'] += calculate_ssim(imgs[1], imgs[2], 0)
            if i == 0:
                task = item.get('task', dopt['name'])
                tiles.append(np.concatenate([_label(imgs[0], f'{task}: degraded {p_in:.2f} dB'),
                                             _label(imgs[1], f'restored {p_out:.2f} dB'),
                                             _label(imgs[2], 'clean')], axis=1))
        n = max(len(dataset), 1)
        rows.append(dict(task=dopt['name'], images=len(dataset), **{k: v / n for k, v in sums.items()}))
    if rows:
        rows.append(dict(task='average', images=sum(r['images'] for r in rows),
                         **{k: float(np.mean([r[k] for r in rows])) for k in ('psnr_in', 'ssim_in', 'psnr_out',
                                                                                 'ssim_out')}))
    os.makedirs(out_dir, exist_ok=True)
    width = max(t.shape[1] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, 4, 0, width - t.shape[1], cv2.BORDER_CONSTANT, value=0) for t in tiles]
    cv2.imwrite(osp.join(out_dir, 'comparison.png'), np.concatenate(tiles, axis=0))
    with open(osp.join(out_dir, 'metrics.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(osp.join(out_dir, 'metrics.md'), 'w') as f:
        f.write(f'Weights: {osp.relpath(weights, ROOT)} (params_ema if present)\n\n')
        f.write('| task | images | PSNR degraded | PSNR restored | gain | SSIM degraded | SSIM restored |\n')
        f.write('|---|---:|---:|---:|---:|---:|---:|\n')
        for r in rows:
            f.write(f"| {r['task']} | {r['images']} | {r['psnr_in']:.2f} | {r['psnr_out']:.2f} | "
                    f"{r['psnr_out'] - r['psnr_in']:+.2f} | {r['ssim_in']:.4f} | {r['ssim_out']:.4f} |\n")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ndrsr.cli.demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', default=osp.join(ROOT, 'options', 'train_demo.yml'))
    parser.add_argument('--skip-train', action='store_true', help='only evaluate the existing demo weights')
    args = parser.parse_args(argv)
    from ndrsr.allocator import retain_freed_memory
    retain_freed_memory()  # see ndrsr/allocator.py
    import yaml
    with open(args.opt) as f:
        name = yaml.safe_load(f)['name']
    export_photos(osp.join(ROOT, 'datasets', 'demo'))
    seconds = None if args.skip_train else run_training(args.opt)
    out_dir = osp.join(ROOT, 'results', name)
    rows = evaluate_and_show(args.opt, out_dir)
    with open(osp.join(out_dir, 'metrics.md')) as f:
        print(f.read())
    if seconds is not None:
        print(f'training wall time: {seconds / 60:.1f} min')
    print(f'wrote {osp.join(out_dir, "comparison.png")}, metrics.md, metrics.csv')
    return 0 if rows else 1


if __name__ == '__main__':
    sys.exit(main())
