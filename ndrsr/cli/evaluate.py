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

Prints the markdown table; writes the scores to ``--csv`` / ``--md`` only when
asked (never into the folder being scored unless named there), after the
table is printed, and only when at least one image was scored. Existing
reports are replaced only with ``--overwrite``; the report paths are checked
before any image is scored. Exit status 1 when an image could not be scored
(unreadable, no ground truth, size mismatch, too small), 2 for a usage error
or a report that could not be written.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from os import path as osp
from typing import Dict, Optional, Sequence

import numpy as np

GT_COLUMNS = ('psnr_rgb', 'ssim_rgb', 'psnr_y', 'ssim_y')
NIQE_COLUMNS = ('niqe',)
NIQE_BLOCK = 96  # BasicSR's NIQE fits a Gaussian to the features of 96x96 blocks: needs two or more
SSIM_WINDOW = 11  # BasicSR's SSIM: an 11x11 Gaussian window, valid positions only


def scored_size(shape, crop_border: int) -> tuple:
    """(width, height) left after ``crop_border`` pixels are cut from each side; ValueError if nothing is left."""
    h, w = shape[0] - 2 * crop_border, shape[1] - 2 * crop_border
    if h < 1 or w < 1:
        raise ValueError(f'--crop-border {crop_border} leaves nothing of a {shape[1]}x{shape[0]} image '
                         f'(it needs more than {2 * crop_border} pixels in each direction)')
    return w, h


def _bgr255(path: str) -> np.ndarray:
    """An image file as float64 BGR (H, W, 3) in [0, 255] (gray repeated, alpha dropped)."""
    from ndrsr.lib.image_files import read_image_file
    return read_image_file(path).rgb[:, :, ::-1].astype(np.float64) * 255.


def score_pair(restored: np.ndarray, gt: np.ndarray, crop_border: int = 0) -> Dict[str, float]:
    """PSNR/SSIM of two BGR [0, 255] arrays (H, W, 3), on RGB and on Y."""
    from basicsr.metrics import calculate_psnr, calculate_ssim
    w, h = scored_size(restored.shape, crop_border)
    if min(w, h) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its window), after '
                         f'--crop-border; this image leaves {w}x{h}')
    scores = dict(psnr_rgb=float(calculate_psnr(restored, gt, crop_border, test_y_channel=False)),
                  ssim_rgb=float(calculate_ssim(restored, gt, crop_border, test_y_channel=False)),
                  psnr_y=float(calculate_psnr(restored, gt, crop_border, test_y_channel=True)),
                  ssim_y=float(calculate_ssim(restored, gt, crop_border, test_y_channel=True)))
    bad = [k for k, v in scores.items() if np.isnan(v)]
    if bad:
        raise ValueError(f'{", ".join(bad)} came out as NaN')
    return scores


def score_niqe(restored: np.ndarray, crop_border: int = 0) -> Dict[str, float]:
    """BasicSR's NIQE of a BGR [0, 255] array (lower is better)."""
    from basicsr.metrics import calculate_niqe
    w, h = scored_size(restored.shape, crop_border)
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


def write_markdown(table: str, path: str) -> None:
    with open(path, 'w') as f:
        f.write(table)


def write_report(path: str, write) -> None:
    """``write(tmp)`` then rename to ``path`` (all or nothing), creating the folder."""
    from ndrsr.lib.checkpoint import atomic_write
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, write, tmp=osp.join(folder, f'.{osp.basename(path)}.tmp-{os.getpid()}'))


def build_parser() -> argparse.ArgumentParser:
    from ndrsr.cli.arguments import pixels
    parser = argparse.ArgumentParser(prog='ndrsr-eval', description=__doc__.split('\n\n')[0])
    parser.add_argument('restored', metavar='RESTORED_DIR', help='folder of restored images')
    parser.add_argument('--gt', help='folder of ground-truth images (without it: NIQE)')
    parser.add_argument('--pairing', default='same',
                        help="how restored names map to ground truth names: same (default), rain "
                             "(rain-N -> norain-N), reside/haze (NNNN_A_B -> NNNN)")
    parser.add_argument('--crop-border', type=pixels, default=0,
                        help='pixels cropped from each border before scoring (default 0)')
    parser.add_argument('--csv', help='also write the scores as CSV to this file (its folder is created)')
    parser.add_argument('--md', help='also write the markdown table to this file (its folder is created)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing --csv / --md files')
    return parser


def run(args) -> int:
    """Score, print the table, then write the reports asked for; returns the exit status."""
    from ndrsr.cli.errors import UsageError
    from ndrsr.cli.paths import check_writable

    reports = [(flag, path, fn) for flag, path, fn in (('--csv', args.csv, 'csv'), ('--md', args.md, 'md')) if path]
    if args.csv and args.md and osp.abspath(args.csv) == osp.abspath(args.md):
        raise UsageError(f'--csv and --md name the same file {args.csv}; give two files.')
    for flag, path, _ in reports:  # before any image is scored
        check_writable(path, 'the report', flag, folder=False)
    existing = [path for _, path, _ in reports if osp.exists(path)]
    if existing and not args.overwrite:
        raise UsageError(f'{", ".join(existing)}: the report already exists; pass --overwrite to replace it, or '
                         f'give another --csv / --md. Nothing was scored.')
    from ndrsr.data.pairing import DataLayoutError
    try:
        result = evaluate_folder(args.restored, args.gt, args.pairing, args.crop_border)
    except DataLayoutError as err:  # the data layer names the tool itself; cli_main adds 'ndrsr-eval: error:'
        raise UsageError(str(err).removeprefix('ndrsr-eval: ')) from None
    what = f'{args.restored} vs {args.gt}' if args.gt else f'{args.restored} (no ground truth: NIQE, lower is better)'
    table = to_markdown(result, f'Scores of {what}')
    print(table)
    status = 0
    if result['failures']:
        print(f'{len(result["failures"])} image(s) could not be scored:', file=sys.stderr)
        for path, why in result['failures']:
            print(f'  {path}: {why}', file=sys.stderr)
        status = 1
    if not result['rows']:
        if reports:
            print('ndrsr-eval: no image was scored, so no report was written.', file=sys.stderr)
        return 1
    for flag, path, kind in reports:
        try:
            write_report(path, (lambda tmp: write_csv(result, tmp)) if kind == 'csv' else
                         (lambda tmp: write_markdown(table, tmp)))
            print(f'wrote {path}')
        except OSError as err:
            print(f'ndrsr-eval: error: cannot write {path} ({err.strerror or err}); the scores are in the table '
                  f'above. Choose another {flag}.', file=sys.stderr)
            status = 2
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-eval``."""
    from ndrsr.cli.errors import cli_main
    return cli_main('ndrsr-eval', build_parser(), run, argv, {})


if __name__ == '__main__':
    sys.exit(main())
