"""The released NDR-Restore checkpoint, renamed into ndrsr's two networks.

The released file holds one state dict of the combined network, with keys
prefixed ``restoration_net.`` / ``degradation_net.`` plus the shared NDR
``degradation_representations`` (also stored as ``restoration_net.dr``).
This module renames every key to ndrsr's module names (:func:`rename_released`);
:func:`convert_released` then sizes both networks from the tensor shapes and
checks that they load strictly, with the state-dict toolkit of
:mod:`ndrsr.lib.checkpoint`. :func:`convert_file` writes

    OUT_DIR/net_g.pth          {'params': NDRRestore state dict}
    OUT_DIR/net_degrad.pth     {'params': NDRDegrad state dict}
    OUT_DIR/network_options.yml  the network_g / network_degrad options to use

Command line: ``ndrsr-convert RELEASED.pth OUT_DIR`` (the tool is
:mod:`ndrsr.cli.convert`).
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.lib.checkpoint import (NESTED_KEYS, WeightsError, atomic_torch_save, atomic_write, find_state_dict,
                              infer_degrad_options, infer_restore_options, load_checkpoint, state_dict_problems,
                              strip_module_prefix)

RESTORE_PREFIX = 'restoration_net.'
DEGRAD_PREFIX = 'degradation_net.'
SHARED_NDR_KEY = 'degradation_representations'
RELEASED_PREFIXES = (RESTORE_PREFIX, DEGRAD_PREFIX, 'module.' + RESTORE_PREFIX, 'module.' + DEGRAD_PREFIX)
OUTPUT_NAMES = ('net_g.pth', 'net_degrad.pth', 'network_options.yml')

# Degradation injection (DI) and its CP modulations, common to both networks.
_INJECTION_RULES = [
    (r'\.conv1\.', '.embed.'),
    (r'\.f\.', '.scale.'),
    (r'\.g\.', '.shift.'),
    (r'\.low_rank_transform1\.', '.cp_degradation.'),
    (r'\.low_rank_transform3\.', '.cp_feature.'),
    (r'\.conv_C\.1\.', '.channel_proj.'),
    (r'\.conv_H\.1\.', '.height_proj.'),
    (r'\.conv_W\.1\.', '.width_proj.'),
]


def _level_minus_one(m: re.Match) -> str:
    return str(int(m.group(1)) - 1)


def _restore_key(key: str) -> str:
    """Released ``restoration_net.`` key (prefix removed) -> NDRRestore key."""
    if key == 'dr':
        return 'ndr.atoms'
    key = re.sub(r'^extractor\.', 'embed.', key)
    key = re.sub(r'^block([123])\.', r'encoder\1.', key)
    key = re.sub(r'^bottom\.', 'latent.', key)
    key = re.sub(r'^pool([123])\.body\.0\.', r'down\1.conv.', key)
    key = re.sub(r'^up([123])\.body\.0\.', r'up\1.conv.', key)
    key = re.sub(r'^block_up([123])\.0\.', r'reduce\1.', key)
    key = re.sub(r'^block_up([123])\.(\d+)\.', lambda m: f'decoder{m.group(1)}.{int(m.group(2)) - 1}.', key)
    key = re.sub(r'^reconstruction\.', 'output.', key)
    if key.startswith('res_connect'):
        level = re.match(r'^res_connect([123])\.', key)
        if level:
            i = int(level.group(1)) - 1
            rest = key[level.end():]
            query_rules = {
                'mapping.': 'project.',
                'degradation_recog.attn.temperature': 'temperature',
                'degradation_recog.attn.qkv.': 'to_query.',
                'degradation_recog.attn.project_out.': 'to_degradation.',
                'degradation_recog.ffn.project_out.': 'out.',
            }
            for old, new in query_rules.items():
                if rest.startswith(old):
                    return f'query.{i}.{new}{rest[len(old):]}'
            if rest.startswith('inject_degradation.'):
                return _injection_key(f'inject.{i}.' + rest[len('inject_degradation.'):])
        return key
    # inside transformer blocks
    key = key.replace('.norm1.body.', '.norm1.').replace('.norm2.body.', '.norm2.')
    key = key.replace('.attn.project_out.', '.attn.proj.')
    return key


def _injection_key(key: str) -> str:
    key = '.' + key
    for pattern, new in _INJECTION_RULES:
        key = re.sub(pattern, new, key)
    return key[1:]


def _degrad_key(key: str) -> str:
    """Released ``degradation_net.`` key (prefix removed) -> NDRDegrad key."""
    key = re.sub(r'^extractor\.', 'embed.', key)
    key = re.sub(r'^block([123])\.conv\.0\.', r'encoder\1.conv1.', key)
    key = re.sub(r'^block([123])\.conv\.2\.', r'encoder\1.conv2.', key)
    key = re.sub(r'^bottom\.conv\.0\.', 'latent.conv1.', key)
    key = re.sub(r'^bottom\.conv\.2\.', 'latent.conv2.', key)
    key = re.sub(r'^pool([123])\.body\.0\.', r'down\1.conv.', key)
    key = re.sub(r'^up([123])\.body\.0\.', r'up\1.conv.', key)
    key = re.sub(r'^block_up([123])\.0\.', r'reduce\1.', key)
    key = re.sub(r'^block_up([123])\.1\.conv\.0\.', r'decoder\1.conv1.', key)
    key = re.sub(r'^block_up([123])\.1\.conv\.2\.', r'decoder\1.conv2.', key)
    key = re.sub(r'^refinement\.body\.0\.body\.0\.', 'refinement.conv1.', key)
    key = re.sub(r'^refinement\.body\.0\.body\.2\.', 'refinement.conv2.', key)
    key = re.sub(r'^refinement\.body\.0\.body\.3\.conv_du\.0\.', 'refinement.attention.squeeze.', key)
    key = re.sub(r'^refinement\.body\.0\.body\.3\.conv_du\.2\.', 'refinement.attention.excite.', key)
    key = re.sub(r'^refinement\.body\.1\.', 'refinement.tail.', key)
    key = re.sub(r'^reconstruction\.', 'output.', key)
    m = re.match(r'^inject_degradation([123])\.', key)
    if m:
        key = _injection_key(f'inject.{int(m.group(1)) - 1}.' + key[m.end():])
    return key


def _has_released_keys(obj: Any) -> bool:
    return isinstance(obj, Mapping) and any(str(k).startswith(RELEASED_PREFIXES) for k in obj)


def find_released(obj: Any) -> Optional[Mapping]:
    """The released combined state dict inside a loaded checkpoint (possibly nested, see NESTED_KEYS), or None."""
    return find_state_dict(obj, _has_released_keys, NESTED_KEYS)[0]


def is_released(obj: Any) -> bool:
    """Whether a loaded checkpoint holds the released combined network."""
    return find_released(obj) is not None


def rename_released(state: Mapping[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], List[str]]:
    """Released combined state dict (``module.`` prefixes allowed) -> (NDRRestore sd, NDRDegrad sd, unknown keys).

    The shared NDR becomes ``ndr.atoms`` of NDRRestore; a ValueError is raised
    if the file's two copies of it differ.
    """
    restore_sd, degrad_sd, unknown = {}, {}, []
    state = strip_module_prefix(state)
    for key, value in state.items():
        if key.startswith(RESTORE_PREFIX):
            restore_sd[_restore_key(key[len(RESTORE_PREFIX):])] = value
        elif key.startswith(DEGRAD_PREFIX):
            degrad_sd[_degrad_key(key[len(DEGRAD_PREFIX):])] = value
        elif key != SHARED_NDR_KEY:
            unknown.append(key)
    if SHARED_NDR_KEY in state:
        shared = state[SHARED_NDR_KEY]
        own = restore_sd.setdefault('ndr.atoms', shared)
        if own.shape != shared.shape or not torch.equal(own, shared):
            raise ValueError(f'{SHARED_NDR_KEY!r} and {RESTORE_PREFIX}dr differ; the released network shares one NDR.')
    return restore_sd, degrad_sd, unknown


def convert_released(released: Mapping) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], dict]:
    """Released checkpoint (loaded) -> (NDRRestore state dict, NDRDegrad state dict, options).

    ``options`` is ``{'network_g': {...}, 'network_degrad': {...}}`` with ``type`` set.
    Raises ValueError listing missing / unexpected keys when the file does not fit.
    """
    state = find_released(released)
    if state is None:
        raise ValueError(f'this is not a released NDR-Restore checkpoint: no key is prefixed {RESTORE_PREFIX!r} or '
                         f'{DEGRAD_PREFIX!r} (optionally under "params" or "state_dict", optionally prefixed '
                         f'"module.").')
    restore_sd, degrad_sd, unknown = rename_released(state)
    try:
        restore_opt, degrad_opt = infer_restore_options(restore_sd), infer_degrad_options(degrad_sd)
    except WeightsError as err:
        raise ValueError(f'this is not a released NDR-Restore checkpoint: {str(err).split(";")[0]}.') from None
    problems = []
    for name, net, sd in (('NDRRestore', NDRRestore(**restore_opt), restore_sd),
                          ('NDRDegrad', NDRDegrad(**degrad_opt), degrad_sd)):
        problems += [f'{name}: {p}' for p in state_dict_problems(net, sd, limit=20)]
    if unknown:
        problems.append(f'{len(unknown)} keys belong to neither network: {unknown[:20]}')
    if problems:
        raise ValueError('the checkpoint does not match the released NDR-Restore network:\n  ' + '\n  '.join(problems))
    restore_sd = {k: v.detach().clone().float().contiguous() for k, v in restore_sd.items()}
    degrad_sd = {k: v.detach().clone().float().contiguous() for k, v in degrad_sd.items()}
    options = {'network_g': {'type': 'NDRRestore', **restore_opt},
               'network_degrad': {'type': 'NDRDegrad', **degrad_opt}}
    return restore_sd, degrad_sd, options


def convert_file(src: str, out_dir: str, overwrite: bool = False) -> Tuple[str, str]:
    """Convert ``src`` and write net_g.pth, net_degrad.pth and network_options.yml into ``out_dir``.

    Raises:
        FileNotFoundError, WeightsError: ``src`` cannot be loaded.
        ValueError: ``src`` is not the released checkpoint.
        FileExistsError: an output exists and ``overwrite`` is False.
        OSError: ``out_dir`` cannot be written (a full disk: ``no space left on the device writing ...``);
            the files written by this call and the folder it created are removed.
    """
    import yaml

    restore_sd, degrad_sd, options = convert_released(load_checkpoint(src))
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in OUTPUT_NAMES]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        err = FileExistsError(f'refusing to overwrite {existing}; choose another output folder or allow overwriting')
        err.argument = 'overwrite'
        raise err

    def dump(tmp: str) -> None:
        with open(tmp, 'w') as f:
            yaml.safe_dump(options, f, sort_keys=False)

    written = []
    try:
        for path, payload in zip(paths[:2], (restore_sd, degrad_sd)):
            atomic_torch_save({'params': payload}, path)
            written.append(path)
        atomic_write(paths[2], dump)
    except BaseException:  # a full disk, Ctrl-C: no half set of outputs, no folder this call created
        for path in written:
            if path not in existing:
                os.remove(path)
        if created:
            try:
                os.rmdir(out_dir)
            except OSError:
                pass
        raise
    return paths[0], paths[1]


__all__ = ['RESTORE_PREFIX', 'DEGRAD_PREFIX', 'SHARED_NDR_KEY', 'find_released', 'is_released', 'rename_released',
           'convert_released', 'convert_file']
