"""Degradation transfer (``ndrsr-degrade``) with a named model: a table and a picture.

    .venv/bin/python bench/degrade_transfer.py [--model small] [--clean CLEAN.png] [--size 384x256]
        [--picture OUT.jpg] [--data ../shared/data] [--threads 2]

Each ``--like`` image is built reproducibly (seeded) from ``--data``:

* ``noise25``: a held-out BSDS photo with Gaussian noise sigma 25;
* ``light rain``: a Rain100L sample (``samples_rain/lq/rain-1.png``);
* ``heavy rain``: the held-out heavy-rain pair ``train/rain/lq/009.png``;
* ``haze (synthetic)``: a held-out BSDS photo hazed by the training synthesis
  (scattering model on the depth proxy, beta 1.6, grey airlight 0.85);
* ``haze (ITS, held out)``: the held-out RESIDE ITS hazy image ``train/haze/lq/2_2_0.76381.png``
  (real indoor haze, its scene kept out of training);
* ``haze (SOTS k)``: SOTS outdoor hazy samples (``samples_haze/lq``), real haze
  the model was not trained on.

Every like image is rendered onto the clean image (Kodak ``kodim23``, area-resized
to ``--size``) with the ``difference`` fit (the default of ``ndrsr-degrade``:
the like image's U's minus its restoration's, added to the clean image's own)
with the ``difference-mean`` fit (that difference averaged over the like image,
added evenly) and with the ``mean`` fit, exactly as ``ndrsr-degrade`` does.
Reported per row:

* ``removed``: how much the restoration removes from the like image,
  ``|U(like) - U(restored like)| / |U(like)|`` averaged over the three levels
  (``ndrsr.lib.transfer.removed_share``); the difference fits can only transfer what
  the restoration removes;
* for each fit: mean absolute change of the clean image (0..1), high-frequency
  energy ``mean |x - box5(x)|`` (grain and streaks raise it), contrast
  ``std(out) / std(clean)`` (haze lowers it) and the mean brightness change;
* for the synthetic haze, a reference: the same haze (same beta, airlight and
  depth-proxy seed) applied to the clean image by the synthesis, and the PSNR
  of the clean image and of each output against it.

The picture has a row per like image: like / clean / difference / difference-mean / mean.
"""
from __future__ import annotations

import argparse
import os
import sys
from os import path as osp
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench._common import header, set_up  # noqa: E402
from ndrsr.lib.image_files import read_image_file  # noqa: E402
from ndrsr.data.degradations import add_gaussian_noise, add_haze, depth_proxy  # noqa: E402

HAZE = dict(beta=1.6, airlight=0.85, seed=1)
SOTS = ('0001_0.8_0.2.jpg', '0002_0.8_0.08.jpg', '0004_0.9_0.12.jpg')


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], read as ``ndrsr-degrade`` reads it."""
    return read_image_file(path).rgb


def synthetic_haze(img: np.ndarray) -> np.ndarray:
    """The training synthesis's haze with the fixed HAZE parameters."""
    depth = depth_proxy(img, np.random.default_rng(HAZE['seed']))
    return add_haze(img, HAZE['beta'], HAZE['airlight'], depth)


def like_images(data: str) -> List[Tuple[str, np.ndarray]]:
    """(name, like image) for every row of the table."""
    bsds = osp.join(data, 'train', 'noise', 'gt')
    likes = [('noise25', add_gaussian_noise(read_rgb(osp.join(bsds, '109034.jpg')), 25, np.random.default_rng(0))),
             ('light rain', read_rgb(osp.join(data, 'samples_rain', 'lq', 'rain-1.png'))),
             ('heavy rain', read_rgb(osp.join(data, 'train', 'rain', 'lq', '009.png'))),
             ('haze (synthetic)', synthetic_haze(read_rgb(osp.join(bsds, '122048.jpg')))),
             ('haze (ITS, held out)', read_rgb(osp.join(data, 'train', 'haze', 'lq', '2_2_0.76381.png')))]
    likes += [(f'haze (SOTS {name[:4]})', read_rgb(osp.join(data, 'samples_haze', 'lq', name))) for name in SOTS]
    return likes


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def to_image(t: torch.Tensor) -> np.ndarray:
    return t[0].clamp(0, 1).permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def high_frequency(img: np.ndarray) -> float:
    return float(np.abs(img - cv2.blur(img, (5, 5))).mean())


def measure(out: np.ndarray, clean: np.ndarray) -> Dict[str, float]:
    return dict(change=float(np.abs(out - clean).mean()), hf=high_frequency(out),
                contrast=float(out.std() / clean.std()), brightness=float(out.mean() - clean.mean()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='small')
    parser.add_argument('--data', default=osp.join(ROOT, '..', 'shared', 'data'))
    parser.add_argument('--clean', default=None, help='clean image (default: Kodak kodim23 of --data)')
    parser.add_argument('--size', default='384x256', help='WxH the clean image is area-resized to')
    parser.add_argument('--picture', help='write the picture here (JPEG or PNG)')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)

    from ndrsr.cli.demo import _label
    from ndrsr.lib.model_zoo import resolve_model
    from ndrsr.lib.tiling import tile_degrade, tile_recognise
    from ndrsr.lib.transfer import degradation_difference, fit_degradations, removed_share, transfer_degradations
    from ndrsr.lib.weights import load_degrad_network, load_restore_network

    device, _ = set_up('cpu', 'fp32', args.threads)
    files = resolve_model(args.model)
    restore = load_restore_network(files.restore, files.options, device)
    degrad = load_degrad_network(files.degrad, files.options, device)
    w, h = (int(v) for v in args.size.split('x'))
    clean_path = args.clean or osp.join(args.data, 'kodak24', 'gt', 'kodim23.png')
    clean = cv2.resize(read_rgb(clean_path), (w, h), interpolation=cv2.INTER_AREA)
    clean_t = to_tensor(clean)
    reference = synthetic_haze(clean)
    print(header(device, 'fp32', model=args.model, clean=f'{osp.basename(clean_path)} {w}x{h}'))
    print(f'clean image: high-frequency energy {high_frequency(clean):.4f}; the synthetic haze on it: '
          f'PSNR {psnr(clean, reference):.2f} dB against the clean image, contrast {reference.std() / clean.std():.2f}')
    print('| like image | removed | fit | change | high-freq. | contrast | brightness | PSNR vs the same haze |')
    print('|---|---:|---|---:|---:|---:|---:|---:|')
    rows = []
    with torch.inference_mode():
        for name, like in like_images(args.data):
            like_t = to_tensor(like)
            us, _ = tile_recognise(restore, like_t)
            difference = degradation_difference(restore, like_t, us=us)
            removed = removed_share(us, difference)
            fitted = {fit: transfer_degradations(restore, difference, clean_t, spread=spread)
                      for fit, spread in (('difference', 'mirror'), ('difference-mean', 'mean'))}
            fitted['mean'] = fit_degradations(us, h, w, 'mean')
            outs = {fit: to_image(tile_degrade(degrad, clean_t, u)) for fit, u in fitted.items()}
            for fit, img in outs.items():
                m = measure(img, clean)
                against = f'{psnr(img, reference):.2f} (clean {psnr(clean, reference):.2f})' \
                    if name == 'haze (synthetic)' else ''
                print(f"| {name} | {removed:.3f} | {fit} | {m['change']:.3f} | {m['hf']:.4f} | {m['contrast']:.2f} "
                      f"| {m['brightness']:+.3f} | {against} |")
            rows.append((name, like, outs))
    if args.picture:
        def tile(img: np.ndarray, text: str) -> np.ndarray:
            bgr = (np.clip(img[:, :, ::-1], 0, 1) * 255).round().astype(np.uint8)
            k = min(w / bgr.shape[1], h / bgr.shape[0])  # fit inside w x h, aspect kept
            small = cv2.resize(bgr, (max(1, round(bgr.shape[1] * k)), max(1, round(bgr.shape[0] * k))),
                               interpolation=cv2.INTER_AREA)
            canvas = np.zeros((h, w, 3), np.uint8)
            y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
            canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
            return _label(canvas, text)
        picture = np.concatenate([np.concatenate([tile(like, f'like: {name}'), tile(clean, 'clean'),
                                                  tile(outs['difference'], 'difference (default)'),
                                                  tile(outs['difference-mean'], '--fit difference-mean'),
                                                  tile(outs['mean'], '--fit mean')], axis=1)
                                  for name, like, outs in rows], axis=0)
        tmp = args.picture + '.tmp' + osp.splitext(args.picture)[1]
        params = [cv2.IMWRITE_JPEG_QUALITY, 88] if tmp.lower().endswith(('.jpg', '.jpeg')) else []
        if not cv2.imwrite(tmp, picture, params):
            raise SystemExit(f'degrade_transfer: cannot write {args.picture}')
        os.replace(tmp, args.picture)
        print(f'picture: {args.picture}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
