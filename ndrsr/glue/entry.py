"""The start that ``ndrsr/train.py`` and ``ndrsr/test.py`` share: BasicSR's pipeline, ndrsr's fixes, user errors.

:func:`run_pipeline` applies BasicSR's pipeline fixes
(:func:`ndrsr.glue.compat.apply_pipeline_fixes`) and the allocator setting
(:func:`ndrsr.glue.allocator.retain_freed_memory`), then runs BasicSR's
``train_pipeline`` or ``test_pipeline`` rooted at :func:`project_root`; errors
the user can fix end the run with one ``prog: error: MESSAGE`` line and exit
status :data:`USAGE`, Ctrl-C with ``prog: interrupted`` and :data:`INTERRUPTED`
(:func:`run_reporting_user_errors`), as the command-line tools do.
"""
from __future__ import annotations

import os
import re
import sys
from os import path as osp
from typing import Callable, Tuple

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir, osp.pardir))
# exit statuses of every ndrsr program (train.py, test.py, the tools, the app)
USAGE = 2  # an error the user can fix (options, data, weights, files): argparse's status for a bad command line
INTERRUPTED = 130  # stopped by Ctrl-C: the shell's status for a process ended by SIGINT (128 + 2)


def project_root() -> str:
    """Where experiments/ and results/ go: $NDRSR_ROOT if set, else the repository root."""
    return osp.abspath(os.environ.get('NDRSR_ROOT') or REPO_ROOT)


def user_errors() -> Tuple[type, ...]:
    """The errors the user can fix: reported as one line, no traceback.

    Unreadable or unsafe options files, options that cannot train, data that
    does not match the options (missing, unpaired, unreadable, truncated images
    or LMDBs), weights that do not fit, a run that cannot be resumed as asked, a
    missing file, a non-finite loss (its message says what to do); a full disk
    too (:func:`run_reporting_user_errors`). Anything else is a bug and keeps
    its traceback.
    """
    from ndrsr.lib.checkpoint import WeightsError
    from ndrsr.data.image_io import DataLayoutError, ImageReadError
    from ndrsr.glue.options_io import OptionsError, OptionsFileError
    from ndrsr.glue.resume import ResumeError
    return (OptionsFileError, OptionsError, DataLayoutError, ImageReadError, WeightsError, ResumeError,
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


def run_reporting_user_errors(pipeline: Callable[[], None], prog: str) -> None:
    """Run ``pipeline``; an error the user can fix prints ``prog: error: MESSAGE`` on stderr and exits with
    :data:`USAGE`, Ctrl-C prints ``prog: interrupted`` and exits with :data:`INTERRUPTED`; no traceback."""
    from ndrsr.lib.download import DISK_FULL
    try:
        pipeline()
    except user_errors() as err:
        print(f'{prog}: error: {user_message(err)}', file=sys.stderr, flush=True)
        sys.exit(USAGE)
    except OSError as err:  # a full disk (a checkpoint, a log): its one line; other OS errors keep the traceback
        if err.errno not in DISK_FULL:
            raise
        print(f'{prog}: error: {err}', file=sys.stderr, flush=True)
        sys.exit(USAGE)
    except KeyboardInterrupt:
        print(f'\n{prog}: interrupted', file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED)


def run_pipeline(kind: str) -> None:
    """BasicSR's ``train_pipeline`` (``kind='train'``) or ``test_pipeline`` (``'test'``) with ndrsr registered.

    The options are checked (:mod:`ndrsr.glue.options_check`) and a resumed run's networks compared
    (:mod:`ndrsr.glue.resume`) before anything is created (the pipeline fixes do it).
    """
    import ndrsr  # noqa: F401  (must precede basicsr.train / basicsr.test: import aliases, registries)
    from ndrsr.glue.allocator import retain_freed_memory
    from ndrsr.glue.compat import apply_pipeline_fixes
    apply_pipeline_fixes()  # resume, run folders, distributed launch, option parsing (docs/compat.md)
    retain_freed_memory()  # reuse freed tensor memory instead of page-faulting it in again
    if kind == 'train':
        from basicsr.train import train_pipeline as pipeline
    elif kind == 'test':
        from basicsr.test import test_pipeline as pipeline
    else:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    run_reporting_user_errors(lambda: pipeline(project_root()), prog=f'{kind}.py')
