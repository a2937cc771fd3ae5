"""Resuming a BasicSR training run: the newest complete checkpoint set, loaded where training runs.

BasicSR 1.4.2's ``basicsr.train.load_resume_state`` looks for ``--auto_resume``
states in ``./experiments`` (the current directory, not the run's root), takes
the highest ``<iter>.state`` even when a killed save truncated it, and loads it
onto CUDA. :func:`load_resume_state` is its replacement: the run's absolute
``training_states`` folder, only states whose network files are complete zip
archives too (each skip printed, nothing deleted), loaded with
``weights_only=True`` onto the current GPU when training on one, else the CPU.

:func:`ndrsr.compat.apply_pipeline_fixes` installs it in ``basicsr.train``
(ndrsr's ``train.py`` does that); docs/compat.md, fixes 2, 3 and 9.
"""
from __future__ import annotations

import os
import zipfile
from os import path as osp
from typing import Any, List, Optional, Tuple

from ndrsr.checkpoint import load_checkpoint


def _map_location(opt: dict) -> Any:
    """Where a resumed state goes: the current GPU when training on one, else the CPU."""
    import torch
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return 'cpu'


def _state_iterations(state_dir: str) -> List[int]:
    """Iterations of the ``<iter>.state`` files in ``state_dir``, newest first (temporary files ignored)."""
    if not osp.isdir(state_dir):
        return []
    iters = [int(n[:-len('.state')]) for n in os.listdir(state_dir) if n.endswith('.state') and n[:-6].isdigit()]
    return sorted(iters, reverse=True)


def _networks_complete(opt: dict, iteration: int) -> bool:
    """The network files that check_resume will load for ``iteration`` exist and are whole zip archives."""
    models = opt['path']['models']
    ignored = opt['path'].get('ignore_resume_networks') or []
    for network in (k for k in opt if k.startswith('network_') and k not in ignored):
        label = 'net_' + network[len('network_'):]
        path = osp.join(models, f'{label}_{iteration}.pth')
        saved_any = osp.isdir(models) and any(n.startswith(f'{label}_') and n.endswith('.pth')
                                              for n in os.listdir(models))
        if not saved_any:  # this network is never saved by the model (e.g. NDRModel restore_only): nothing to check
            continue
        if not (osp.isfile(path) and zipfile.is_zipfile(path)):
            return False
    return True


def _load_complete_state(path: str, map_location: Any) -> Optional[dict]:
    """Load a ``.state`` (``weights_only=True``); None if the file is truncated (a run killed while saving),
    a clear error if it is corrupt."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        return load_checkpoint(path, map_location)
    except ValueError as err:  # re-raised with what to do
        raise RuntimeError(f'cannot load training state {path}: {err.__cause__ or err}. Move it away to resume from '
                           f'an older state, or start without --auto_resume.') from err


def find_resume_state(opt: dict) -> Tuple[Optional[str], Optional[dict]]:
    """The newest complete ``.state`` of this run (absolute path, loaded) under ``opt['path']['training_states']``."""
    state_dir = opt['path']['training_states']
    location = _map_location(opt)
    for iteration in _state_iterations(state_dir):
        path = osp.join(state_dir, f'{iteration}.state')
        state = _load_complete_state(path, location) if _networks_complete(opt, iteration) else None
        if state is not None:
            return path, state
        print(f'Skip incomplete checkpoint at iteration {iteration} in {state_dir} (truncated .state or '
              f'network file; the run was probably killed while saving).', flush=True)
    return None, None


def load_resume_state(opt: dict) -> Optional[dict]:
    """basicsr.train.load_resume_state looks in ``./experiments`` (the cwd) and loads onto CUDA: use the run's
    absolute ``training_states`` folder (under root_path), only complete states, and the CPU when there is no GPU."""
    from basicsr.utils import check_resume
    if opt['auto_resume']:
        path, state = find_resume_state(opt)
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        state = None
        if path:
            if not osp.isfile(path):
                raise FileNotFoundError(f'path.resume_state {path} does not exist (relative paths are taken from '
                                        f'the current directory {os.getcwd()}).')
            state = _load_complete_state(path, _map_location(opt))
            if state is None:
                raise RuntimeError(f'path.resume_state {path} is truncated (the run was killed while saving it): '
                                   f'use an older .state, or --auto_resume which skips incomplete ones.')
    if state is None:
        return None
    check_resume(opt, state['iter'])
    return state


__all__ = ['find_resume_state', 'load_resume_state']
