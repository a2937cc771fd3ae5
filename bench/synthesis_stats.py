"""Real degraded pairs vs ndrsr's synthesis: statistics side by side, and a picture.

    .venv/bin/python bench/synthesis_stats.py -opt options/train_small_all_in_one.yml \
        [--real-rain DIR_LQ DIR_GT ...] [--real-haze DIR_LQ DIR_GT ...] [--picture OUT.png]

For every synthesising source of the options' training set (and for the real
pairs given on the command line, matched by the pairing rules of
``ndrsr.data.pairing``) it reports, over whole images:

* PSNR of the degraded input against its clean image (RGB and Y): how strong
  the degradation is;
* mean brightness change (lq - gt, 0..255) and contrast ratio
  (std lq / std gt): haze lifts and flattens, rain lifts slightly;
* the share of pixels changed by more than 10/255 (rain: streak coverage);
* the dark-channel mean (He et al.): haze raises it, clean photos keep it low;
* noise statistics of ``lq - gt``: its standard deviation (0..255), the horizontal lag-1
  autocorrelation (0 for white noise; demosaicing and JPEG raise it), the correlation between the
  first and last channel (1 for grey noise), and the ratio of its deviation in the shadows (gt
  luminance < 0.3) to that in the highlights (> 0.6): how camera noise differs from white noise.

``--sources`` keeps only the named synthetic sources; ``--crop`` makes the picture's tiles 1:1
crops (noise and JPEG blocks stay visible) instead of whole images shrunk.

The synthetic rows use the clean photos of the source's own ``dataroot_gt``
(the first ``--images`` of its meta_info list), seeded per image, so the table
is reproducible.
"""
from __future__ import annotations

import argparse
import os
import sys
from os import path as osp
from typing import Dict, List, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import ndrsr  # noqa: E402,F401  (before basicsr: compatibility aliases)
from basicsr.metrics import calculate_psnr  # noqa: E402
from ndrsr.data.synthesis import parse_synthesis, synthesize_pair  # noqa: E402
from ndrsr.data.image_io import IMAGE_EXTENSIONS  # noqa: E402
from ndrsr.data.pairing import read_meta_info  # noqa: E402
from ndrsr.data.task_val_dataset import image_seed  # noqa: E402
from ndrsr.glue.options_io import load_options_file  # noqa: E402

IMG_EXT = IMAGE_EXTENSIONS


def read(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'cannot read {path}')
    return img.astype(np.float32) / 255.


def dark_channel(img: np.ndarray, k: int = 15) -> float:
    return float(cv2.erode(img.min(axis=2), np.ones((k, k), np.uint8)).mean())


def noise_stats(lq: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Standard deviation (0..255), lag-1 autocorrelation, channel correlation and shadow/highlight deviation
    ratio of the difference ``lq - gt``."""
    n = (lq - gt).astype(np.float64)
    lag1 = np.mean([np.corrcoef(n[:, :-1, c].ravel(), n[:, 1:, c].ravel())[0, 1] for c in range(n.shape[2])])
    chan = np.corrcoef(n[..., 0].ravel(), n[..., -1].ravel())[0, 1]
    y = gt.mean(axis=2)
    dark, bright = y < 0.3, y > 0.6
    ratio = float(n[dark].std() / n[bright].std()) if dark.sum() > 100 and bright.sum() > 100 else float('nan')
    return {'n_std': float(n.std() * 255), 'n_lag1': float(lag1), 'n_chan': float(chan), 'n_shadow': ratio}


def stats(lq: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    a, b = lq * 255., gt * 255.
    return {
        **noise_stats(lq, gt),
        'psnr': calculate_psnr(a, b, 0, test_y_channel=False),
        'psnr_y': calculate_psnr(a, b, 0, test_y_channel=True),
        'dmean': float((a - b).mean()),
        'contrast': float(a.std() / max(b.std(), 1e-6)),
        'changed': float((np.abs(a - b).max(axis=2) > 10).mean()),
        'dark_lq': dark_channel(lq),
        'dark_gt': dark_channel(gt),
    }


def pairs_in(lq_dir: str, gt_dir: str) -> List[Tuple[str, str]]:
    """(lq, gt) files: same stem, or the RESIDE rule (``S_K_beta`` <-> ``S``), or ``rain-N`` <-> ``norain-N``."""
    gts = {osp.splitext(f)[0]: osp.join(gt_dir, f) for f in sorted(os.listdir(gt_dir)) if f.lower().endswith(IMG_EXT)}
    out = []
    for f in sorted(os.listdir(lq_dir)):
        if not f.lower().endswith(IMG_EXT):
            continue
        stem = osp.splitext(f)[0]
        for cand in (stem, stem.split('_')[0], 'no' + stem):
            if cand in gts:
                out.append((osp.join(lq_dir, f), gts[cand]))
                break
    return out


def summarise(rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def tile(img: np.ndarray, crop: bool, size: Tuple[int, int] = (240, 160)) -> np.ndarray:
    """A picture tile: the whole image shrunk to ``size`` (w, h), or its centre crop at 1:1 with ``crop``."""
    img8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if not crop:
        return cv2.resize(img8, size, interpolation=cv2.INTER_AREA)
    h, w = img8.shape[:2]
    y, x = max(0, (h - size[1]) // 2), max(0, (w - size[0]) // 2)
    out = np.zeros((size[1], size[0], 3), np.uint8)
    part = img8[y:y + size[1], x:x + size[0]]
    out[:part.shape[0], :part.shape[1]] = part
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('-opt', required=True, help='training options whose synthesising sources are described')
    p.add_argument('--real', nargs=3, action='append', default=[], metavar=('LABEL', 'LQ_DIR', 'GT_DIR'),
                   help='a real paired set to compare with (repeatable)')
    p.add_argument('--images', type=int, default=12, help='clean photos per synthetic source')
    p.add_argument('--picture', default=None, help='write a grid of examples (real and synthetic) here')
    p.add_argument('--sources', nargs='*', default=None, help='only these synthetic sources (by name)')
    p.add_argument('--crop', action='store_true', help='picture tiles are 1:1 centre crops')
    args = p.parse_args(argv)

    opt = load_options_file(args.opt)
    table: List[Tuple[str, int, Dict[str, float]]] = []
    examples: List[Tuple[str, np.ndarray]] = []
    for label, lq_dir, gt_dir in args.real:
        rows = []
        for i, (lq_path, gt_path) in enumerate(pairs_in(lq_dir, gt_dir)):
            lq, gt = read(lq_path), read(gt_path)
            h, w = min(lq.shape[0], gt.shape[0]), min(lq.shape[1], gt.shape[1])
            rows.append(stats(lq[:h, :w], gt[:h, :w]))
            if i < 2:
                examples.append((f'real {label}', lq[:h, :w]))
        table.append((f'real {label}', len(rows), summarise(rows)))
    for src in opt['datasets']['train']['sources']:
        if not src.get('synthesize') or src.get('dataroot_lq'):
            continue
        if args.sources is not None and src.get('name') not in args.sources:
            continue
        steps = parse_synthesis(src['synthesize'])
        names = read_meta_info(src['meta_info_file']) if src.get('meta_info_file') else sorted(
            f for f in os.listdir(src['dataroot_gt']) if f.lower().endswith(IMG_EXT))
        rows = []
        for i, name in enumerate(names[:args.images]):
            gt = read(osp.join(src['dataroot_gt'], name))
            gt, lq = synthesize_pair(gt, None, steps, image_seed(osp.splitext(name)[0]))  # tone: gt too
            rows.append(stats(lq, gt))
            if i < 2:
                examples.append((f"synth {src.get('name')}", lq))
        table.append((f"synthetic {src.get('name')}", len(rows), summarise(rows)))

    print('| set | images | PSNR (RGB) | PSNR (Y) | mean change | contrast ratio | pixels changed > 10 | '
          'dark channel lq / gt | noise std | lag-1 corr | channel corr | shadow / highlight std |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for label, n, s in table:
        print(f"| {label} | {n} | {s['psnr']:.2f} | {s['psnr_y']:.2f} | {s['dmean']:+.1f} | {s['contrast']:.2f} | "
              f"{100 * s['changed']:.0f} % | {s['dark_lq']:.3f} / {s['dark_gt']:.3f} | {s['n_std']:.1f} | "
              f"{s['n_lag1']:.2f} | {s['n_chan']:.2f} | {s['n_shadow']:.2f} |")
    if args.picture and examples:
        tiles = []
        for label, img in examples:
            t = tile(img, args.crop)
            cv2.putText(t, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(t, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(t)
        while len(tiles) % 4:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)])
        os.makedirs(osp.dirname(osp.abspath(args.picture)), exist_ok=True)
        cv2.imwrite(args.picture, grid)
        print(f'picture: {args.picture}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
