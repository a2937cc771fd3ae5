"""Export a training run as a shipped model folder (what ndrsr/pretrained/<name>/ holds).

    .venv/bin/python scripts/export_model.py experiments/ndrsr_small_all_in_one_v1 ndrsr/pretrained/small_v1 \
        [--iter latest|N] [--overwrite]

Writes into OUT_DIR:
    net_g.pth            {'params': NDR-Restore weights}: the run's EMA (params_ema) when it has one
    net_degrad.pth       {'params': NDR-Degrad weights} of the same iteration
    network_options.yml  network_g / network_degrad of the run's options (how to build both)
and prints the files' sizes and sha256 (for the model card). Every file is written atomically;
existing files are replaced only with --overwrite.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

import ndrsr  # noqa: E402,F401
from ndrsr.lib.checkpoint import atomic_torch_save, load_checkpoint  # noqa: E402
from ndrsr.glue.options_io import load_options_file  # noqa: E402


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('experiment', help='experiments/<name> folder of a finished (or stopped) run')
    p.add_argument('out_dir')
    p.add_argument('--iter', default='latest', help='checkpoint iteration (default: latest)')
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)

    g_path = osp.join(args.experiment, 'models', f'net_g_{args.iter}.pth')
    d_path = osp.join(args.experiment, 'models', f'net_degrad_{args.iter}.pth')
    opts = sorted(glob.glob(osp.join(args.experiment, '*.yml')))
    if not opts:
        sys.exit(f'error: no options .yml in {args.experiment}')
    opt = load_options_file(opts[-1])
    g, d = load_checkpoint(g_path), load_checkpoint(d_path)
    out = {
        'net_g.pth': {'params': g.get('params_ema', g['params'])},
        'net_degrad.pth': {'params': d['params']},
    }
    options = {'network_g': dict(opt['network_g']), 'network_degrad': dict(opt['network_degrad'])}
    os.makedirs(args.out_dir, exist_ok=True)
    targets = [osp.join(args.out_dir, n) for n in (*out, 'network_options.yml')]
    existing = [t for t in targets if osp.exists(t)]
    if existing and not args.overwrite:
        sys.exit(f'error: {existing} exist; pass --overwrite to replace them')
    for name, payload in out.items():
        atomic_torch_save(payload, osp.join(args.out_dir, name))
    tmp = osp.join(args.out_dir, '.network_options.yml.tmp')
    with open(tmp, 'w') as f:
        f.write(f'# how to build the networks of {osp.basename(args.out_dir)} (exported from {opts[-1]}, '
                f'iteration {args.iter})\n')
        yaml.safe_dump(options, f, sort_keys=False)
    os.replace(tmp, targets[-1])
    for t in targets:
        print(f'{t}  {osp.getsize(t) / 1e6:.2f} MB  sha256 {sha256(t)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
