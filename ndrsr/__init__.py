"""ndrsr: NDR-Restore all-in-one image restoration as a BasicSR plugin.

Importing the package applies the basicsr compatibility fixes first, then
registers the architectures, datasets and models in BasicSR's registries.
"""
from . import compat  # noqa: F401  (must come first)
from .archs import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403

__version__ = '0.1.0'
