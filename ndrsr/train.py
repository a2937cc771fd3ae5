"""Train NDR-Restore (or any BasicSR model) with BasicSR's pipeline, like Real-ESRGAN/HAT.

    python ndrsr/train.py -opt options/x.yml [--auto_resume] [--debug] [--force_yml k:k=v ...]
    torchrun --nproc_per_node=N ndrsr/train.py -opt options/x.yml --launcher pytorch

``import ndrsr`` registers ndrsr's archs/data/models/metrics; :func:`main` then
applies BasicSR's pipeline fixes before running it (:mod:`ndrsr.glue.entry`).
experiments/ and tb_logger/ go under the project root: $NDRSR_ROOT if set, else
this repository. Relative paths inside the options (datasets, pretrained weights)
resolve against the current directory, as in BasicSR.
"""
import sys
from os import path as osp

if __name__ == '__main__':  # run as a script, sys.path[0] is ndrsr/ itself: use the repository root (no shadowing)
    sys.path[:] = [p for p in sys.path if osp.abspath(p or '.') != osp.dirname(osp.abspath(__file__))]
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))


def main() -> None:
    """BasicSR's train_pipeline with ndrsr registered and the pipeline fixes applied."""
    from ndrsr.glue.entry import run_pipeline
    run_pipeline('train')


if __name__ == '__main__':
    main()
