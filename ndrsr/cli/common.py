"""What the image tools share: inputs, output checks, progress, failure reports, the main wrapper.

``ndrsr-restore`` and ``ndrsr-degrade`` take files, folders and globs
(:func:`collect_inputs`), refuse to write into an input folder or over an
input (:func:`check_output_folder`, :func:`safe_output_path`), check before
any work that the output folder can be written (:func:`check_writable`) and
that no existing file would be replaced unless ``--overwrite`` /
``--skip-existing`` says what to do (:class:`OutputPolicy`), show an image and
a tile progress bar (:class:`Progress`), skip and report unreadable images
(:func:`describe_failure`, :func:`report_failures`), share the runtime flags
(:func:`add_runtime_arguments`) and run through :func:`cli_main`, which turns
the errors a user can fix (usage, weights, models, files) into one
``prog: error: ...`` line (exit status 2) naming the flag to change; only bugs
end in a traceback.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
from os import path as osp
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ndrsr.data.image_io import IMAGE_EXTENSIONS

# library argument (the ``argument`` attribute of its errors) -> the flag of the tools
RUNTIME_FLAGS = {'device': '--device', 'precision': '--precision'}
WEIGHTS_FLAGS = {'weights': '--weights', 'opt_path': '--opt', 'upscale': '--upscale',
                 'degrad_weights': '--degrad-weights', 'model': '--model', **RUNTIME_FLAGS}
INTERRUPTED = 130  # the shell's status for a process stopped by Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # the shell's status for a process whose output pipe closed (128 + SIGPIPE)


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


def check_writable(target: str, what: str = 'the output folder', flag: str = '-o/--output',
                   folder: bool = True) -> None:
    """Refuse, before any work, an output that cannot be written; creates nothing.

    ``target`` is a folder (``folder=True``: it may exist, as a folder, or be
    created) or a file path (its folder may be created). The nearest existing
    folder on the way is tried with a temporary file (permissions, read-only
    file systems, ``root`` included). Raises UsageError naming ``flag``.
    """
    if folder and osp.exists(target) and not osp.isdir(target):
        raise UsageError(f'{what} {target} is a file, not a folder. Choose a folder for {flag} '
                         f'(it is created if missing).')
    if not folder and osp.isdir(target):
        raise UsageError(f'{what} {target} is a folder; give a file name for {flag}.')
    probe = osp.abspath(target if folder else osp.dirname(osp.abspath(target)))
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        raise UsageError(f'cannot create {what} {target}: {probe} is a file, not a folder. Choose another {flag}.')
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UsageError(f'cannot write {what} {target}: a file cannot be created in {probe} '
                         f'({err.strerror or err}). Choose another {flag}.') from None


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--overwrite / --skip-existing (exclusive): what to do with outputs that already exist."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--overwrite', action='store_true', help='replace output files that already exist')
    group.add_argument('--skip-existing', action='store_true',
                       help='keep output files that already exist and process only the other inputs (resume a '
                            'big folder)')


def name_list(paths: Sequence[str], limit: int = 10) -> str:
    """``a.png, b.png, ... and 3 more`` (base names)."""
    names = [osp.basename(p.rstrip('/' + os.sep)) for p in paths]
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


class OutputExistsError(FileExistsError):
    """An output file exists and neither --overwrite nor --skip-existing was given."""


class OutputPolicy:
    """Existing outputs: refused (default), replaced (``--overwrite``) or kept (``--skip-existing``).

    :meth:`plan` is called before any work with each input's expected outputs
    and returns the inputs to process; :meth:`claim` is called just before an
    output is written (its exact name may depend on the image, e.g. a JPEG with
    alpha is written as PNG). ``kept`` lists the outputs left as they were.
    """

    def __init__(self, out_dir: str, overwrite: bool = False, skip_existing: bool = False):
        self.out_dir, self.overwrite, self.skip_existing = out_dir, overwrite, skip_existing
        self.kept: List[str] = []

    def plan(self, outputs: Mapping[str, Sequence[str]]) -> List[str]:
        """``outputs``: input -> its output paths. The inputs to process (all, or those not done yet).

        Raises UsageError listing the existing outputs when neither flag was given.
        """
        existing = {p: [o for o in outs if osp.exists(o)] for p, outs in outputs.items()}
        clashes = [o for outs in existing.values() for o in outs]
        if not clashes or self.overwrite:
            return list(outputs)
        if not self.skip_existing:
            raise UsageError(f'{len(clashes)} output(s) already exist in {self.out_dir}: {name_list(clashes)}. '
                             f'Nothing was written. Pass --overwrite to replace them, or --skip-existing to keep '
                             f'them and process the other inputs.')
        todo = []
        for p, outs in outputs.items():
            if outs and len(existing[p]) == len(outs):  # done: every output of this input is there
                self.kept += existing[p]
            else:
                todo.append(p)
        return todo

    def claim(self, out_path: str) -> bool:
        """Whether to write ``out_path`` (False: it exists and is kept). Raises OutputExistsError if refused."""
        if not osp.exists(out_path) or self.overwrite:
            return True
        if self.skip_existing:
            self.kept.append(out_path)
            return False
        raise OutputExistsError(f'{out_path} already exists (not replaced; pass --overwrite to replace it, or '
                                f'--skip-existing to keep it)')

    def report(self) -> None:
        """One line on stdout naming the outputs that were kept, if any."""
        if self.kept:
            print(f'kept {len(self.kept)} existing output(s) (--skip-existing): {name_list(self.kept)}')


class OutputFolder:
    """The output folder, created by the first write; removed at :meth:`close` if this run created it and left
    it empty (nothing is left behind when nothing was produced)."""

    def __init__(self, path: str):
        self.path = path
        self.existed = osp.isdir(path)

    def close(self) -> None:
        if not self.existed and osp.isdir(self.path):
            try:
                os.rmdir(self.path)  # only succeeds when empty
            except OSError:
                pass


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


def process_each(paths: Sequence[str], work: Callable[[str], bool], progress: 'Progress',
                 folder: 'OutputFolder', policy: 'OutputPolicy') -> Tuple[int, List[Tuple[str, str]]]:
    """Run ``work(path)`` on every path; one bad image does not stop the others.

    ``work`` returns whether it wrote an output. A :class:`UsageError` stops the run;
    any other error is recorded (and printed above the progress bar) as a failure of
    that image. The progress bar and ``folder`` are closed and ``policy`` reports the
    kept files whatever happens. Returns (images written, [(path, why)] failures).
    """
    failures: List[Tuple[str, str]] = []
    written = 0
    try:
        for path in paths:
            try:
                written += bool(work(path))
            except UsageError:
                raise
            except Exception as err:  # noqa: BLE001 - one bad image must not stop the others
                failures.append((path, describe_failure(err)))
                why = failures[-1][1]
                progress.write(f'FAILED {why}' if why.startswith(path) else f'FAILED {path}: {why}')
            progress.image_done(osp.basename(path))
    finally:
        progress.close()
        folder.close()
    policy.report()
    return written, failures


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
    """Parse, run, and turn the errors a user can fix into one ``prog: error: ...`` line and exit status 2.

    Those are usage, weights, options and model errors (ValueError and its
    kind, :class:`ndrsr.model_zoo.ModelUnavailableError`) and the file system's
    (OSError: missing, not writable, disk full). Ctrl-C ends with one line and
    status 130; a closed stdout pipe (``| head``) ends quietly with status 141.
    Anything else is a bug and keeps its traceback.
    """
    import ndrsr  # noqa: F401  (import aliases and registries before basicsr is used)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.checkpoint import WeightsError
    from ndrsr.model_zoo import ModelUnavailableError

    args = parser.parse_args(argv)
    retain_freed_memory()  # no page-fault storm per image (ndrsr/allocator.py)
    try:
        return run_fn(args)
    except BrokenPipeError:  # the reader of stdout went away (``| head``): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return BROKEN_PIPE
    except (UsageError, WeightsError, ModelUnavailableError, OSError, ValueError) as err:
        print(error_line(prog, err, flags), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'\n{prog}: interrupted', file=sys.stderr)
        return INTERRUPTED


# ----------------------------------------------------------------------------- models and weights
def add_model_arguments(parser: argparse.ArgumentParser, weights_help: str) -> None:
    """--model NAME / -w --weights FILE (exclusive); neither: the default model."""
    from ndrsr.model_zoo import DEFAULT_MODEL, describe_models
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
    from ndrsr.model_zoo import DEFAULT_MODEL, resolve_model
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
    """--tile, --tile-overlap, --device, --precision, --quiet (shared by ndrsr-restore and ndrsr-degrade)."""
    from ndrsr.tiling import DEFAULT_OVERLAP, PRECISIONS
    parser.add_argument('--tile', type=pixels, default=0,
                        help='tile size in pixels (multiple of 8); 0 = auto: the whole image if it has at most '
                             '768x512 pixels (CPU) or fits in half the free GPU memory, else 512 tiles (default 0)')
    parser.add_argument('--tile-overlap', type=pixels, default=DEFAULT_OVERLAP,
                        help='overlap of neighbouring tiles, blended with raised-cosine ramps '
                             f'(default {DEFAULT_OVERLAP})')
    parser.add_argument('--device', default='auto', help='auto (CUDA if available), cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--precision', default='auto', choices=list(PRECISIONS),
                        help='compute precision: auto = fp32 on CPU, fp16 on CUDA; fp16/bf16 need CUDA')
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


