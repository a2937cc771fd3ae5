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
import sys
from os import path as osp

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


def main() -> None:
    """BasicSR's train_pipeline with ndrsr registered and the pipeline fixes applied."""
    import ndrsr  # noqa: F401  (must precede basicsr.train: import aliases, registries)
    from ndrsr.allocator import retain_freed_memory
    from ndrsr.compat import apply_pipeline_fixes
    apply_pipeline_fixes()  # resume, run folders, distributed launch, option parsing (docs/compat.md)
    retain_freed_memory()  # reuse freed tensor memory instead of page-faulting it in again (ndrsr/allocator.py)
    from basicsr.train import train_pipeline
    train_pipeline(project_root())


if __name__ == '__main__':
    _importable_from_anywhere()
    main()
