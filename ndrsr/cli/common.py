"""What the image tools share: inputs, output checks, progress, failure reports, the main wrapper.

``ndrsr-restore`` and ``ndrsr-degrade`` take files, folders and globs
(:func:`collect_inputs`), refuse to write into an input folder or over an
input (:func:`check_output_folder`, :func:`safe_output_path`), show an image
and a tile progress bar (:class:`Progress`), skip and report unreadable images
(:func:`describe_failure`, :func:`report_failures`), share the runtime flags
(:func:`add_runtime_arguments`) and run through :func:`cli_main`, which turns
usage and weights errors into one ``prog: error: ...`` line (exit status 2)
naming the flag to change.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from os import path as osp
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ndrsr.data.image_io import IMAGE_EXTENSIONS

# library argument (the ``argument`` attribute of its errors) -> the flag of the tools
RUNTIME_FLAGS = {'device': '--device', 'precision': '--precision'}
WEIGHTS_FLAGS = {'weights': '--weights', 'opt_path': '--opt', 'upscale': '--upscale',
                 'degrad_weights': '--degrad-weights', **RUNTIME_FLAGS}


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


def error_line(prog: str, err: BaseException, flags: Mapping[str, str]) -> str:
    """``prog: error: MESSAGE``, plus the command-line option to change when the library error names one.

    Library errors name the parameter the fix concerns in their ``argument``
    attribute (see :mod:`ndrsr.weights`); ``flags`` maps it to this tool's flag.
    """
    line = f'{prog}: error: {err}'
    flag = flags.get(getattr(err, 'argument', None) or '')
    if flag:
        line += f' (command-line option: {flag})'
    return line


def cli_main(prog: str, parser: argparse.ArgumentParser, run_fn: Callable[[argparse.Namespace], int],
             argv: Optional[Sequence[str]], flags: Mapping[str, str] = RUNTIME_FLAGS) -> int:
    """Parse, run, and turn usage/weights errors into one ``prog: error: ...`` line and exit status 2."""
    import ndrsr  # noqa: F401  (import aliases and registries before basicsr is used)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.checkpoint import WeightsError

    args = parser.parse_args(argv)
    retain_freed_memory()  # no page-fault storm per image (ndrsr/allocator.py)
    try:
        return run_fn(args)
    except (UsageError, WeightsError, FileNotFoundError, ValueError) as err:
        print(error_line(prog, err, flags), file=sys.stderr)
        return 2


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--tile, --tile-overlap, --device, --precision, --quiet (shared by ndrsr-restore and ndrsr-degrade)."""
    from ndrsr.tiling import DEFAULT_OVERLAP, PRECISIONS
    parser.add_argument('--tile', type=int, default=0,
                        help='tile size in pixels (multiple of 8); 0 = auto: the whole image if it has at most '
                             '768x512 pixels (CPU) or fits in half the free GPU memory, else 512 tiles (default 0)')
    parser.add_argument('--tile-overlap', type=int, default=DEFAULT_OVERLAP,
                        help='overlap of neighbouring tiles, blended with raised-cosine ramps '
                             f'(default {DEFAULT_OVERLAP})')
    parser.add_argument('--device', default='auto', help='auto (CUDA if available), cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--precision', default='auto', choices=list(PRECISIONS),
                        help='compute precision: auto = fp32 on CPU, fp16 on CUDA; fp16/bf16 need CUDA')
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


