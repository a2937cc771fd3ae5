"""The argument groups the tools share: outputs, models and weights, runtime (tiles, device, precision)."""
from __future__ import annotations

import argparse
from os import path as osp
from typing import Sequence

from ndrsr.cli.errors import UsageError


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--overwrite / --skip-existing (exclusive): what to do with outputs that already exist."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--overwrite', action='store_true', help='replace output files that already exist')
    group.add_argument('--skip-existing', action='store_true',
                       help='keep output files that already exist and process only the other inputs (resume a '
                            'big folder)')


def add_model_arguments(parser: argparse.ArgumentParser, weights_help: str) -> None:
    """--model NAME / -w --weights FILE (exclusive); neither: the default model."""
    from ndrsr.lib.model_zoo import DEFAULT_MODEL, describe_models
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--model', metavar='NAME',
                       help=f'a named model, used when --weights is not given (default {DEFAULT_MODEL}): '
                            f'{describe_models()}')
    group.add_argument('-w', '--weights', help=weights_help)


def model_weights(args: argparse.Namespace, companions: Sequence[str] = ('opt',)) -> str:
    """The NDR-Restore weights file to load: ``--weights``, else the files of ``--model`` (the default model
    when neither is given), which are downloaded first if needed; prints which model is used.

    ``companions``: the flags that only make sense with ``--weights`` (a named model brings its own options
    and NDR-Degrad weights).
    """
    if args.weights:
        return args.weights
    from ndrsr.lib.model_zoo import DEFAULT_MODEL, resolve_model
    given = [f'--{c.replace("_", "-")}' for c in companions if getattr(args, c, None)]
    if given:
        raise UsageError(f'{" and ".join(given)} go{"es" if len(given) == 1 else ""} with --weights: a named model '
                         f'(--model, default {DEFAULT_MODEL}) brings its own options and both networks.')
    files = resolve_model(args.model or DEFAULT_MODEL, progress=not args.quiet)
    print(f'model: {files.name} \u2014 {files.summary} [{osp.dirname(files.restore)}]')
    return files.restore


def pixels(text: str) -> int:
    """argparse type of --tile / --tile-overlap: a whole number of pixels, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number of pixels, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more pixels, got {value}')
    return value


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--tile, --tile-overlap, --device, --precision, --max-megapixels, --quiet (shared by ndrsr-restore and
    ndrsr-degrade)."""
    from ndrsr.lib.image_header import DEFAULT_MAX_PIXELS
    from ndrsr.lib.tiling import CPU_WHOLE_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE, PRECISIONS
    parser.add_argument('--tile', type=pixels, default=0,
                        help='tile size in pixels (rounded up to the multiple the network pads to); 0 = auto: the '
                             f'whole image if it has at most {CPU_WHOLE_PIXELS // 1000} k pixels (CPU) or fits in half '
                             f'the free GPU memory, else {DEFAULT_TILE} tiles (default 0)')
    parser.add_argument('--tile-overlap', type=pixels, default=DEFAULT_OVERLAP,
                        help='overlap of neighbouring tiles, blended with raised-cosine ramps '
                             f'(default {DEFAULT_OVERLAP})')
    parser.add_argument('--device', default='auto', help='auto (CUDA if available), cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--precision', default='auto', choices=list(PRECISIONS),
                        help='compute precision: auto = fp32 on CPU, fp16 on CUDA; fp16 needs CUDA; bf16 runs on CUDA '
                             'and on CPUs with native bf16 (AMX / AVX512-BF16); ONNX weights run in fp32')
    parser.add_argument('--max-megapixels', type=megapixels, default=DEFAULT_MAX_PIXELS / 1e6,
                        help='refuse images with more pixels than this, read from the file header before decoding '
                             f'(decompression bombs); 0 = no limit (default {DEFAULT_MAX_PIXELS / 1e6:g})')
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


def megapixels(text: str) -> float:
    """argparse type of --max-megapixels: a number of millions of pixels, 0 (no limit) or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of megapixels, got {text!r}') from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'must be 0 (no limit) or more, got {text}')
    return value


def max_pixels(args: argparse.Namespace) -> int:
    """The pixel limit of --max-megapixels (0: none), for :func:`ndrsr.lib.image_files.read_image_file`."""
    return int(round(args.max_megapixels * 1e6))


def describe_tiling(tile: int, overlap: int, stride: int) -> str:
    """``tile auto`` or ``tile T, overlap O`` for the summary line, saying what was rounded or clamped from
    --tile / --tile-overlap (:func:`ndrsr.lib.tiling.effective_tiling`)."""
    from ndrsr.lib.tiling import effective_tiling
    if not tile:
        return 'tile auto'
    used_tile, used_overlap = effective_tiling(tile, overlap, stride)
    text = f'tile {used_tile}'
    if used_tile != tile:
        text += f' (--tile {tile} rounded up to a multiple of {stride})'
    text += f', overlap {used_overlap}'
    if used_overlap != overlap:
        rounded = int(round(overlap / stride)) * stride
        why = 'at most half the tile' if used_overlap < rounded else f'rounded to a multiple of {stride}'
        text += f' (--tile-overlap {overlap}: {why})'
    return text
