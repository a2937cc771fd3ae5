"""ndrsr-eval: score a folder of restored images.

    ndrsr-eval RESTORED_DIR --gt GT_DIR [--pairing same|rain|reside] [--crop-border 0]
    ndrsr-eval RESTORED_DIR                      (no ground truth: NIQE)

With ground truth: PSNR and SSIM on RGB and on the Y channel (BT.601, as
BasicSR's ``test_y_channel``), per image and their mean, using BasicSR's
``calculate_psnr`` / ``calculate_ssim`` on [0, 255] values (16-bit images
are scaled to [0, 255] as floats, not truncated). Restored images are
matched to ground truth by name with the data layer's pairing rules
(``--pairing rain`` pairs ``rain-1`` with ``norain-1``; restored files keep
the degraded image's name). Without ground truth: BasicSR's NIQE (lower is
better) on the Y channel.

Writes ``--csv`` (default RESTORED_DIR/metrics.csv) and ``--md`` (default
RESTORED_DIR/metrics.md) and prints the markdown table. Exit status 1 when an
image could not be scored (unreadable, no ground truth, size mismatch).
"""
from __future__ import annotations

import argparse
import csv
import sys
from os import path as osp
from typing import Dict, Optional, Sequence

import numpy as np

GT_COLUMNS = ('psnr_rgb', 'ssim_rgb', 'psnr_y', 'ssim_y')
NIQE_COLUMNS = ('niqe',)
NIQE_BLOCK = 96  # BasicSR's NIQE fits a Gaussian to the features of 96x96 blocks: needs two or more


def _bgr255(path: str) -> np.ndarray:
    """An image file as float64 BGR (H, W, 3) in [0, 255] (gray repeated, alpha dropped)."""
    from ndrsr.cli.image_files import read_image_file
    return read_image_file(path).rgb[:, :, ::-1].astype(np.float64) * 255.


def score_pair(restored: np.ndarray, gt: np.ndarray, crop_border: int = 0) -> Dict[str, float]:
    """PSNR/SSIM of two BGR [0, 255] arrays (H, W, 3), on RGB and on Y."""
    from basicsr.metrics import calculate_psnr, calculate_ssim
    return dict(psnr_rgb=float(calculate_psnr(restored, gt, crop_border, test_y_channel=False)),
                ssim_rgb=float(calculate_ssim(restored, gt, crop_border, test_y_channel=False)),
                psnr_y=float(calculate_psnr(restored, gt, crop_border, test_y_channel=True)),
                ssim_y=float(calculate_ssim(restored, gt, crop_border, test_y_channel=True)))


def score_niqe(restored: np.ndarray, crop_border: int = 0) -> Dict[str, float]:
    """BasicSR's NIQE of a BGR [0, 255] array (lower is better)."""
    from basicsr.metrics import calculate_niqe
    h, w = restored.shape[0] - 2 * crop_border, restored.shape[1] - 2 * crop_border
    if (h // NIQE_BLOCK) * (w // NIQE_BLOCK) < 2:
        raise ValueError(f'NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks (e.g. {NIQE_BLOCK}x'
                         f'{2 * NIQE_BLOCK} pixels, after --crop-border); this image is {w}x{h}')
    return dict(niqe=float(calculate_niqe(restored, crop_border, input_order='HWC', convert_to='y')))


def evaluate_folder(restored_dir: str, gt_dir: Optional[str] = None, pairing: str = 'same',
                    crop_border: int = 0) -> Dict:
    """Score every image of ``restored_dir``.

    Returns {'columns': [...], 'rows': [{'name', metrics...}], 'mean': {metric: value}, 'failures': [(name, why)]}.
    """
    from ndrsr.data.pairing import list_disk, make_rule

    restored = list_disk(restored_dir, option='RESTORED_DIR', where='ndrsr-eval')
    columns = GT_COLUMNS if gt_dir else NIQE_COLUMNS
    gt = list_disk(gt_dir, option='--gt', where='ndrsr-eval') if gt_dir else None
    rule = make_rule(pairing)
    rows, failures = [], []
    for stem in restored.names:
        path = restored.path(stem)
        try:
            img = _bgr255(path)
            if gt is None:
                metrics = score_niqe(img, crop_border)
            else:
                gt_stem = rule.gt_stem(stem)
                if gt_stem is None or gt_stem not in gt.names:
                    raise ValueError(f'no ground truth for {path} in {gt_dir} (pairing {rule.describe()}); '
                                     f'use --pairing or check the names')
                ref = _bgr255(gt.path(gt_stem))
                if ref.shape != img.shape:
                    raise ValueError(f'{path} is {img.shape[1]}x{img.shape[0]} but its ground truth '
                                     f'{gt.path(gt_stem)} is {ref.shape[1]}x{ref.shape[0]}')
                metrics = score_pair(img, ref, crop_border)
            rows.append(dict(name=restored.names[stem], **metrics))
        except Exception as err:  # noqa: BLE001 - reported, the rest is scored
            failures.append((path, str(err)))
    mean = {c: float(np.mean([r[c] for r in rows])) for c in columns} if rows else {}
    return dict(columns=list(columns), rows=rows, mean=mean, failures=failures)


def to_markdown(result: Dict, title: str = '') -> str:
    cols = result['columns']
    digits = {'psnr_rgb': 2, 'psnr_y': 2, 'ssim_rgb': 4, 'ssim_y': 4, 'niqe': 3}
    head = {'psnr_rgb': 'PSNR RGB', 'ssim_rgb': 'SSIM RGB', 'psnr_y': 'PSNR Y', 'ssim_y': 'SSIM Y', 'niqe': 'NIQE'}
    lines = [f'{title}\n' if title else '']
    lines.append('| image | ' + ' | '.join(head[c] for c in cols) + ' |')
    lines.append('|---|' + '---:|' * len(cols))
    for r in result['rows']:
        lines.append(f"| {r['name']} | " + ' | '.join(f'{r[c]:.{digits[c]}f}' for c in cols) + ' |')
    if result['mean']:
        lines.append(f"| **mean ({len(result['rows'])})** | " +
                     ' | '.join(f"**{result['mean'][c]:.{digits[c]}f}**" for c in cols) + ' |')
    return '\n'.join(lines).lstrip('\n') + '\n'


def write_csv(result: Dict, path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['name'] + result['columns'])
        writer.writeheader()
        writer.writerows(result['rows'])
        if result['mean']:
            writer.writerow(dict(name='mean', **result['mean']))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-eval', description=__doc__.split('\n\n')[0])
    parser.add_argument('restored', metavar='RESTORED_DIR', help='folder of restored images')
    parser.add_argument('--gt', help='folder of ground-truth images (without it: NIQE)')
    parser.add_argument('--pairing', default='same',
                        help="how restored names map to ground truth names: same (default), rain "
                             "(rain-N -> norain-N), reside/haze (NNNN_A_B -> NNNN)")
    parser.add_argument('--crop-border', type=int, default=0, help='pixels cropped from each border before scoring')
    parser.add_argument('--csv', help='CSV output (default RESTORED_DIR/metrics.csv)')
    parser.add_argument('--md', help='markdown table output (default RESTORED_DIR/metrics.md)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-eval``."""
    import ndrsr  # noqa: F401
    from ndrsr.data.pairing import DataLayoutError

    args = build_parser().parse_args(argv)
    try:
        result = evaluate_folder(args.restored, args.gt, args.pairing, args.crop_border)
    except DataLayoutError as err:
        print(f'ndrsr-eval: error: {err}', file=sys.stderr)
        return 2
    csv_path = args.csv or osp.join(args.restored, 'metrics.csv')
    md_path = args.md or osp.join(args.restored, 'metrics.md')
    write_csv(result, csv_path)
    what = f'{args.restored} vs {args.gt}' if args.gt else f'{args.restored} (no ground truth: NIQE, lower is better)'
    table = to_markdown(result, f'Scores of {what}')
    with open(md_path, 'w') as f:
        f.write(table)
    print(table)
    print(f'wrote {csv_path} and {md_path}')
    if result['failures']:
        print(f'{len(result["failures"])} image(s) could not be scored:', file=sys.stderr)
        for path, why in result['failures']:
            print(f'  {path}: {why}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
