"""ndrsr-restore: restore images of any size with NDR-Restore (CPU or GPU).

    ndrsr-restore INPUT [INPUT ...] -o OUT_DIR [--model NAME | --weights net_g.pth] [options]
    python -m ndrsr.cli.restore ...

INPUT is an image file, a folder (its images, not recursive) or a glob
(quote it: 'photos/*.jpg'). Each restored image is written to OUT_DIR with
the input's name, bit depth (8/16), alpha channel (passed through) and
grayscale-ness; JPEG inputs with alpha or 16 bits are written as PNG.
OUT_DIR may not be an input folder, and no output may replace an input.
Existing outputs are replaced only with --overwrite (--skip-existing keeps
them and restores the rest). Without --weights the default named model is
used (--model picks another; ndrsr.lib.model_zoo). Unreadable images are reported
and skipped; the exit status is 1 if any image failed, 2 for a usage error.
See docs/inference.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from os import path as osp
from typing import List, Optional, Sequence

from ndrsr.cli.arguments import (add_model_arguments, add_output_arguments, add_runtime_arguments, describe_tiling,
                                 max_pixels, model_weights)
from ndrsr.cli.errors import WEIGHTS_FLAGS, cli_main
from ndrsr.cli.paths import (OutputFolder, OutputPolicy, check_output_folder, check_output_names, check_suffix,
                             check_writable, collect_inputs, output_name, safe_output_path)
from ndrsr.cli.progress import Progress, process_each, report_failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-restore', description=__doc__.split('\n\n')[0],
                                     epilog='Examples: ndrsr-restore photos/ -o restored/ (the default model); '
                                            'ndrsr-restore photos/ -o restored/ --weights net_g.pth --save-maps')
    parser.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, folder or quoted glob')
    parser.add_argument('-o', '--output', required=True, help='output folder (created; must not be an input folder)')
    add_model_arguments(parser, 'NDR-Restore weights: BasicSR checkpoint (params_ema preferred), or the released '
                                'checkpoint (converted on the fly)')
    parser.add_argument('--opt', help='BasicSR options YAML with network_g (default: network_options.yml next to '
                                      'the weights, else sizes inferred from the weights)')
    parser.add_argument('--upscale', type=int, default=None,
                        help='expected up-scaling of the network (e.g. 2 for the SR model); checked against the '
                             'weights')
    add_runtime_arguments(parser)
    parser.add_argument('--ext', default='auto', help='output format: auto (as the input; PNG when the input '
                                                      'format cannot hold alpha/16 bits), png, jpg, tif, webp ...')
    parser.add_argument('--suffix', default='', help='appended to each output file name stem (default none)')
    parser.add_argument('--save-maps', action='store_true',
                        help='also write the degradation maps: OUT/STEM_maps/L{1,2,3}_{atom,confidence,U}.png and '
                             'the summary OUT/STEM_maps/summary.png')
    add_output_arguments(parser)
    return parser


def planned_extension(path: str, ext: str) -> str:
    """The output extension of ``path`` as far as it is known before the image is read (``--ext``, else the
    input's; PNG for a format that cannot be written). Reading may still switch it to PNG (alpha, 16 bits)."""
    from ndrsr.lib.image_files import output_extension
    return output_extension(None, path, ext)


def planned_outputs(path: str, args) -> List[str]:
    """What restoring ``path`` writes: the image and, with --save-maps, its maps folder."""
    image = osp.join(args.output, output_name(path, args.suffix, planned_extension(path, args.ext)))
    maps = [osp.join(args.output, osp.splitext(osp.basename(image))[0] + '_maps')] if args.save_maps else []
    return [image] + maps


def outputs_complete(path: str) -> bool:
    """Whether an existing output is whole: a file, or a maps folder with every map."""
    from ndrsr.cli.maps import maps_complete
    return maps_complete(path) if path.endswith('_maps') else osp.exists(path)


def restore_one(net, path: str, out_dir: str, args, device, inputs_real: set, progress: Progress,
                policy: Optional[OutputPolicy] = None, weights: str = '') -> Optional[str]:
    """Restore one image file; returns the written path (None: its outputs exist and are kept).

    With ``--save-maps`` the image and its maps are one unit: the maps are
    written first (a folder renamed into place once complete), the image last,
    so a run stopped in between does the image again; with ``--skip-existing``
    the missing maps of an existing image are completed. An image file another
    run created meanwhile is never replaced (FileExistsError; kept with
    ``--skip-existing``). ``weights`` is named when the output is not finite.
    Raises on any problem with this image.
    """
    from ndrsr.cli.maps import maps_complete, maps_folder, save_maps
    from ndrsr.lib.image_files import multi_frame_warning, output_extension, read_image_file, write_image_file
    from ndrsr.lib.image_ops import recognise_rgb, restore_rgb
    from ndrsr.lib.integrity import NonFiniteError

    image = read_image_file(path, max_pixels(args))
    ext = output_extension(image, path, args.ext)
    out_path = safe_output_path(osp.join(out_dir, output_name(path, args.suffix, ext)), inputs_real)
    stem = osp.splitext(osp.basename(out_path))[0]
    overwrite = policy is None or policy.overwrite
    need_image = policy is None or policy.claim(out_path)
    need_maps = args.save_maps and (overwrite or not maps_complete(maps_folder(out_dir, stem)))
    if not need_image and not need_maps:
        return None
    if image.frames > 1:
        progress.write(f'WARNING {multi_frame_warning(image)}; only the first frame is restored (into {out_path}).')
    runtime = dict(tile=args.tile, overlap=args.tile_overlap, precision=args.precision)
    try:
        rgb = restore_rgb(net, image.rgb, progress=progress.tile, **runtime)
    except NonFiniteError as err:
        raise NonFiniteError(f'{path}: {err} with the weights {weights}: they are damaged or their training '
                             f'diverged; nothing was written') from None
    if need_maps:
        us, ss = recognise_rgb(net, image.rgb, **runtime)
        save_maps(out_dir, stem, image.rgb, rgb, us, ss, replace=True)
    if not need_image:
        return None
    try:
        write_image_file(out_path, rgb, image, replace=overwrite)
    except FileExistsError:
        if policy is not None and policy.skip_existing:
            policy.kept.append(out_path)
            return None
        raise
    return out_path


def run(args) -> int:
    """Restore every input; returns the exit status (0 all good, 1 some failed)."""
    import torch

    from ndrsr.lib.tiling import network_stride, resolve_device, resolve_precision
    from ndrsr.lib.weights import load_restore_network

    check_suffix(args.suffix)
    inputs = collect_inputs(args.inputs)
    check_output_folder(args.output, inputs)
    check_output_names(inputs, args.output, args.suffix)
    check_writable(args.output)  # before the network runs, not after every image
    policy = OutputPolicy(args.output, args.overwrite, args.skip_existing, complete=outputs_complete)
    todo = policy.plan({p: planned_outputs(p, args) for p in inputs})
    if not todo:
        policy.report()
        print(f'nothing to restore: the outputs of all {len(inputs)} inputs exist in {args.output}.')
        return 0
    device = resolve_device(args.device)
    resolve_precision(args.precision, device)  # fail early on fp16 + CPU
    weights = model_weights(args)
    from ndrsr.cli.onnx_options import refuse_onnx_options
    refuse_onnx_options(weights, args)  # what an ONNX export cannot do, said before any image is read
    net = load_restore_network(weights, args.opt, device, args.upscale)
    tiling = describe_tiling(args.tile, args.tile_overlap, network_stride(net))  # what --tile became
    folder = OutputFolder(args.output)  # created by the first image written
    inputs_real = {osp.realpath(p) for p in inputs}
    start = time.time()

    def work(path: str) -> bool:
        with torch.no_grad():  # scoped: a caller's (or a test session's) grad mode is left as it was
            return restore_one(net, path, args.output, args, device, inputs_real, progress, policy,
                               weights) is not None

    progress = Progress(len(todo), enabled=not args.quiet)
    written, failures = process_each(todo, work, progress, folder, policy)
    where = args.output if written else f'{args.output} (nothing written)'
    print(f'restored {written}/{len(todo)} images into {where} in {time.time() - start:.1f} s '
          f'(device {device}, precision {args.precision}, {tiling}).')
    return report_failures(failures)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-restore``."""
    return cli_main('ndrsr-restore', build_parser(), run, argv, WEIGHTS_FLAGS)


if __name__ == '__main__':
    sys.exit(main())
