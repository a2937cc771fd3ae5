"""The state-dict toolkit: checkpoint files and the state dicts inside them, in one place.

Files
    :func:`load_checkpoint` loads on the CPU (or ``map_location``) with
    ``weights_only=True``: checkpoints may come from others. Every zip member's
    CRC-32 is checked first (:mod:`ndrsr.lib.integrity`), and a file that cannot
    be loaded is named for what it is (HTML, zero-filled, a pickle with code ...).
    :func:`atomic_write` / :func:`atomic_torch_save` write to ``<path>.tmp-<pid>``
    and rename it over ``<path>`` only once complete, so a process killed while
    saving never leaves a truncated file where a good one was (``os.replace`` is
    atomic on POSIX and Windows); ``replace=False`` creates ``<path>`` only if no
    file has that name (a hard link: exclusive). A full disk is an OSError whose
    message is ``no space left on the device writing <path>``.
State dicts
    :func:`strip_module_prefix` (DataParallel / DDP's ``module.``),
    :func:`find_state_dict` (a state dict nested under ``params_ema``,
    ``params``, ``state_dict``, ...), :func:`state_dict_problems` (does it fit a
    network), :func:`infer_restore_options` / :func:`infer_degrad_options`
    (NDRRestore / NDRDegrad keyword arguments implied by the tensor shapes).

Used by the model (saving and loading during training), the resume logic, the
released-checkpoint converter (:mod:`ndrsr.lib.convert`) and the weights loader
(:mod:`ndrsr.lib.weights`). Depends on torch only.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ndrsr.lib.download import DISK_FULL, disk_full_message
from ndrsr.lib.integrity import checkpoint_problem, describe_unloadable, starts_like_zip

# Keys under which checkpoints nest their state dict, most specific first (BasicSR: params_ema, params).
NESTED_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net', 'network')
DDP_PREFIX = 'module.'
RESTORE_FFN_EXPANSION = 2.66  # NDRRestore's default (the released network's) feed-forward expansion


class WeightsError(ValueError):
    """Weights that cannot be used: the message names the file and the fix.

    ``argument`` names the parameter of the library call that the fix concerns
    (``'weights'``, ``'opt_path'``, ``'degrad_weights'``, ``'upscale'``, ...), or
    None; command-line tools turn it into their flag.
    """

    def __init__(self, message: str, argument: Optional[str] = None):
        super().__init__(message)
        self.argument = argument


# ----------------------------------------------------------------------------- files
def disk_full_error(err: OSError, path: str) -> OSError:
    """``err`` as the OSError said for a full disk (its errno kept), naming ``path``."""
    full = OSError(disk_full_message(path))
    full.errno = err.errno
    return full


def _create_exclusive(tmp: str, path: str) -> None:
    """Give the complete file ``tmp`` the name ``path`` only if no file has it (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise FileExistsError(f'{path} already exists (written meanwhile by another run?); it was not '
                              f'replaced') from None
    except OSError as err:  # a file system without hard links: claim the name, then rename over the claim
        if err.errno in DISK_FULL:
            raise
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        raise FileExistsError(f'{path} already exists (written meanwhile by another run?); it was not '
                              f'replaced') from None
    os.replace(tmp, path)


def atomic_write(path: str, write: Callable[[str], None], tmp: Optional[str] = None, replace: bool = True) -> None:
    """Call ``write(tmp)`` to produce the file, then rename it to ``path``: all or nothing.

    ``tmp`` defaults to ``<path>.tmp-<pid>`` (what NDRModel clears after a kill);
    it must be in the same folder as ``path``. The data is flushed to disk
    before the rename; on any error the temporary file is removed.
    ``replace=False``: ``path`` is created only if no file has that name, else
    FileExistsError (two runs writing one file: the first one's stays). A full
    disk raises the OSError of :func:`disk_full_error`.
    """
    tmp = tmp or f'{path}.tmp-{os.getpid()}'
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _create_exclusive(tmp, path)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise disk_full_error(err, path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, all or nothing (see :func:`atomic_write`).

    Saved through an open file, so that a write error reaches here as the
    OSError it is (torch's own file writer reports a full disk as
    ``unexpected pos``).
    """
    def save(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            try:
                torch.save(obj, f)
            except RuntimeError as err:  # torch's writer fails after the file's write did: the OSError is the news
                if isinstance(err.__context__, OSError):
                    raise err.__context__ from None
                raise

    atomic_write(path, save)


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True``, after checking every zip member's CRC-32.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: truncated, corrupt (a member fails its CRC), or not plain
            tensors and containers; the message says what the file is.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}. Check the path.')
    problem = checkpoint_problem(path) if starts_like_zip(path) else None
    if problem is None:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - said in words; torch's text would advise weights_only=False
            what = describe_unloadable(path, err)
    else:
        what = f'is {problem}'
    raise WeightsError(f'cannot load checkpoint {path}: the file {what}. Get it again from its source (a shipped '
                       f'model: reinstall ndrsr); ndrsr loads only tensors, never code.')


# ----------------------------------------------------------------------------- state dicts
def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def strip_module_prefix(state: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """The state dict with DataParallel / DistributedDataParallel's ``module.`` key prefix removed."""
    n = len(DDP_PREFIX)
    return OrderedDict((k[n:] if k.startswith(DDP_PREFIX) else k, v) for k, v in state.items())


def find_state_dict(obj: Any, accept: Callable[[Any], bool] = is_state_dict, keys: Sequence[str] = NESTED_KEYS,
                    depth: int = 3) -> Tuple[Optional[Mapping], Tuple[str, ...]]:
    """The first mapping ``accept`` takes: ``obj`` itself or one nested under ``keys`` (in that order).

    Looks at most ``depth`` levels down. Returns (the mapping, the keys that led
    to it), or (None, ()) when nothing is accepted.
    """
    if accept(obj):
        return obj, ()
    if depth > 0 and isinstance(obj, Mapping):
        for key in keys:
            if isinstance(obj.get(key), Mapping):
                found, where = find_state_dict(obj[key], accept, keys, depth - 1)
                if found is not None:
                    return found, (key,) + where
    return None, ()


def state_dict_problems(net: nn.Module, state: Mapping[str, torch.Tensor], limit: int = 3) -> List[str]:
    """Why ``state`` does not load strictly into ``net``: missing, unexpected and mis-shaped keys (empty: fits)."""
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys (e.g. {missing[:limit]})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys (e.g. {unexpected[:limit]})')
    if wrong:
        problems.append(f'{len(wrong)} shape mismatches (e.g. ' + ', '.join(
            f'{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}' for k in wrong[:limit]) + ')')
    return problems


# ----------------------------------------------------------------------------- network options from shapes
def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered children ``prefix<i>.`` the state dict has."""
    return len({k[len(prefix):].split('.')[0] for k in state if k.startswith(prefix)})


def ffn_expansion(dim: int, hidden: int) -> float:
    """The feed-forward expansion factor that gives ``hidden = int(dim * factor)`` channels."""
    return RESTORE_FFN_EXPANSION if int(dim * RESTORE_FFN_EXPANSION) == hidden else (hidden + 0.5) / dim


def _injection_options(state: Mapping[str, torch.Tensor]) -> dict:
    if 'inject.0.cp_degradation.height_proj.weight' in state:
        return dict(cp_rank=state['inject.0.cp_degradation.height_proj.weight'].shape[0])
    if 'inject.0.fuse.weight' in state:
        return dict(injection_mode='concat')
    return dict(injection_mode='conv')


def infer_restore_options(state: Mapping[str, torch.Tensor]) -> dict:
    """NDRRestore keyword arguments implied by the shapes of its state dict.

    Options equal to the default ablation modes (``query_mode: ndr``,
    ``injection_mode: cp``) and ``upscale: 1`` are left out.

    Raises:
        WeightsError: a key the sizes are read from is missing (argument ``opt_path``:
            the options must be given instead).
    """
    try:
        dim = state['embed.weight'].shape[0]
        levels = ('encoder1', 'encoder2', 'encoder3', 'latent')
        opt = dict(
            dim=dim,
            num_blocks=[_count(state, f'{n}.') for n in levels],
            num_refinement_blocks=_count(state, 'refinement.'),
            heads=[state[f'{n}.0.attn.temperature'].shape[0] for n in levels],
            ffn_expansion_factor=ffn_expansion(dim, state['encoder1.0.ffn.project_out.weight'].shape[1]))
        if 'ndr.atoms' in state:
            opt.update(ndr_atoms=state['ndr.atoms'].shape[1], ndr_dim=state['ndr.atoms'].shape[2],
                       query_dim=state['query.0.project.weight'].shape[0])
        elif 'query.0.to_query.weight' in state:
            opt.update(query_mode='no_ndr', ndr_dim=state['query.0.to_query.weight'].shape[0],
                       query_dim=state['query.0.project.weight'].shape[0])
        else:
            opt.update(query_mode='conv', query_dim=state['query.0.conv.weight'].shape[0])
        opt.update(_injection_options(state))
        if 'upsampler.0.weight' in state:
            opt['upscale'] = int(round(math.sqrt(state['upsampler.0.weight'].shape[0] / (2 * dim))))
        return opt
    except KeyError as err:
        raise WeightsError(f'cannot infer the NDRRestore sizes from the state dict (key {err} missing); '
                           f'give the options the network was trained with.', argument='opt_path') from None


def infer_degrad_options(state: Mapping[str, torch.Tensor]) -> dict:
    """NDRDegrad keyword arguments implied by the shapes of its state dict (defaults left out, as above).

    Raises:
        WeightsError: as :func:`infer_restore_options`.
    """
    try:
        opt = dict(dim=state['embed.weight'].shape[0])
        if 'inject.0.embed.weight' in state:
            opt['query_dim'] = state['inject.0.embed.weight'].shape[1]
        opt.update(_injection_options(state))
        opt['ca_reduction'] = state['refinement.conv1.weight'].shape[0] // \
            state['refinement.attention.squeeze.weight'].shape[0]
        upscale = int(round(math.sqrt(state['embed.weight'].shape[1] / 3)))
        if upscale != 1:
            opt['upscale'] = upscale
        return opt
    except KeyError as err:
        raise WeightsError(f'cannot infer the NDRDegrad sizes from the state dict (key {err} missing); '
                           f'give the options the network was trained with.', argument='opt_path') from None


__all__ = ['NESTED_KEYS', 'WeightsError', 'atomic_write', 'atomic_torch_save', 'disk_full_error', 'load_checkpoint',
           'is_state_dict', 'strip_module_prefix', 'find_state_dict', 'state_dict_problems', 'ffn_expansion',
           'infer_restore_options', 'infer_degrad_options']
