"""Progress and failures of a tool run over many images: a progress bar, and one bad image never stops the rest.

:class:`Progress` shows an image and a tile progress bar; :func:`process_each`
runs the work image by image, recording each failure (:func:`describe_failure`);
:func:`report_failures` lists them at the end and gives the exit status.
"""
from __future__ import annotations

import sys
from os import path as osp
from typing import Callable, List, Sequence, Tuple

from ndrsr.cli.errors import UsageError
from ndrsr.cli.paths import OutputFolder, OutputPolicy
from ndrsr.lib.download import DISK_FULL


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
    from ndrsr.lib.integrity import IntegrityError
    if isinstance(err, (ImageReadError, OSError, IntegrityError)):
        return str(err)
    return f'{err.__class__.__name__}: {err}'


def process_each(paths: Sequence[str], work: Callable[[str], bool], progress: Progress,
                 folder: OutputFolder, policy: OutputPolicy) -> Tuple[int, List[Tuple[str, str]]]:
    """Run ``work(path)`` on every path; one bad image does not stop the others.

    ``work`` returns whether it wrote an output. A :class:`UsageError` or a full
    disk stops the run at once (the next images could not be written either);
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
            except OSError as err:
                if err.errno in DISK_FULL:
                    raise
                failures.append((path, describe_failure(err)))
                why = failures[-1][1]
                progress.write(f'FAILED {why}' if why.startswith(path) else f'FAILED {path}: {why}')
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
