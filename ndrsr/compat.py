"""Make basicsr 1.4.2 work on torch 2.14 / torchvision 0.29 / numpy 2 / opencv 5
without forking it. Imported first by ``ndrsr/__init__.py``; every fix is one
function, documented in one line, idempotent, and covered by tests/test_compat.py.
"""
from __future__ import annotations

import sys
import types


def _restore_functional_tensor() -> None:
    """torchvision 0.17 removed ``transforms.functional_tensor`` that basicsr.data.degradations imports: alias it."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as tf
    module = types.ModuleType(name)
    module.rgb_to_grayscale = tf.rgb_to_grayscale
    sys.modules[name] = module


def apply_import_fixes() -> None:
    """Fixes that must be in place before ``import basicsr``."""
    _restore_functional_tensor()


apply_import_fixes()
