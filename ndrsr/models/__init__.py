"""Models: every ``*_model.py`` here is imported so that its classes
register in BasicSR's ``MODEL_REGISTRY``."""
import importlib
from os import path as osp

from basicsr.utils import scandir

model_folder = osp.dirname(osp.abspath(__file__))
model_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(model_folder) if v.endswith('_model.py')]
_model_modules = [importlib.import_module(f'ndrsr.models.{file_name}') for file_name in sorted(model_filenames)]
