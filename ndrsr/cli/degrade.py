"""ndrsr-degrade: transfer a degradation from one image to clean images (paper Fig. 10).

    ndrsr-degrade --like DEGRADED.png CLEAN [CLEAN ...] -o OUT_DIR [--model NAME | --weights net_g.pth] [options]

NDR-Restore recognises the degradation of DEGRADED ([U1, U2, U3]); NDR-Degrad
renders it onto each CLEAN image (file, folder or glob), written as
``OUT_DIR/CLEAN-STEM_like_DEGRADED-STEM.png`` (bit depth, alpha and
grayscale of the clean image kept).

Weights: a named model (``--model``, default ``small``: both networks and
their options), or ``--weights``, the NDR-Restore checkpoint ``net_g*.pth``
(its ``net_degrad*.pth`` beside it is used for NDR-Degrad, or give
``--degrad-weights``), or the released checkpoint, which holds both.
Existing outputs are replaced only with ``--overwrite`` (``--skip-existing``
keeps them and degrades the rest).

Fit (``--fit``): the U's of DEGRADED carry its scene as well as its
degradation. ``--fit difference`` (default) keeps only the degradation: it
subtracts the U's of DEGRADED's restoration (its scene) and adds what is left
to each clean image's own U's, mirror-tiled to its size (grain and streak
length keep their scale): right for noise and rain. ``--fit difference-mean``
adds that difference averaged over DEGRADED: a uniform veil or cast, right
for haze, whose difference follows DEGRADED's depth and so carries a ghost
of its scene. Both transfer only what the model's restoration removes from
DEGRADED (a warning says when that is little). The older fits use DEGRADED's
U's as they are, so its scene can show through: ``resize`` (bilinear, its
layout stretched to the clean image), ``mirror`` (mirror-tiled/cropped),
``mean`` (each U averaged and spread evenly: no scene, but no grain or
streaks either). Large images
are processed in tiles (``--tile``).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from os import path as osp
from typing import Optional, Sequence

from ndrsr.cli.arguments import (add_model_arguments, add_output_arguments, add_runtime_arguments, max_pixels,
                                 model_weights)
from ndrsr.cli.errors import WEIGHTS_FLAGS, UsageError, cli_main
from ndrsr.cli.paths import (OutputFolder, OutputPolicy, check_output_folder, check_writable, collect_inputs,
                             safe_output_path)
from ndrsr.cli.progress import Progress, describe_failure, process_each, report_failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-degrade', description=__doc__.split('\n\n')[0],
                                     epilog='Example: ndrsr-degrade --like rainy.png clean/ -o rained/ '
                                            '(the default model; or --weights experiments/x/models/net_g_latest.pth)')
    parser.add_argument('--like', required=True, metavar='DEGRADED', help='image whose degradation is transferred')
    parser.add_argument('clean', nargs='+', metavar='CLEAN', help='clean image file, folder or quoted glob')
    parser.add_argument('-o', '--output', required=True, help='output folder (must not be an input folder)')
    add_model_arguments(parser, 'NDR-Restore checkpoint (net_g*.pth, with net_degrad*.pth beside it) or the '
                                'released one')
    parser.add_argument('--degrad-weights', help='NDR-Degrad checkpoint, if not beside --weights')
    parser.add_argument('--opt', help='BasicSR options YAML with network_g and network_degrad')
    from ndrsr.lib.transfer import FIT_MODES
    parser.add_argument('--fit', choices=FIT_MODES, default='difference',
                        help="difference (default; noise, rain): the --like image's degradation alone (its U's minus "
                             "those of its restoration) added to the clean image's own, mirror-tiled; "
                             'difference-mean (haze): that difference averaged, added evenly; resize or mirror: the '
                             "--like image's U's as they are, stretched or mirror-tiled (its scene can show through); "
                             'mean: their average, spread evenly')
    add_runtime_arguments(parser)
    add_output_arguments(parser)
    return parser


def recognise_file(restore_net, path: str, args):
    """The degradation of the ``--like`` image file ``path`` to transfer with ``--fit``
    (:class:`ndrsr.lib.image_ops.LikeDegradation`); a warning goes to stderr when the restoration removes
    little from the image (a difference fit has little to transfer).
    """
    from ndrsr.lib.image_files import multi_frame_warning, read_image_file
    from ndrsr.lib.image_ops import recognise_like

    image = read_image_file(path, max_pixels(args))
    if image.frames > 1:
        print(f'WARNING {multi_frame_warning(image)}; its first frame gives the degradation.', file=sys.stderr)
    like = recognise_like(restore_net, image.rgb, args.fit, tile=args.tile, overlap=args.tile_overlap,
                          precision=args.precision)
    warning = like.warning(path)
    if warning:
        print(f'WARNING {warning}', file=sys.stderr)
    return like


def degrade_one(degrad_net, like, path: str, out_path: str, args, progress: Progress, restore_net=None) -> None:
    """Render ``like`` (:func:`recognise_file`) onto the clean image ``path`` and write ``out_path``.

    ``restore_net`` (needed by the difference fits) recognises the clean image's own U's.
    """
    from ndrsr.lib.image_files import multi_frame_warning, read_image_file, write_image_file
    from ndrsr.lib.image_ops import degrade_rgb
    from ndrsr.lib.integrity import NonFiniteError

    image = read_image_file(path, max_pixels(args))
    if image.frames > 1:
        progress.write(f'WARNING {multi_frame_warning(image)}; only the first frame is degraded.')
    try:
        rgb = degrade_rgb(degrad_net, like, image.rgb, restore_net, tile=args.tile, overlap=args.tile_overlap,
                          precision=args.precision, progress=progress.tile)
    except NonFiniteError as err:
        raise NonFiniteError(f'{path}: {err} with the NDR-Degrad weights beside the restoration weights: they are '
                             'damaged or their training diverged; nothing was written') from None
    except ValueError as err:  # the clean image's size does not suit the network
        raise ValueError(f'{path}: {err}') from None
    write_image_file(out_path, rgb, image, replace=args.overwrite)  # never another run's file, unless asked


def run(args) -> int:
    from ndrsr.lib.tiling import resolve_device, resolve_precision
    from ndrsr.lib.transfer import DIFFERENCE_FITS
    from ndrsr.lib.weights import load_degrad_network, load_restore_network

    cleans = collect_inputs(args.clean)
    like = collect_inputs([args.like])
    if len(like) != 1:
        raise UsageError(f'--like {args.like} must name one image, it matches {len(like)}.')
    check_output_folder(args.output, cleans + like)
    like_stem = osp.splitext(osp.basename(like[0]))[0]
    out_paths = {p: osp.join(args.output, f'{osp.splitext(osp.basename(p))[0]}_like_{like_stem}.png')
                 for p in cleans}
    clash = sorted(o for o, n in Counter(out_paths.values()).items() if n > 1)
    if clash:
        raise UsageError(f'several clean images would be written as {clash[0]}; degrade them in separate runs or '
                         f'rename one.')
    check_writable(args.output)  # before the networks run, not after every image
    policy = OutputPolicy(args.output, args.overwrite, args.skip_existing)
    todo = policy.plan({p: [o] for p, o in out_paths.items()})
    if not todo:
        policy.report()
        print(f'nothing to degrade: the outputs of all {len(cleans)} clean images exist in {args.output}.')
        return 0
    device = resolve_device(args.device)
    resolve_precision(args.precision, device)
    weights = model_weights(args, ('opt', 'degrad_weights'))
    restore_net = load_restore_network(weights, args.opt, device)
    degrad_net = load_degrad_network(args.degrad_weights or weights, args.opt, device)
    inputs_real = {osp.realpath(p) for p in cleans + like}
    try:
        degradation = recognise_file(restore_net, like[0], args)
    except Exception as err:  # noqa: BLE001 - reported as a usage problem: nothing can be done without it
        raise UsageError(f'--like {like[0]}: {describe_failure(err)}') from None
    if args.fit not in DIFFERENCE_FITS:
        restore_net = None  # only the difference fits need it again (each clean image's own U's)
    folder = OutputFolder(args.output)  # created by the first image written
    start = time.time()

    def work(path: str) -> bool:
        out_path = safe_output_path(out_paths[path], inputs_real)
        if not policy.claim(out_path):
            return False
        try:
            degrade_one(degrad_net, degradation, path, out_path, args, progress, restore_net)
        except FileExistsError:  # another run into the same folder wrote it meanwhile
            if not args.skip_existing:
                raise
            policy.kept.append(out_path)
            return False
        return True

    progress = Progress(len(todo), enabled=not args.quiet)
    written, failures = process_each(todo, work, progress, folder, policy)
    where = args.output if written else f'{args.output} (nothing written)'
    print(f'degraded {written}/{len(todo)} images like {like[0]} into {where} in {time.time() - start:.1f} s '
          f'(fit {args.fit}).')
    return report_failures(failures)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-degrade``."""
    return cli_main('ndrsr-degrade', build_parser(), run, argv, WEIGHTS_FLAGS)


if __name__ == '__main__':
    sys.exit(main())
