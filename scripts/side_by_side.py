"""A labelled side-by-side picture of the same images in several folders (for model cards and closing notes).

    .venv/bin/python scripts/side_by_side.py OUT.png NAME=FOLDER [NAME=FOLDER ...] [--images A.png B.png ...]
        [--height 200] [--overwrite]

One row per image (the file names of the first folder, or --images), one column per
folder, each scaled to --height pixels, labelled with NAME and, for every column after
the first, the PSNR against the first column's image (the reference: the input of a
restoration, or the clean image when NAME says so). Files are matched by stem, so
restored PNGs pair with JPEG inputs. Writes OUT.png atomically; an existing file is
replaced only with --overwrite.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from os import path as osp

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from ndrsr.cli.demo import _label  # noqa: E402
from ndrsr.lib.image_files import IMAGE_EXTENSIONS  # noqa: E402


def find(folder: str, stem: str) -> str:
    """The image file of ``folder`` whose stem is ``stem``."""
    hits = [p for p in glob.glob(osp.join(glob.escape(folder), glob.escape(stem) + '.*'))
            if osp.splitext(p)[1].lower() in IMAGE_EXTENSIONS]
    if not hits:
        raise SystemExit(f'side_by_side: no image {stem}.* in {folder}')
    return hits[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out')
    p.add_argument('columns', nargs='+', metavar='NAME=FOLDER')
    p.add_argument('--images', nargs='*', help='file names (default: every image of the first folder)')
    p.add_argument('--height', type=int, default=200)
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    if osp.exists(args.out) and not args.overwrite:
        raise SystemExit(f'side_by_side: {args.out} exists; add --overwrite to replace it')
    columns = [c.split('=', 1) for c in args.columns]
    if any(len(c) != 2 for c in columns):
        raise SystemExit('side_by_side: columns are NAME=FOLDER')
    names = args.images or sorted(f for f in os.listdir(columns[0][1])
                                  if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    rows = []
    for name in names:
        stem = osp.splitext(name)[0]
        ref, cells = None, []
        for label, folder in columns:
            img = cv2.imread(find(folder, stem), cv2.IMREAD_COLOR)
            text = label
            if ref is None:
                ref = img
            elif img.shape == ref.shape:
                text += f' {cv2.PSNR(img, ref):.1f} dB'
            w = int(round(img.shape[1] * args.height / img.shape[0]))
            cells.append(_label(cv2.resize(img, (w, args.height), interpolation=cv2.INTER_AREA), text))
        rows.append(np.hstack(cells))
    width = max(r.shape[1] for r in rows)
    picture = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    tmp = args.out + '.tmp.png'
    cv2.imwrite(tmp, picture)
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({len(rows)} rows x {len(columns)} columns)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
