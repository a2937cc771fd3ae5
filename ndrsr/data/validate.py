"""The options of ndrsr's datasets checked without reading any image: one validation for training and the check.

:class:`~ndrsr.data.mixed_degradation_dataset.MixedDegradationDataset`,
:class:`~ndrsr.data.task_val_dataset.TaskValidationDataset`, the layout check
(``ndrsr-check``) and the checks ``ndrsr/train.py`` runs before it
creates anything (:mod:`ndrsr.glue.options_check`) all use these functions, so they
accept and refuse the same options.

* :func:`dataset_problems`: unknown keys (with the nearest valid name), ``gt_size``
  and ``scale``, source names, ``ratio`` on all sources or none, and each source's
  own options (:func:`ndrsr.data.sources.source_problems`, which ``parse_source``
  raises too).
* :func:`data_root_problems`: every data folder, LMDB and ``meta_info_file`` named
  by the options that is missing or unusable, all of them at once.
"""
from __future__ import annotations

from os import path as osp
from typing import Any, Dict, List, Optional

from ndrsr.glue.options_io import unknown_key_problems

from .image_io import GRAY_MODES, lmdb_problem
from .sources import SOURCE_KEYS, UNPAIRED_MODES, choice_problems, is_int, source_name, source_problems

# Keys BasicSR itself reads or adds in a dataset's options (build_dataloader, train_pipeline, parse_options);
# use_shuffle is read by older BasicSR versions and appears in many option files.
LOADER_KEYS = ('type', 'name', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu', 'dataset_enlarge_ratio',
               'prefetch_mode', 'pin_memory', 'persistent_workers', 'num_prefetch_queue', 'use_shuffle')
SMALL_MODES = ('error', 'pad')
MIXED_KEYS = LOADER_KEYS + ('gt_size', 'use_hflip', 'use_rot', 'io_backend', 'sources', 'gray', 'small_images',
                            'unpaired')
VALIDATION_KEYS = LOADER_KEYS + tuple(k for k in SOURCE_KEYS if k not in LOADER_KEYS) + ('seed', 'gray')
NDR_DATASETS = ('MixedDegradationDataset', 'TaskValidationDataset')


def mixed_dataset_problems(ds: dict, where: str, scale: Optional[int] = None, sources: bool = True) -> List[str]:
    """What is wrong with a MixedDegradationDataset's options (``scale``: the top-level scale, when ``ds`` has
    none; ``sources``: also check each source's own options)."""
    problems = unknown_key_problems(ds, MIXED_KEYS, where)
    scale = ds.get('scale', 1 if scale is None else scale)
    if not is_int(scale) or scale < 1:
        problems.append(f'{where}: scale must be an integer >= 1, got {scale!r}')
        scale = None
    gt_size = ds.get('gt_size')
    if gt_size is None:
        problems.append(f'{where}: gt_size (the training crop) is required, e.g. gt_size: 128')
    elif not is_int(gt_size) or gt_size < 1:
        problems.append(f'{where}: gt_size must be a positive integer, got {gt_size!r}')
    elif scale and gt_size % scale:
        problems.append(f'{where}: gt_size {gt_size} must be a multiple of scale {scale} (the lq crop is '
                        f'gt_size / scale), e.g. gt_size: {gt_size - gt_size % scale or scale}')
    problems += choice_problems(ds, 'gray', GRAY_MODES, 'convert', where)
    problems += choice_problems(ds, 'small_images', SMALL_MODES, 'error', where)
    problems += choice_problems(ds, 'unpaired', UNPAIRED_MODES, 'error', where)
    specs = ds.get('sources')
    if not specs or not isinstance(specs, (list, tuple)):
        problems.append(f'{where}: sources must be a non-empty list of sources (see docs/datasets.md)')
        return problems
    labels = [f"{where} source {i} '{source_name(s) if isinstance(s, dict) else '?'}'" for i, s in enumerate(specs)]
    if sources:
        for spec, label in zip(specs, labels):
            problems += source_problems(spec, label)
    dicts = [s for s in specs if isinstance(s, dict)]
    names = [source_name(s) for s in dicts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f'{where}: source names must be unique, {duplicates} appear more than once; give each '
                        'source its own name')
    without = [source_name(s) for s in dicts if s.get('ratio') is None]
    if without and len(without) < len(dicts):
        problems.append(f'{where}: some sources set ratio and others do not ({without}); either give every source '
                        'a ratio (target proportions) or use repeat (copies per epoch) everywhere')
    return problems


def validation_dataset_problems(ds: dict, where: str, sources: bool = True) -> List[str]:
    """What is wrong with a TaskValidationDataset's options (``sources``: also its source options: synthesize,
    pairing, ...)."""
    problems = unknown_key_problems(ds, VALIDATION_KEYS, where)
    problems += choice_problems(ds, 'gray', GRAY_MODES, 'convert', where)
    if sources:
        problems += [p for p in source_problems({k: v for k, v in ds.items() if k in SOURCE_KEYS}, where)
                     if p not in problems]
    return problems


def dataset_problems(ds: Any, where: str, scale: Optional[int] = None, sources: bool = True) -> List[str]:
    """The problems of one ``datasets.<key>`` entry of ndrsr's types (other types: none; they are BasicSR's)."""
    if not isinstance(ds, dict):
        return [f'{where}: must be a mapping of dataset options, got {ds!r}']
    if ds.get('type') == 'MixedDegradationDataset':
        return mixed_dataset_problems(ds, where, scale, sources)
    if ds.get('type') == 'TaskValidationDataset':
        return validation_dataset_problems(ds, where, sources)
    return []


def _backend(spec: dict, default: str) -> str:
    io = spec.get('io_backend')
    return io.get('type', 'disk') if isinstance(io, dict) and io else default


def _roots(ds: dict):
    """(label, option, path, backend) of every folder / LMDB / list file a dataset's options name."""
    default_io = _backend(ds, 'disk')
    if ds.get('type') == 'MixedDegradationDataset':
        entries = [(f" source {i} '{source_name(s)}'", s) for i, s in enumerate(ds.get('sources') or [])
                   if isinstance(s, dict)]
    else:
        entries = [('', ds)]
    for label, spec in entries:
        backend = _backend(spec, default_io)
        for option in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            value = spec.get(option)
            if isinstance(value, str) and value:
                yield label, option, osp.expanduser(value), 'file' if option == 'meta_info_file' else backend


def data_root_problems(opt: dict) -> List[str]:
    """Every data folder, LMDB or meta_info_file of ``opt['datasets']`` that is missing or unusable, one line per
    path (naming every dataset and source that uses it).

    Relative paths are taken from the current directory, as BasicSR does. LMDBs are checked for an empty,
    truncated or invalid ``data.mdb`` (:func:`ndrsr.data.image_io.lmdb_problem`) without reading their images.
    """
    found: Dict[str, List[str]] = {}
    uses: Dict[str, List[str]] = {}
    datasets = opt.get('datasets')
    for key, ds in (datasets.items() if isinstance(datasets, dict) else ()):
        if not isinstance(ds, dict):
            continue
        for label, option, path, backend in _roots(ds):
            if path not in found:
                found[path] = _root_problem(path, backend)
            uses.setdefault(path, []).append(f'datasets.{key}{label} {option}')
    return [f"{problem} (used as {'; '.join(uses[path])})" for path, problem in found.items() if problem]


def _root_problem(path: str, backend: str) -> Optional[str]:
    if not osp.exists(path):
        return f'{path} does not exist'
    if backend == 'file':
        return None if osp.isfile(path) else f'{path} is not a file'
    if not osp.isdir(path):
        return f'{path} is a file, not a folder'
    if backend == 'lmdb':
        problem = lmdb_problem(path)
        if problem is not None:
            return f'{problem}; rebuild it with ndrsr-make-lmdb'
    return None


__all__ = ['LOADER_KEYS', 'MIXED_KEYS', 'VALIDATION_KEYS', 'NDR_DATASETS', 'SMALL_MODES', 'source_name',
           'source_problems', 'mixed_dataset_problems', 'validation_dataset_problems', 'dataset_problems',
           'data_root_problems']
