"""Test with BasicSR's pipeline (``python ndrsr/test.py -opt options/test_x.yml``).

Results go to <root>/results/<name>, root being $NDRSR_ROOT if set, else this
repository; relative paths inside the options resolve against the current directory. The
options are checked before anything is created; errors the user can fix (options, data,
weights) print their message alone and exit non-zero (:mod:`ndrsr.glue.entry`).
"""
import sys
from os import path as osp

if __name__ == '__main__':  # run as a script, sys.path[0] is ndrsr/ itself: use the repository root (no shadowing)
    sys.path[:] = [p for p in sys.path if osp.abspath(p or '.') != osp.dirname(osp.abspath(__file__))]
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))


def main() -> None:
    """BasicSR's test_pipeline with ndrsr registered and the pipeline fixes applied."""
    from ndrsr.glue.entry import run_pipeline
    run_pipeline('test')


if __name__ == '__main__':
    main()
