"""ndrsr-restore: restore images of any size with NDR-Restore (CPU or GPU).

    ndrsr-restore INPUT [INPUT ...] -o OUT_DIR --weights net_g.pth [options]
    python -m ndrsr.restore ...

INPUT is an image file, a folder (its images, not recursive) or a glob
(quote it: 'photos/*.jpg'). Each restored image is written to OUT_DIR with
the input's name, bit depth (8/16), alpha channel (passed through) and
grayscale-ness; JPEG inputs with alpha or 16 bits are written as PNG.
OUT_DIR may not be an input folder, and no output may replace an input.
Unreadable images are reported and skipped; the exit status is 1 if any
image failed, 2 for a usage error. See docs/inference.md.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from os import path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ndrsr.image_files import IMAGE_EXTENSIONS


class UsageError(ValueError):
    """A problem with the command line (paths, options): reported and exit status 2."""


# ----------------------------------------------------------------------------- inputs and outputs
def collect_inputs(specs: Sequence[str]) -> List[str]:
    """Expand files, folders (their images, sorted, not recursive) and globs into image paths.

    A file given by name is taken whatever its extension (a bad one is reported
    when read). Raises UsageError for a spec that matches nothing.
    """
    found: List[str] = []
    for spec in specs:
        if osp.isdir(spec):
            names = sorted(n for n in os.listdir(spec)
                           if osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS and osp.isfile(osp.join(spec, n)))
            if not names:
                raise UsageError(f'{spec}: the folder contains no images ({", ".join(IMAGE_EXTENSIONS)}).')
            found += [osp.join(spec, n) for n in names]
        elif osp.isfile(spec):
            found.append(spec)
        elif glob.has_magic(spec):
            names = sorted(p for p in glob.glob(spec) if osp.isfile(p)
                           and osp.splitext(p)[1].lower() in IMAGE_EXTENSIONS)
            if not names:
                raise UsageError(f'{spec}: the pattern matches no image files.')
            found += names
        else:
            raise UsageError(f'{spec}: no such file or folder.')
    unique, seen = [], set()
    for p in found:
        key = osp.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def check_output_folder(out_dir: str, inputs: Sequence[str]) -> None:
    """Refuse an output folder that holds any of the inputs (inputs are never overwritten)."""
    out_real = osp.realpath(out_dir)
    for p in inputs:
        if osp.realpath(osp.dirname(osp.abspath(p))) == out_real:
            raise UsageError(f'the output folder {out_dir} is the folder of the input {p}; the inputs would be '
                             f'mixed with (or overwritten by) the results. Choose another -o/--output folder.')


def output_name(path: str, suffix: str, ext: str) -> str:
    """File name of the result for input ``path``: ``STEM{suffix}{ext}``."""
    return osp.splitext(osp.basename(path))[0] + suffix + ext


def check_output_names(inputs: Sequence[str], out_dir: str, suffix: str) -> None:
    """Refuse two inputs that would be written to the same output name (e.g. a.png and a.jpg)."""
    by_stem: Dict[str, str] = {}
    for p in inputs:
        stem = osp.splitext(osp.basename(p))[0] + suffix
        if stem in by_stem:
            raise UsageError(f'{by_stem[stem]} and {p} would both be written as {osp.join(out_dir, stem)}.*; '
                             f'restore them in separate runs or rename one.')
        by_stem[stem] = p


def safe_output_path(out_path: str, inputs_real: set) -> str:
    """``out_path`` unless it is one of the inputs (then UsageError)."""
    if osp.realpath(out_path) in inputs_real:
        raise UsageError(f'refusing to write {out_path}: it is an input image. Choose another -o/--output folder.')
    return out_path


# ----------------------------------------------------------------------------- progress
class Progress:
    """Image-level tqdm bar with ETA and a tile-level bar for tiled images (both on stderr)."""

    def __init__(self, total: int, enabled: bool = True, unit: str = 'image'):
        from tqdm import tqdm
        self._tqdm = tqdm
        self.enabled = enabled
        self.bar = tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True)
        self.tiles = None

    def tile(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self.tiles is None:
            self.tiles = self._tqdm(total=total, unit='tile', leave=False, position=1, dynamic_ncols=True)
        self.tiles.update(done - self.tiles.n)

    def image_done(self, name: str) -> None:
        if self.tiles is not None:
            self.tiles.close()
            self.tiles = None
        self.bar.set_postfix_str(name[-40:], refresh=False)
        self.bar.update(1)

    def write(self, msg: str) -> None:
        self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        if self.tiles is not None:
            self.tiles.close()
        self.bar.close()


def describe_failure(err: BaseException) -> str:
    """One line for the summary: the error and the fix when there is an obvious one."""
    import torch
    if isinstance(err, torch.OutOfMemoryError):
        return 'out of memory: use a smaller --tile (e.g. --tile 256) or --precision fp16 on the GPU'
    from ndrsr.data.image_io import ImageReadError
    if isinstance(err, (ImageReadError, OSError)):
        return str(err)
    return f'{err.__class__.__name__}: {err}'


def report_failures(failures: Sequence[Tuple[str, str]]) -> int:
    """Print the failed images to stderr; the exit status: 1 if any failed, else 0."""
    if not failures:
        return 0
    print(f'{len(failures)} image(s) FAILED and were skipped:', file=sys.stderr)
    for path, why in failures:
        print(f'  {why}' if why.startswith(path) else f'  {path}: {why}', file=sys.stderr)
    return 1


def cli_main(prog: str, parser: argparse.ArgumentParser, run_fn, argv: Optional[Sequence[str]]) -> int:
    """Parse, run, and turn usage/weights errors into one ``prog: error: ...`` line and exit status 2."""
    import ndrsr  # noqa: F401  (compat fixes and registries before basicsr is used)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.inference import WeightsError

    args = parser.parse_args(argv)
    retain_freed_memory()  # no page-fault storm per image (ndrsr/allocator.py)
    try:
        return run_fn(args)
    except (UsageError, WeightsError, FileNotFoundError, ValueError) as err:
        print(f'{prog}: error: {err}', file=sys.stderr)
        return 2


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--tile, --tile-overlap, --device, --precision, --quiet (shared by ndrsr-restore and ndrsr-degrade)."""
    from ndrsr.inference import DEFAULT_OVERLAP
    parser.add_argument('--tile', type=int, default=0,
                        help='tile size in pixels (multiple of 8); 0 = auto: the whole image if it has at most '
                             '768x512 pixels (CPU) or fits in half the free GPU memory, else 512 tiles (default 0)')
    parser.add_argument('--tile-overlap', type=int, default=DEFAULT_OVERLAP,
                        help=f'overlap of neighbouring tiles, blended with raised-cosine ramps (default {DEFAULT_OVERLAP})')
    parser.add_argument('--device', default='auto', help='auto (CUDA if available), cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--precision', default='auto', choices=['auto', 'fp32', 'fp16', 'bf16'],
                        help='compute precision: auto = fp32 on CPU, fp16 on CUDA; fp16/bf16 need CUDA')
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-restore', description=__doc__.split('\n\n')[0],
                                     epilog='Example: ndrsr-restore photos/ -o restored/ --weights net_g.pth --save-maps')
    parser.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, folder or quoted glob')
    parser.add_argument('-o', '--output', required=True, help='output folder (created; must not be an input folder)')
    parser.add_argument('-w', '--weights', required=True,
                        help='NDR-Restore weights: BasicSR checkpoint (params_ema preferred), or the released '
                             'checkpoint (converted on the fly)')
    parser.add_argument('--opt', help='BasicSR options YAML with network_g (default: network_options.yml next to '
                                      'the weights, else sizes inferred from the weights)')
    parser.add_argument('--upscale', type=int, default=None,
                        help='expected up-scaling of the network (e.g. 2 for the SR model); checked against the weights')
    add_runtime_arguments(parser)
    parser.add_argument('--ext', default='auto', help='output format: auto (as the input; PNG when the input '
                                                      'format cannot hold alpha/16 bits), png, jpg, tif, webp ...')
    parser.add_argument('--suffix', default='', help='appended to each output file name stem (default none)')
    parser.add_argument('--save-maps', action='store_true',
                        help='also write the degradation maps: OUT/STEM_maps/L{1,2,3}_{atom,confidence,U}.png and '
                             'the summary OUT/STEM_maps/summary.png')
    return parser


def restore_one(net, path: str, out_dir: str, args, device, inputs_real: set, progress: Progress) -> str:
    """Restore one image file; returns the written path. Raises on any problem with this image."""
    import numpy as np
    import torch

    from ndrsr.image_files import output_extension, read_image_file, write_image_file
    from ndrsr.inference import tile_forward, tile_recognise

    image = read_image_file(path)
    out_path = safe_output_path(osp.join(out_dir, output_name(path, args.suffix, output_extension(image, path, args.ext))),
                                inputs_real)
    lq = torch.from_numpy(np.ascontiguousarray(image.rgb.transpose(2, 0, 1)))[None]
    restored = tile_forward(net, lq, tile=args.tile, overlap=args.tile_overlap, precision=args.precision,
                            progress=progress.tile)
    rgb = restored[0].clamp(0, 1).permute(1, 2, 0).numpy()
    write_image_file(out_path, rgb, image)
    if args.save_maps:
        from ndrsr.maps import save_maps
        us, ss = tile_recognise(net, lq, tile=args.tile, overlap=args.tile_overlap, precision=args.precision)
        save_maps(out_dir, osp.splitext(osp.basename(out_path))[0], image.rgb, rgb, us, ss)
    return out_path


def run(args) -> int:
    """Restore every input; returns the exit status (0 all good, 1 some failed)."""
    import torch

    from ndrsr.inference import load_restore_network, resolve_device, resolve_precision

    inputs = collect_inputs(args.inputs)
    check_output_folder(args.output, inputs)
    check_output_names(inputs, args.output, args.suffix)
    device = resolve_device(args.device)
    resolve_precision(args.precision, device)  # fail early on fp16 + CPU
    net = load_restore_network(args.weights, args.opt, device, args.upscale)
    os.makedirs(args.output, exist_ok=True)
    inputs_real = {osp.realpath(p) for p in inputs}
    failures: List[Tuple[str, str]] = []
    start = time.time()
    progress = Progress(len(inputs), enabled=not args.quiet)
    for path in inputs:
        try:
            with torch.no_grad():  # scoped: a caller's (or a test session's) grad mode is left as it was
                restore_one(net, path, args.output, args, device, inputs_real, progress)
        except UsageError:
            progress.close()
            raise
        except Exception as err:  # noqa: BLE001 - one bad image must not stop the others
            failures.append((path, describe_failure(err)))
            why = failures[-1][1]
            progress.write(f'FAILED {why}' if why.startswith(path) else f'FAILED {path}: {why}')
        progress.image_done(osp.basename(path))
    progress.close()
    done = len(inputs) - len(failures)
    print(f'restored {done}/{len(inputs)} images into {args.output} in {time.time() - start:.1f} s '
          f'(device {device}, precision {args.precision}, tile {args.tile or "auto"}).')
    return report_failures(failures)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-restore``."""
    return cli_main('ndrsr-restore', build_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
