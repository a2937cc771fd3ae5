"""Architectures: every ``*_arch.py`` here is imported so that its classes
register in BasicSR's ``ARCH_REGISTRY`` (the BasicSR plugin convention)."""
import importlib
from os import path as osp

from basicsr.utils import scandir

arch_folder = osp.dirname(osp.abspath(__file__))
arch_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(arch_folder) if v.endswith('_arch.py')]
_arch_modules = [importlib.import_module(f'ndrsr.archs.{file_name}') for file_name in sorted(arch_filenames)]

from .ndr_degrad_arch import NDRDegrad  # noqa: E402
from .ndr_restore_arch import NDRRestore  # noqa: E402

__all__ = ['NDRRestore', 'NDRDegrad']
