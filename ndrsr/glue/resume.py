"""Resuming a BasicSR training run: the newest intact checkpoint set, the same networks, the options' schedule.

BasicSR 1.4.2's ``basicsr.train.load_resume_state`` looks for ``--auto_resume``
states in ``./experiments`` (the current directory, not the run's root), takes
the highest ``<iter>.state`` even when a killed save truncated it, and loads it
onto CUDA. :func:`load_resume_state` is its replacement:

* the run's absolute ``training_states`` folder;
* only checkpoint sets whose ``.state`` and network files are intact: whole zip
  archives whose every member matches its CRC-32 (a truncated file, or one with
  zeroed or flipped bytes, which PyTorch would load silently), older sets
  otherwise, each skip printed with its reason, nothing deleted;
* loaded with ``weights_only=True`` onto the current GPU when training on one, else the CPU;
* before anything is created or loaded into a model, the networks of the options
  are compared with the run's (its saved options copy, then the checkpoint's
  tensor shapes): a changed network is a :class:`ResumeError` that says what changed.

:func:`resume_training` replaces ``BaseModel.resume_training``: optimizers and
schedulers from the state, except that a scheduler whose options (periods,
milestones, ...) differ from the saved ones is rebuilt from the options at the
saved iteration, with a log line (extending a finished run).

:func:`ndrsr.glue.compat.apply_pipeline_fixes` installs both (ndrsr's ``train.py`` does
that); NDRModel uses :func:`resume_training` itself. docs/compat.md lists the resume fixes.
"""
from __future__ import annotations

import os
from collections import Counter
from os import path as osp
from typing import Any, Dict, List, Optional, Tuple

from ndrsr.lib.checkpoint import load_checkpoint
from ndrsr.lib.integrity import checkpoint_problem  # the zip CRC check every weights load does too


class ResumeError(RuntimeError):
    """A run that cannot be resumed as asked; the message says why and what to do."""


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


def _network_labels(opt: dict) -> List[Tuple[str, str]]:
    """(options section, checkpoint label) of the networks check_resume will load: network_g -> net_g, ..."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [(k, 'net_' + k[len('network_'):]) for k in opt if k.startswith('network_') and k not in ignored]


def _network_problem(opt: dict, iteration: int) -> Optional[str]:
    """Why a network file that check_resume will load for ``iteration`` is not intact, or None."""
    models = opt['path']['models']
    for _, label in _network_labels(opt):
        path = osp.join(models, f'{label}_{iteration}.pth')
        saved_any = osp.isdir(models) and any(n.startswith(f'{label}_') and n.endswith('.pth')
                                              for n in os.listdir(models))
        if not saved_any:  # this network is never saved by the model (e.g. NDRModel restore_only): nothing to check
            continue
        problem = checkpoint_problem(path)
        if problem is not None:
            return f'{osp.basename(path)} is {problem}'
    return None


def _load_state(path: str, map_location: Any) -> dict:
    """Load an intact ``.state`` (``weights_only=True``); a clear error if it still cannot be loaded."""
    try:
        return load_checkpoint(path, map_location)
    except ValueError as err:  # re-raised with what to do
        raise ResumeError(f'cannot load training state {path}: {err.__cause__ or err}. Move it away to resume from '
                          f'an older state, or start without --auto_resume.') from err


def find_resume_state(opt: dict) -> Tuple[Optional[str], Optional[dict]]:
    """The newest intact ``.state`` of this run (absolute path, loaded) under ``opt['path']['training_states']``.

    A set is skipped (with a printed reason; nothing is deleted) when its ``.state``
    or one of its network files is truncated or fails its CRC check.
    """
    state_dir = opt['path']['training_states']
    location = _map_location(opt)
    for iteration in _state_iterations(state_dir):
        path = osp.join(state_dir, f'{iteration}.state')
        state_problem = checkpoint_problem(path)
        problem = f'{iteration}.state is {state_problem}' if state_problem else _network_problem(opt, iteration)
        if problem is None:
            return path, _load_state(path, location)
        print(f'Skip incomplete checkpoint at iteration {iteration} in {state_dir}: {problem} (a run killed while '
              f'saving, or a damaged file); trying the previous one.', flush=True)
    return None, None


# ------------------------------------------------------------------ network changes
def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts (recursively): how options compare."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _effective_network(section: Any) -> Any:
    """A network section with ndrsr's defaults filled in (NDRRestore / NDRDegrad), so that writing a default
    explicitly is no change."""
    from ndrsr.glue.options_check import network_defaults
    if not isinstance(section, dict):
        return _plain(section)
    defaults = network_defaults(section.get('type')) or {}
    return _plain({**defaults, **section})


def saved_options(experiments_root: str) -> Tuple[Optional[str], Optional[dict]]:
    """The run's most recent saved options copy (``<root>/*.yml``, newest first) that reads as options."""
    from ndrsr.glue.options_io import OptionsFileError, load_options_file
    if not osp.isdir(experiments_root):
        return None, None
    copies = [osp.join(experiments_root, n) for n in os.listdir(experiments_root) if n.endswith(('.yml', '.yaml'))]
    for path in sorted(copies, key=lambda p: (osp.getmtime(p), p), reverse=True):
        try:
            return path, load_options_file(path)
        except OptionsFileError:
            continue
    return None, None


def _shape_changes(opt: dict, iteration: int) -> List[str]:
    """The networks of the options whose shapes do not fit the run's checkpoints at ``iteration``."""
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY

    from ndrsr.lib.checkpoint import state_dict_problems, strip_module_prefix
    changes = []
    for section, label in _network_labels(opt):
        path = osp.join(opt['path']['models'], f'{label}_{iteration}.pth')
        net_opt = opt.get(section)
        if not (isinstance(net_opt, dict) and osp.isfile(path)):
            continue
        kwargs = {k: v for k, v in net_opt.items() if k != 'type'}
        try:
            with torch.device('meta'):  # shapes only: no memory, no initialisation
                net = ARCH_REGISTRY.get(net_opt['type'])(**kwargs)
            saved = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - not decidable here; building / loading reports it later
            continue
        key = opt['path'].get(f'param_key_{section[len("network_"):]}') or 'params'
        state = saved.get(key, saved.get('params')) if isinstance(saved, dict) else None
        if not isinstance(state, dict):
            continue
        problems = state_dict_problems(net, strip_module_prefix(state))
        if problems:
            changes.append(f'{section}: the options build a network that does not fit {path} ('
                           + '; '.join(problems) + ')')
    return changes


def network_changes(opt: dict, iteration: int) -> List[str]:
    """How the networks of ``opt`` differ from those of the run being resumed, one line each (empty: the same).

    First against the run's latest saved options copy (every changed key, defaults
    filled in), else against the tensor shapes of its checkpoints at ``iteration``.
    """
    copy, saved = saved_options(opt['path']['experiments_root'])
    changes = []
    if saved is not None:
        for section, _ in _network_labels(opt):
            if section not in saved or opt.get(section) is None or saved.get(section) is None:
                continue
            old, new = _effective_network(saved[section]), _effective_network(opt[section])
            if not (isinstance(old, dict) and isinstance(new, dict)):
                if old != new:
                    changes.append(f'{section}: {old!r} in {copy}, {new!r} now')
                continue
            for key in list(old) + [k for k in new if k not in old]:
                if old.get(key) != new.get(key):
                    changes.append(f'{section}.{key}: {old.get(key)!r} in the run\'s saved options {copy}, '
                                   f'{new.get(key)!r} now')
    return changes or _shape_changes(opt, iteration)


def load_resume_state(opt: dict) -> Optional[dict]:
    """basicsr.train.load_resume_state looks in ``./experiments`` (the cwd) and loads onto CUDA: use the run's
    absolute ``training_states`` folder (under root_path), only intact states, the CPU when there is no GPU,
    and refuse a changed network before anything is created."""
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
                raise ResumeError(f'path.resume_state {path} does not exist (relative paths are taken from the '
                                  f'current directory {os.getcwd()}).')
            problem = checkpoint_problem(path)
            if problem is not None:
                what = 'truncated' if problem.startswith('truncated') else 'damaged'
                raise ResumeError(f'path.resume_state {path} is {problem}: the file is {what} (a run killed while '
                                  f'saving, or a damaged copy). Use an older .state, or --auto_resume, which skips '
                                  f'such files.')
            state = _load_state(path, _map_location(opt))
    if state is None:
        return None
    _check_optimizer_count(opt, state, path)
    changes = network_changes(opt, state['iter'])
    if changes:
        raise ResumeError(
            f'cannot resume from {path}: the network in the options is not the one this run trained:\n'
            + '\n'.join(f'  - {c}' for c in changes)
            + f"\nNothing was changed. Put the run's values back to continue it, or train the changed network as a "
              f"new run (another name:, or without --auto_resume, which archives {opt['path']['experiments_root']}).")
    check_resume(opt, state['iter'])
    return state


def _check_optimizer_count(opt: dict, state: dict, path: str) -> None:
    """NDRModel has one optimizer with train.schedule restore_only, else two; SRModel one. A state with another
    count was saved under another schedule: refused before anything is created."""
    model, schedule = opt.get('model_type'), (opt.get('train') or {}).get('schedule', 'joint')
    expected = {'SRModel': 1, 'NDRModel': 1 if schedule == 'restore_only' else 2}.get(model)
    saved = len(state.get('optimizers') or [])
    if expected is not None and saved != expected:
        raise ResumeError(f'cannot resume from {path}: it holds {saved} optimizer state(s), but {model} with these '
                          f'options has {expected} (train.schedule {schedule!r}). Was train.schedule changed? Put it '
                          'back to continue this run, or train the new schedule as a new run.')


# ------------------------------------------------------------------ schedulers
_RUNTIME_KEYS = {'last_epoch', 'base_lrs', 'verbose'}  # a scheduler's position, not its options


def _scheduler_options(state: Dict[str, Any]) -> Dict[str, Any]:
    """The options part of a scheduler's state dict (periods, milestones, weights, ...), comparable."""
    out = {}
    for key, value in state.items():
        if key in _RUNTIME_KEYS or key.startswith('_'):
            continue
        out[key] = dict(value) if isinstance(value, Counter) else _plain(value)
    return out


def resume_training(self: Any, resume_state: dict) -> None:
    """BaseModel.resume_training, with the options' scheduler kept when it differs from the saved one.

    Optimizers load as saved. Each scheduler loads its saved position (iteration,
    base learning rates); when its options (periods, milestones, restart weights,
    ...) differ from the saved ones, those of the options file are used from the
    saved iteration on, and the log says so: extending a finished run (a higher
    ``total_iter`` and longer periods) continues instead of failing in BasicSR's
    scheduler, and a changed schedule is not silently replaced by the saved one.
    """
    from basicsr.utils import get_root_logger
    optimizers, schedulers = resume_state['optimizers'], resume_state['schedulers']
    if len(optimizers) != len(self.optimizers) or len(schedulers) != len(self.schedulers):
        raise ResumeError(f'the training state has {len(optimizers)} optimizer(s) and {len(schedulers)} '
                          f'scheduler(s), the model {len(self.optimizers)} and {len(self.schedulers)}: was '
                          'train.schedule (or another option that adds or removes an optimizer) changed? Put it '
                          'back to resume this run, or start a new run.')
    for optimizer, saved in zip(self.optimizers, optimizers):
        optimizer.load_state_dict(saved)
    for i, (scheduler, saved) in enumerate(zip(self.schedulers, schedulers)):
        fresh = scheduler.state_dict()
        new, old = _scheduler_options(fresh), _scheduler_options(saved)
        if new == old:
            scheduler.load_state_dict(saved)
            continue
        scheduler.load_state_dict({**saved, **{k: fresh[k] for k in new}})
        changed = ', '.join(f'{k} {old.get(k)!r} -> {new[k]!r}' for k in new if new[k] != old.get(k))
        get_root_logger().info(f'Resume: scheduler {i} ({type(scheduler).__name__}) follows the options file from '
                               f"iteration {resume_state['iter']} on, not the saved schedule ({changed}).")


__all__ = ['ResumeError', 'checkpoint_problem', 'find_resume_state', 'network_changes', 'saved_options',
           'load_resume_state', 'resume_training']
