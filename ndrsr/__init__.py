"""ndrsr: NDR-Restore all-in-one image restoration as a BasicSR plugin.

``import ndrsr`` applies the import aliases basicsr needs on this stack
(:func:`ndrsr.glue.compat.apply_import_fixes`), then registers the
architectures, datasets, models and metrics in BasicSR's registries. It changes
no basicsr function: ndrsr's own entry points (``ndrsr/train.py``,
``ndrsr/test.py``, ``ndrsr-make-lmdb``) apply the pipeline fixes with
:func:`ndrsr.glue.compat.apply_pipeline_fixes`.

Layout: the plugin is ``archs/``, ``data/``, ``models/``, ``metrics/``; the
inference library is ``lib/``; the BasicSR glue (compatibility, resume, options
checks, the entry points' start) is ``glue/``; the tools are ``cli/``;
``train.py`` / ``test.py`` run BasicSR's pipelines.
"""
from .glue import compat  # noqa: F401  (must come first: import aliases for basicsr)
from .archs import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from . import metrics  # noqa: F401,E402  (registers the colour metrics)

__version__ = '0.1.0'
