"""ndrsr: NDR-Restore all-in-one image restoration as a BasicSR plugin.

``import ndrsr`` applies the import aliases basicsr needs on this stack
(:func:`ndrsr.compat.apply_import_fixes`), then registers the architectures,
datasets and models in BasicSR's registries. It changes no basicsr function:
ndrsr's own entry points (``ndrsr/train.py``, ``ndrsr/test.py``, ``python -m
ndrsr.data.make_lmdb``) apply the pipeline fixes with
:func:`ndrsr.compat.apply_pipeline_fixes`.

Layout: the plugin is ``archs/``, ``data/``, ``models/``; the library is the
modules here (weights, tiling, the state-dict toolkit, conversion, resume,
compatibility); the tools are ``cli/``; ``train.py`` / ``test.py`` run BasicSR's
pipelines.
"""
from . import compat  # noqa: F401  (must come first: import aliases for basicsr)
from .archs import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from . import metrics  # noqa: F401,E402  (registers calculate_colour_shift)

__version__ = '0.1.0'
