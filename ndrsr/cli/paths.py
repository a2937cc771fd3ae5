"""Which files a tool reads and writes: its inputs, the checks on its outputs, and the output policy.

``ndrsr-restore`` and ``ndrsr-degrade`` take files, folders and globs
(:func:`collect_inputs`), refuse to write into an input folder or over an
input (:func:`check_output_folder`, :func:`safe_output_path`), check before
any work that the output folder can be written (:func:`check_writable`) and
that no existing file would be replaced unless ``--overwrite`` /
``--skip-existing`` says what to do (:class:`OutputPolicy`); a folder the run
created and left empty is removed (:class:`OutputFolder`).
"""
from __future__ import annotations

import glob
import os
import tempfile
from os import path as osp
from typing import Callable, Dict, List, Mapping, Sequence

from ndrsr.cli.errors import UsageError
from ndrsr.data.image_io import IMAGE_EXTENSIONS


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


def check_suffix(suffix: str, flag: str = '--suffix') -> None:
    """Refuse a file-name suffix that is a path (it would write outside the output folder)."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    if any(sep in suffix for sep in separators) or suffix in ('.', '..'):
        raise UsageError(f'{flag} {suffix!r} contains a path separator; it is appended to file names and may not '
                         f'lead out of the output folder. Use e.g. {flag} _restored.')


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

    def __init__(self, out_dir: str, overwrite: bool = False, skip_existing: bool = False,
                 complete: Callable[[str], bool] = osp.exists):
        self.out_dir, self.overwrite, self.skip_existing = out_dir, overwrite, skip_existing
        self.complete = complete  # whether an existing output is whole (a folder of maps may be partial)
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
            if outs and all(self.complete(o) for o in outs):  # done: every output of this input is there, whole
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
