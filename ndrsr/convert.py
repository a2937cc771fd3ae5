"""Convert the released NDR-Restore checkpoint into BasicSR checkpoints.

The released file holds one state dict of the combined network, with keys
prefixed ``restoration_net.`` / ``degradation_net.`` plus the shared NDR
``degradation_representations`` (also stored as ``restoration_net.dr``).
This module renames every key to ndrsr's module names, infers the network
sizes from the tensor shapes, loads both networks strictly, and writes

    OUT_DIR/net_g.pth          {'params': NDRRestore state dict}
    OUT_DIR/net_degrad.pth     {'params': NDRDegrad state dict}
    OUT_DIR/network_options.yml  the network_g / network_degrad options to use

Command line: ``python -m ndrsr.convert RELEASED.pth OUT_DIR``.
Code: :func:`convert_released` (state dict in, two state dicts + options out).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, Mapping, Tuple

import torch

from ndrsr.archs import NDRDegrad, NDRRestore

RESTORE_PREFIX = 'restoration_net.'
DEGRAD_PREFIX = 'degradation_net.'
SHARED_NDR_KEY = 'degradation_representations'
NESTING_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net', 'network')

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


def unwrap_state_dict(obj) -> Dict[str, torch.Tensor]:
    """Find the combined state dict inside a loaded checkpoint and strip ``module.`` prefixes."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(str(k).startswith((RESTORE_PREFIX, DEGRAD_PREFIX, 'module.'))
                                                for k in obj):
            nested = [k for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)]
            if not nested:
                break
            obj = obj[nested[0]]
    if not isinstance(obj, Mapping):
        raise ValueError(f'expected a state dict (a mapping of names to tensors), got {type(obj).__name__}')
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in obj.items()}


def infer_network_options(state: Mapping[str, torch.Tensor]) -> Tuple[dict, dict]:
    """NDRRestore / NDRDegrad keyword arguments implied by a released state dict's shapes."""
    r, d = RESTORE_PREFIX, DEGRAD_PREFIX
    try:
        dim = state[r + 'extractor.weight'].shape[0]
        ndr = state[r + 'dr'] if r + 'dr' in state else state[SHARED_NDR_KEY]

        def count(prefix: str) -> int:
            idx = {int(k[len(prefix):].split('.')[0]) for k in state if k.startswith(prefix)}
            return len(idx)

        blocks = [count(r + 'block1.'), count(r + 'block2.'), count(r + 'block3.'), count(r + 'bottom.')]
        heads = [state[f'{r}{name}.0.attn.temperature'].shape[0] for name in ('block1', 'block2', 'block3', 'bottom')]
        hidden = state[r + 'block1.0.ffn.project_out.weight'].shape[1]
        restore = dict(
            dim=dim, num_blocks=blocks, num_refinement_blocks=count(r + 'refinement.'), heads=heads,
            ffn_expansion_factor=2.66 if int(dim * 2.66) == hidden else (hidden + 0.5) / dim,
            ndr_atoms=ndr.shape[1], ndr_dim=ndr.shape[2],
            query_dim=state[r + 'res_connect1.mapping.weight'].shape[0],
            cp_rank=state[r + 'res_connect1.inject_degradation.low_rank_transform1.conv_H.1.weight'].shape[0])
        degrad = dict(
            dim=state[d + 'extractor.weight'].shape[0], query_dim=restore['query_dim'], cp_rank=restore['cp_rank'],
            ca_reduction=state[d + 'refinement.body.0.body.0.weight'].shape[0] //
            state[d + 'refinement.body.0.body.3.conv_du.0.weight'].shape[0])
    except KeyError as err:
        raise ValueError(f'this is not a released NDR-Restore checkpoint: key {err} is missing. Expected keys '
                         f'prefixed {RESTORE_PREFIX!r} and {DEGRAD_PREFIX!r} (optionally under "params" or '
                         f'"state_dict", optionally prefixed "module.").') from None
    return restore, degrad


def convert_released(released: Mapping) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], dict]:
    """Released combined state dict -> (NDRRestore state dict, NDRDegrad state dict, options).

    ``options`` is ``{'network_g': {...}, 'network_degrad': {...}}`` with ``type`` set.
    Raises ValueError listing missing / unexpected keys when the file does not fit.
    """
    state = unwrap_state_dict(released)
    restore_opt, degrad_opt = infer_network_options(state)
    restore_sd, degrad_sd, unknown = {}, {}, []
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
    restore_net, degrad_net = NDRRestore(**restore_opt), NDRDegrad(**degrad_opt)
    problems = []
    for name, net, sd in (('NDRRestore', restore_net, restore_sd), ('NDRDegrad', degrad_net, degrad_sd)):
        expected = net.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        wrong = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
        if missing:
            problems.append(f'{name}: {len(missing)} missing keys: {missing[:20]}')
        if unexpected:
            problems.append(f'{name}: {len(unexpected)} unexpected keys: {unexpected[:20]}')
        if wrong:
            problems.append(f'{name}: shape mismatch for {[(k, tuple(sd[k].shape), tuple(expected[k].shape)) for k in wrong[:20]]}')
    if unknown:
        problems.append(f'{len(unknown)} keys belong to neither network: {unknown[:20]}')
    if problems:
        raise ValueError('the checkpoint does not match the released NDR-Restore network:\n  ' + '\n  '.join(problems))
    restore_sd = {k: v.detach().clone().float().contiguous() for k, v in restore_sd.items()}
    degrad_sd = {k: v.detach().clone().float().contiguous() for k, v in degrad_sd.items()}
    options = {'network_g': {'type': 'NDRRestore', **restore_opt}, 'network_degrad': {'type': 'NDRDegrad', **degrad_opt}}
    return restore_sd, degrad_sd, options


def load_released(path: str) -> Dict[str, torch.Tensor]:
    """Load a released checkpoint safely (``weights_only=True``) with a clear error on failure."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name and the fix
        raise ValueError(f'could not load {path} as a PyTorch checkpoint with weights_only=True ({err}). '
                         f'Is it a complete, trusted .pth file of the released model?') from err


def convert_file(src: str, out_dir: str, overwrite: bool = False) -> Tuple[str, str]:
    """Convert ``src`` and write net_g.pth, net_degrad.pth and network_options.yml into ``out_dir``."""
    import yaml

    restore_sd, degrad_sd, options = convert_released(load_released(src))
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in ('net_g.pth', 'net_degrad.pth', 'network_options.yml')]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'refusing to overwrite {existing}; pass --overwrite or choose another OUT_DIR')
    for path, payload in zip(paths[:2], (restore_sd, degrad_sd)):
        tmp = path + '.tmp'
        torch.save({'params': payload}, tmp)
        os.replace(tmp, path)
    with open(paths[2], 'w') as f:
        yaml.safe_dump(options, f, sort_keys=False)
    return paths[0], paths[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ndrsr.convert', description=__doc__.split('\n\n')[0])
    parser.add_argument('released', help='released checkpoint (e.g. model_L.pth)')
    parser.add_argument('out_dir', help='folder for net_g.pth, net_degrad.pth and network_options.yml')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files in OUT_DIR')
    args = parser.parse_args(argv)
    try:
        g, d = convert_file(args.released, args.out_dir, args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {g}\nwrote {d}\nwrote {os.path.join(args.out_dir, "network_options.yml")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
