"""Train NDR-Restore (or any BasicSR model) with BasicSR's pipeline, like Real-ESRGAN/HAT.

    python ndrsr/train.py -opt options/x.yml [--auto_resume] [--debug] [--force_yml k:k=v ...]
    torchrun --nproc_per_node=N ndrsr/train.py -opt options/x.yml --launcher pytorch

``import ndrsr`` registers ndrsr's archs/datasets/models; :func:`main` then applies
BasicSR's pipeline fixes (``ndrsr.compat.apply_pipeline_fixes``) before running it.
experiments/ and tb_logger/ go under the project root: $NDRSR_ROOT if set, else
this repository. Relative paths inside the options (datasets, pretrained weights)
resolve against the current directory, as in BasicSR.
"""
from __future__ import annotations

import os
import re
import sys
from os import path as osp
from typing import Callable, Tuple

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def project_root() -> str:
    """Where experiments/ and results/ go: $NDRSR_ROOT if set, else the repository root."""
    return osp.abspath(os.environ.get('NDRSR_ROOT') or REPO_ROOT)


def _importable_from_anywhere() -> None:
    """Run as a script, sys.path[0] is ndrsr/ itself: use the repository root instead (no shadowing)."""
    here = osp.dirname(osp.abspath(__file__))
    sys.path[:] = [p for p in sys.path if osp.abspath(p or '.') != here]
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)


def user_errors() -> Tuple[Tuple[type, ...], Tuple[type, ...]]:
    """(errors in the options, other errors the user can fix): reported as their message alone, no traceback.

    Options: unreadable or unsafe options files, options that cannot train. Others:
    data that does not match the options (missing, unpaired, unreadable, truncated
    images or LMDBs), weights that do not fit, a run that cannot be resumed as
    asked, a missing file, a non-finite loss (its message says what to do).
    Anything else is a bug and keeps its traceback.
    """
    from ndrsr.checkpoint import WeightsError
    from ndrsr.data.image_io import DataLayoutError, ImageReadError
    from ndrsr.options_io import OptionsError, OptionsFileError
    from ndrsr.resume import ResumeError
    return (OptionsFileError, OptionsError), (DataLayoutError, ImageReadError, WeightsError, ResumeError,
                                              FileNotFoundError, FloatingPointError)


def user_message(err: BaseException) -> str:
    """The message of ``err``; for one re-raised from a DataLoader worker, the original message without the
    worker's traceback."""
    text = str(err)
    marker = 'Original Traceback (most recent call last):'
    if marker in text:
        matches = list(re.finditer(rf'^\S*{re.escape(type(err).__name__)}: ', text.split(marker, 1)[1], re.M))
        if matches:
            text = text.split(marker, 1)[1][matches[-1].end():]
    return text.strip()


def run_reporting_user_errors(pipeline: Callable[[], None]) -> None:
    """Run ``pipeline``; an error the user can fix prints ``error: <message>`` on stderr and exits with status 2
    (options) or 1 (data, weights, resume, files), without a traceback."""
    options_errors, other_errors = user_errors()
    try:
        pipeline()
    except options_errors + other_errors as err:
        print(f'error: {user_message(err)}', file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(err, options_errors) else 1)


def main() -> None:
    """BasicSR's train_pipeline with ndrsr registered and the pipeline fixes applied.

    The options are checked (``ndrsr.options_check``) and a resumed run's networks compared
    (``ndrsr.resume``) before anything is created; errors the user can fix end the
    run with their message alone (:func:`run_reporting_user_errors`).
    """
    import ndrsr  # noqa: F401  (must precede basicsr.train: import aliases, registries)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.compat import apply_pipeline_fixes
    apply_pipeline_fixes()  # resume, run folders, distributed launch, option parsing (docs/compat.md)
    retain_freed_memory()  # reuse freed tensor memory instead of page-faulting it in again (ndrsr/allocator.py)
    from basicsr.train import train_pipeline
    run_reporting_user_errors(lambda: train_pipeline(project_root()))


if __name__ == '__main__':
    _importable_from_anywhere()
    main()
