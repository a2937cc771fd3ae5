"""Test with BasicSR's pipeline (``python ndrsr/test.py -opt options/test_x.yml``).

Results go to <root>/results/<name>, root being $NDRSR_ROOT if set, else this
repository; relative paths inside the options resolve against the current directory. The
options are checked before anything is created; errors the user can fix (options, data,
weights) print their message alone and exit non-zero (see ndrsr/train.py).
"""
from __future__ import annotations

import sys
from os import path as osp

if __name__ == '__main__':  # run as a script: make the repository importable (see ndrsr/train.py)
    sys.path[:] = [p for p in sys.path if osp.abspath(p or '.') != osp.dirname(osp.abspath(__file__))]
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))


def main() -> None:
    """BasicSR's test_pipeline with ndrsr registered and the pipeline fixes applied."""
    import ndrsr  # noqa: F401  (must precede basicsr.test: import aliases, registries)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.compat import apply_pipeline_fixes
    apply_pipeline_fixes()  # option parsing (val.suffix), distributed launch (docs/compat.md)
    retain_freed_memory()  # reuse freed tensor memory instead of page-faulting it in again (ndrsr/allocator.py)
    from basicsr.test import test_pipeline
    from ndrsr.train import project_root, run_reporting_user_errors
    run_reporting_user_errors(lambda: test_pipeline(project_root()))  # user errors: the message, no traceback


if __name__ == '__main__':
    main()
