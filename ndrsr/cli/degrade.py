"""ndrsr-degrade: transfer a degradation from one image to clean images (paper Fig. 10).

    ndrsr-degrade --like DEGRADED.png CLEAN [CLEAN ...] -o OUT_DIR --weights net_g.pth [options]

NDR-Restore recognises the degradation of DEGRADED ([U1, U2, U3]); NDR-Degrad
renders it onto each CLEAN image (file, folder or glob), written as
``OUT_DIR/CLEAN-STEM_like_DEGRADED-STEM.png`` (bit depth, alpha and
grayscale of the clean image kept).

Weights: ``--weights`` is the NDR-Restore checkpoint ``net_g*.pth`` (its
``net_degrad*.pth`` beside it is used for NDR-Degrad, or give
``--degrad-weights``), or the released checkpoint, which holds both.

Sizes: the U's live at DEGRADED's (padded) resolution. For a clean image of
another size they are fitted with ``--fit resize`` (default; bilinear, the
degradation's layout is stretched to the new image) or ``--fit mirror``
(mirror-tiled/cropped: the degradation keeps its scale, e.g. rain-streak
length). Large clean images are processed in tiles (``--tile``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from os import path as osp
from typing import List, Optional, Sequence, Tuple

from ndrsr.cli.common import (WEIGHTS_FLAGS, Progress, UsageError, add_runtime_arguments, check_output_folder,
                              cli_main, collect_inputs, describe_failure, report_failures, safe_output_path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-degrade', description=__doc__.split('\n\n')[0],
                                     epilog='Example: ndrsr-degrade --like rainy.png clean/ -o rained/ '
                                            '--weights experiments/x/models/net_g_latest.pth')
    parser.add_argument('--like', required=True, metavar='DEGRADED', help='image whose degradation is transferred')
    parser.add_argument('clean', nargs='+', metavar='CLEAN', help='clean image file, folder or quoted glob')
    parser.add_argument('-o', '--output', required=True, help='output folder (must not be an input folder)')
    parser.add_argument('-w', '--weights', required=True,
                        help='NDR-Restore checkpoint (net_g*.pth, with net_degrad*.pth beside it) or the released one')
    parser.add_argument('--degrad-weights', help='NDR-Degrad checkpoint, if not beside --weights')
    parser.add_argument('--opt', help='BasicSR options YAML with network_g and network_degrad')
    parser.add_argument('--fit', choices=['resize', 'mirror'], default='resize',
                        help='how the degradation is fitted to a clean image of another size (default resize)')
    add_runtime_arguments(parser)
    return parser


def recognise_file(restore_net, path: str, args) -> Tuple[list, Tuple[int, int]]:
    """[U1..U3] (CPU, at the padded resolution) of the image file ``path``, and its (H, W)."""
    import numpy as np
    import torch

    from ndrsr.cli.image_files import read_image_file
    from ndrsr.tiling import tile_recognise

    image = read_image_file(path)
    lq = torch.from_numpy(np.ascontiguousarray(image.rgb.transpose(2, 0, 1)))[None]
    us, _ = tile_recognise(restore_net, lq, tile=args.tile, overlap=args.tile_overlap, precision=args.precision)
    return us, image.rgb.shape[:2]


def degrade_one(degrad_net, us: list, path: str, out_path: str, args, progress: Progress) -> None:
    """Render ``us`` onto the clean image ``path`` and write ``out_path``."""
    import numpy as np
    import torch

    from ndrsr.cli.image_files import read_image_file, write_image_file
    from ndrsr.tiling import fit_degradations, network_stride, tile_degrade

    image = read_image_file(path)
    s = int(getattr(degrad_net, 'upscale', 1))
    h, w = image.rgb.shape[:2]
    if h % s or w % s:
        raise ValueError(f'{path}: the network works at {s}x: the clean image size {w}x{h} must be a multiple of {s}.')
    clean = torch.from_numpy(np.ascontiguousarray(image.rgb.transpose(2, 0, 1)))[None]
    fitted = fit_degradations(us, h // s, w // s, args.fit, network_stride(degrad_net))
    out = tile_degrade(degrad_net, clean, fitted, tile=args.tile, overlap=args.tile_overlap,
                       precision=args.precision, progress=progress.tile)
    write_image_file(out_path, out[0].clamp(0, 1).permute(1, 2, 0).numpy(), image)


def run(args) -> int:
    from ndrsr.tiling import resolve_device, resolve_precision
    from ndrsr.weights import load_degrad_network, load_restore_network

    cleans = collect_inputs(args.clean)
    like = collect_inputs([args.like])
    if len(like) != 1:
        raise UsageError(f'--like {args.like} must name one image, it matches {len(like)}.')
    check_output_folder(args.output, cleans + like)
    device = resolve_device(args.device)
    resolve_precision(args.precision, device)
    restore_net = load_restore_network(args.weights, args.opt, device)
    degrad_net = load_degrad_network(args.degrad_weights or args.weights, args.opt, device)
    inputs_real = {osp.realpath(p) for p in cleans + like}
    try:
        us, _ = recognise_file(restore_net, like[0], args)
    except Exception as err:  # noqa: BLE001 - reported as a usage problem: nothing can be done without it
        raise UsageError(f'--like {like[0]}: {describe_failure(err)}') from None
    del restore_net
    os.makedirs(args.output, exist_ok=True)
    like_stem = osp.splitext(osp.basename(like[0]))[0]
    failures: List[Tuple[str, str]] = []
    start = time.time()
    progress = Progress(len(cleans), enabled=not args.quiet)
    for path in cleans:
        try:
            stem = osp.splitext(osp.basename(path))[0]
            out_path = safe_output_path(osp.join(args.output, f'{stem}_like_{like_stem}.png'), inputs_real)
            degrade_one(degrad_net, us, path, out_path, args, progress)
        except UsageError:
            progress.close()
            raise
        except Exception as err:  # noqa: BLE001 - one bad image must not stop the others
            failures.append((path, describe_failure(err)))
            progress.write(f'FAILED {path}: {failures[-1][1]}')
        progress.image_done(osp.basename(path))
    progress.close()
    print(f'degraded {len(cleans) - len(failures)}/{len(cleans)} images like {like[0]} into {args.output} '
          f'in {time.time() - start:.1f} s (fit {args.fit}).')
    return report_failures(failures)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-degrade``."""
    return cli_main('ndrsr-degrade', build_parser(), run, argv, WEIGHTS_FLAGS)


if __name__ == '__main__':
    sys.exit(main())
