"""How the tools end: one ``prog: error: ...`` line and exit status 2 for what a user can fix.

:func:`cli_main` parses, runs, and turns the errors a user can fix (usage,
weights, models, files) into one line naming the flag to change
(:func:`error_line`); Ctrl-C ends with status :data:`INTERRUPTED`, a closed
stdout pipe quietly with :data:`BROKEN_PIPE`; only bugs end in a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Mapping, Optional, Sequence

from ndrsr.glue.entry import INTERRUPTED, USAGE  # the statuses of every ndrsr program

# library argument (the ``argument`` attribute of its errors) -> the flag of the tools
RUNTIME_FLAGS = {'device': '--device', 'precision': '--precision'}
WEIGHTS_FLAGS = {'weights': '--weights', 'opt_path': '--opt', 'upscale': '--upscale',
                 'degrad_weights': '--degrad-weights', 'model': '--model', **RUNTIME_FLAGS}
BROKEN_PIPE = 141  # the shell's status for a process whose output pipe closed (128 + SIGPIPE)


class UsageError(ValueError):
    """A problem with the command line (paths, options): reported and exit status 2."""


def error_line(prog: str, err: BaseException, flags: Mapping[str, str]) -> str:
    """``prog: error: MESSAGE``, plus the command-line option to change when the library error names one.

    Library errors name the parameter the fix concerns in their ``argument``
    attribute (see :mod:`ndrsr.lib.weights`); ``flags`` maps it to this tool's flag.
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
    kind, :class:`ndrsr.lib.model_zoo.ModelUnavailableError`) and the file system's
    (OSError: missing, not writable, disk full). Ctrl-C ends with one line and
    status 130; a closed stdout pipe (``| head``) ends quietly with status 141.
    Anything else is a bug and keeps its traceback.
    """
    import ndrsr  # noqa: F401  (import aliases and registries before basicsr is used)
    from ndrsr.glue.allocator import retain_freed_memory
    from ndrsr.lib.checkpoint import WeightsError
    from ndrsr.lib.model_zoo import ModelUnavailableError

    args = parser.parse_args(argv)
    retain_freed_memory()  # no page-fault storm per image (ndrsr/glue/allocator.py)
    try:
        return run_fn(args)
    except BrokenPipeError:  # the reader of stdout went away (``| head``): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return BROKEN_PIPE
    except (UsageError, WeightsError, ModelUnavailableError, OSError, ValueError) as err:
        print(error_line(prog, err, flags), file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f'\n{prog}: interrupted', file=sys.stderr)
        return INTERRUPTED
