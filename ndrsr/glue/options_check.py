"""Options checked before anything runs: what ``ndrsr/train.py``, ``ndrsr/test.py`` and the layout check refuse.

:func:`options_problems` lists, one line each, every problem of a (BasicSR)
options dict that would otherwise stop a run later, often after the run folder
was created, with a raw PyTorch or BasicSR error:

* sections BasicSR needs (``name``, ``num_gpu``, ``datasets``, ``path``; for
  training ``train`` and ``logger``) and its dataset keys (``train``, ``val*``);
* ndrsr's datasets (:mod:`ndrsr.data.validate`: unknown keys with the nearest
  valid name, ``gt_size`` and ``scale``, source names, ``repeat`` / ``ratio``);
* ``network_g`` / ``network_degrad`` of types ``NDRRestore`` / ``NDRDegrad``:
  unknown keys, ``upscale`` equal to ``scale``, the two networks' ``query_dim``;
* for ``model_type: NDRModel``: unknown ``train`` and ``val`` keys, the schedule;
* the scheduler: a type BasicSR builds, cosine periods that cover ``total_iter``;
* with ``data=True``, every data folder, LMDB and list file named by the
  datasets (:func:`ndrsr.data.validate.data_root_problems`) and the
  ``path.pretrain_network_*`` files.

:func:`validate_options` raises :class:`ndrsr.glue.options_io.OptionsError` with all of
them; the pipeline fixes (:func:`ndrsr.glue.compat.apply_pipeline_fixes`) call it right
after parsing the options, before BasicSR creates a folder. ``ndrsr-check``
prints the same problems (without the data part, which it checks source by
source).
"""
from __future__ import annotations

import inspect
import os
from os import path as osp
from typing import Any, Dict, List, Optional

from ndrsr.glue.options_io import OptionsError, unknown_key_problems

SCHEDULES = ('joint', 'alternating', 'restore_only')
# train: keys NDRModel (and SRModel / BaseModel under it, and train_pipeline) read
NDR_TRAIN_KEYS = ('schedule', 'pixel_opt', 'perceptual_opt', 'degrad_opt', 'optim_g', 'optim_degrad', 'grad_clip',
                  'fast_path', 'autocast', 'scheduler', 'warmup_iter', 'ema_decay', 'total_iter')
# val: keys NDRModel and train_pipeline / test_pipeline read
NDR_VAL_KEYS = ('val_freq', 'save_img', 'suffix', 'pbar', 'input_metrics', 'tile', 'tile_overlap', 'metrics')
SCHEDULERS = {'MultiStepLR': ('milestones', 'gamma', 'restarts', 'restart_weights'),
              'MultiStepRestartLR': ('milestones', 'gamma', 'restarts', 'restart_weights'),
              'CosineAnnealingRestartLR': ('periods', 'restart_weights', 'eta_min')}
NDR_NETWORKS = ('NDRRestore', 'NDRDegrad')


def network_defaults(arch: str) -> Optional[Dict[str, Any]]:
    """The keyword arguments (with their defaults) of ndrsr's network ``arch``, or None for another type."""
    if arch not in NDR_NETWORKS:
        return None
    from ndrsr.archs.ndr_degrad_arch import NDRDegrad
    from ndrsr.archs.ndr_restore_arch import NDRRestore
    cls = NDRRestore if arch == 'NDRRestore' else NDRDegrad
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != 'self'}


def required_problems(opt: dict, is_train: bool) -> List[str]:
    """The sections BasicSR's parse_options and pipelines index without asking, when missing or malformed."""
    problems = []
    required = ('name', 'num_gpu', 'datasets', 'path') + (('model_type', 'train', 'logger') if is_train else ())
    for key in required:
        if key not in opt:
            problems.append(f'{key} is missing (BasicSR needs it; see options/train_demo.yml)')
    for key in ('datasets', 'path', 'train', 'logger'):
        if key in opt and opt[key] is not None and not isinstance(opt[key], dict):
            problems.append(f'{key} must be a mapping, got {opt[key]!r}')
    if is_train and isinstance(opt.get('logger'), dict):
        for key in ('print_freq', 'save_checkpoint_freq'):
            if key not in opt['logger']:
                problems.append(f'logger.{key} is missing (BasicSR needs it)')
    return problems


def _dataset_problems(opt: dict, is_train: bool, sources: bool = True) -> List[str]:
    from ndrsr.data.validate import dataset_problems
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict):
        return []
    problems = []
    if is_train and 'train' not in datasets:
        problems.append('datasets.train is missing: training needs a training dataset')
    for key, ds in datasets.items():
        where = f'datasets.{key}'
        if is_train and key != 'train' and key.split('_')[0] != 'val':
            problems.append(f"{where}: BasicSR's training takes datasets named train, val or val_<anything>")
        problems += dataset_problems(ds, where, opt.get('scale'), sources)
    return problems


def _network_problems(opt: dict) -> List[str]:
    problems = []
    scale = opt.get('scale', 1)
    if not (isinstance(scale, int) and not isinstance(scale, bool) and scale >= 1):
        problems.append(f'scale must be an integer >= 1 (1: restoration, 2: 2x SR), got {scale!r}')
        scale = None
    nets = {}
    for key, net in opt.items():
        if not (isinstance(key, str) and key.startswith('network_')) or net is None:
            continue
        if not isinstance(net, dict):
            problems.append(f'{key} must be a mapping with a type, got {net!r}')
            continue
        defaults = network_defaults(net.get('type'))
        if defaults is None:
            continue
        problems += unknown_key_problems(net, ('type',) + tuple(defaults), key)
        nets[key] = {**defaults, **net}
        upscale = nets[key]['upscale']
        if scale is not None and upscale != scale:
            problems.append(f'{key}.upscale is {upscale} but scale is {scale}: they must be equal '
                            f'(set {key}.upscale: {scale})')
    restore, degrad = nets.get('network_g'), nets.get('network_degrad')
    schedule = (opt.get('train') or {}).get('schedule', 'joint') if isinstance(opt.get('train'), dict) else 'joint'
    if restore and degrad and restore.get('type') == 'NDRRestore' and degrad.get('type') == 'NDRDegrad' \
            and not (opt.get('is_train', True) and schedule == 'restore_only') \
            and restore['query_dim'] != degrad['query_dim']:
        problems.append(f"network_degrad.query_dim is {degrad['query_dim']} but network_g.query_dim is "
                        f"{restore['query_dim']}: NDR-Degrad reads the degradations NDR-Restore recognises, so they "
                        'must be equal')
    return problems


def _train_problems(opt: dict) -> List[str]:
    train = opt.get('train')
    if not isinstance(train, dict):
        return []
    problems = []
    if opt.get('model_type') == 'NDRModel':
        problems += unknown_key_problems(train, NDR_TRAIN_KEYS, 'train')
        schedule = train.get('schedule', 'joint')
        if schedule not in SCHEDULES:
            problems.append(f'train.schedule must be one of {list(SCHEDULES)}, got {schedule!r}')
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict):
        kind = scheduler.get('type')
        if kind not in SCHEDULERS:
            problems.append(f"train.scheduler.type {kind!r} is not one BasicSR builds: use one of {list(SCHEDULERS)}")
        else:
            problems += unknown_key_problems((k for k in scheduler if k != 'type'), SCHEDULERS[kind],
                                             f'train.scheduler ({kind})')
            problems += _scheduler_length_problems(kind, scheduler, train.get('total_iter'))
    return problems


def _scheduler_length_problems(kind: str, scheduler: dict, total_iter: Any) -> List[str]:
    problems = []
    names = ('periods', 'restart_weights') if kind == 'CosineAnnealingRestartLR' else ('restarts', 'restart_weights')
    defaults = {'periods': None, 'restarts': [0], 'restart_weights': [1]}
    lists = {}
    for name in names:
        value = scheduler.get(name, defaults[name])
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)):
            problems.append(f'train.scheduler.{name} must be a list of numbers, got {value!r}')
        else:
            lists[name] = list(value)
    if len(lists) < 2:
        return problems
    first, weights = lists[names[0]], lists['restart_weights']
    if len(first) != len(weights):
        problems.append(f'train.scheduler: {names[0]} {first} and restart_weights {weights} need the same length '
                        '(one weight per cycle)')
    if kind == 'CosineAnnealingRestartLR':
        try:
            total = int(total_iter)
        except (TypeError, ValueError):
            return problems
        covered = sum(first)
        if covered < total:
            problems.append(f'train.scheduler.periods {first} add up to {covered} but train.total_iter is '
                            f'{total}: the cosine schedule would end before training does. Make the periods add up '
                            f'to {total} (e.g. add a period of {total - covered} with its restart weight)')
    return problems


def _val_problems(opt: dict) -> List[str]:
    val = opt.get('val')
    if opt.get('model_type') != 'NDRModel' or not isinstance(val, dict):
        return []
    return unknown_key_problems(val, NDR_VAL_KEYS, 'val')


def _pretrained_problems(opt: dict) -> List[str]:
    paths = opt.get('path')
    if not isinstance(paths, dict):
        return []
    problems = []
    for key, value in paths.items():
        if isinstance(key, str) and key.startswith('pretrain_network') and isinstance(value, str) and value:
            path = osp.expanduser(value)
            if not osp.isfile(path):
                problems.append(f'path.{key}: {path} does not exist (relative paths are taken from the current '
                                'directory)')
    return problems


def options_problems(opt: dict, is_train: bool = True, data: bool = True, sources: bool = True,
                     required: bool = True) -> List[str]:
    """Every problem found in ``opt`` (a BasicSR options dict), one line each; empty when it can run.

    Args:
        is_train: check it as training options (``train``, ``logger``, a ``train`` dataset).
        data: also check the data folders / LMDBs / list files and the pretrained weights exist.
        sources: check the options of each MixedDegradationDataset source (the layout check
            parses the sources itself).
        required: check the sections BasicSR needs (the layout check skips them for a file
            that holds only datasets).
    """
    problems = _static_problems(opt, is_train, sources, required)
    if data and isinstance(opt, dict):
        problems += _data_problems(opt)
    return problems


def _static_problems(opt: dict, is_train: bool, sources: bool = True, required: bool = True) -> List[str]:
    if not isinstance(opt, dict):
        return [f'the options must be a mapping, got {type(opt).__name__}']
    problems = required_problems(opt, is_train) if required else []
    problems += _dataset_problems(opt, is_train, sources)
    problems += _network_problems(opt)
    if is_train:
        problems += _train_problems(opt)
    return problems + _val_problems(opt)


def _data_problems(opt: dict) -> List[str]:
    from ndrsr.data.validate import data_root_problems
    problems = data_root_problems(opt)
    if not (opt.get('auto_resume') or (opt.get('path') or {}).get('resume_state')):
        problems += _pretrained_problems(opt)  # a resumed run loads its own checkpoints instead
    return problems


def _console_script(name: str) -> str:
    """The console script ``name`` installed beside the interpreter running now, as the user can type it
    (relative under the current directory, e.g. .venv/bin/ndrsr-check)."""
    import sys
    exe = osp.join(osp.dirname(sys.executable), name) if sys.executable else name
    return osp.relpath(exe) if exe.startswith(os.getcwd() + os.sep) else exe


def validate_options(opt: dict, is_train: bool = True, opt_path: str = 'the options', data: bool = True) -> None:
    """Raise :class:`~ndrsr.glue.options_io.OptionsError` listing every problem of :func:`options_problems`."""
    problems = _static_problems(opt, is_train)
    data_problems = _data_problems(opt) if data and isinstance(opt, dict) else []
    if not problems and not data_problems:
        return
    footer = ''
    if any(p.endswith(')') and '(used as datasets.' in p for p in data_problems):
        footer = ('Data sets: lay them out as docs/datasets.md describes, or fix the paths (relative paths are '
                  f'taken from the current directory, {os.getcwd()}). Then check every source with:\n'
                  f'  {_console_script("ndrsr-check")} -opt {opt_path}')
    problems += data_problems
    raise OptionsError(problems, header=f'{opt_path}: {len(problems)} problem(s); nothing was run, created or '
                                        'changed:', footer=footer)


__all__ = ['SCHEDULES', 'NDR_TRAIN_KEYS', 'NDR_VAL_KEYS', 'SCHEDULERS', 'network_defaults', 'required_problems',
           'options_problems', 'validate_options']
