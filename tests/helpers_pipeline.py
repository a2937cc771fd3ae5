"""Tiny data, options and subprocess runners for the real BasicSR pipeline tests.

Every run puts its experiments/results under a temporary root through $NDRSR_ROOT
(see ndrsr/train.py), so tests never write into the repository.

Run as a script, this module is an *observing* launcher for ndrsr/train.py:

    [torchrun ...] python tests/helpers_pipeline.py DUMP_DIR -opt x.yml [train.py args]

It runs the real ndrsr/train.py (runpy, as ``__main__``) and only records what the
model holds: right after ``resume_training`` (``DUMP_DIR/resumed_rank<r>.pt``) and at
the end of training (``DUMP_DIR/final_rank<r>.pt``): the bare networks, the optimizer
and scheduler states, the process-group backend and the network wrapper.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from copy import deepcopy
from os import path as osp
from typing import Any, Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'ndrsr', 'train.py')
TEST = osp.join(REPO, 'ndrsr', 'test.py')
LAUNCHER = osp.abspath(__file__)
SMALL_RESTORE = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
SMALL_DEGRAD = dict(dim=8)
# checkpoint file label and param key of each model attribute holding a network
NET_FILES = {'net_g': ('net_g', 'params'), 'net_g_ema': ('net_g', 'params_ema'), 'net_degrad': ('net_degrad', 'params')}


# ------------------------------------------------------------------ data/options
def make_pairs(folder: str, n: int = 4, size: int = 16, seed: int = 0) -> Dict[str, str]:
    """n random gt PNGs and their noisy lq versions; returns {'gt': dir, 'lq': dir}."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    dirs = {k: osp.join(folder, k) for k in ('gt', 'lq')}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    for i in range(n):
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        lq = np.clip(gt.astype(np.int16) + rng.integers(-25, 26, gt.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(osp.join(dirs['gt'], f'{i:03d}.png'), gt)
        cv2.imwrite(osp.join(dirs['lq'], f'{i:03d}.png'), lq)
    return dirs


def paired_dataset(dirs: Dict[str, str], phase: str, name: str = 'pairs') -> dict:
    """BasicSR's PairedImageDataset on the tiny pairs (train: 16px crops, flips; 2 per batch, no workers)."""
    opt = {'name': name, 'type': 'PairedImageDataset', 'dataroot_gt': dirs['gt'], 'dataroot_lq': dirs['lq'],
           'io_backend': {'type': 'disk'}}
    if phase == 'train':
        opt.update(gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=0, batch_size_per_gpu=2,
                   dataset_enlarge_ratio=1)
    return opt


def train_options(dirs: Dict[str, str], name: str = 'run', model_type: str = 'SRModel', total_iter: int = 4,
                  save_freq: int = 2, val_freq: Optional[int] = None) -> dict:
    """A BasicSR training YAML (as a dict) for the tiny NDRRestore; NDRModel adds NDRDegrad (joint schedule)."""
    train = {'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
             'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
             'total_iter': total_iter, 'warmup_iter': -1,
             'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}}
    opt = {'name': name, 'model_type': model_type, 'scale': 1, 'num_gpu': 'auto', 'manual_seed': 10,
           'datasets': {'train': paired_dataset(dirs, 'train')},
           'network_g': {'type': 'NDRRestore', **deepcopy(SMALL_RESTORE)},
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
           'train': train,
           'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False}}
    if model_type == 'NDRModel':
        opt['network_degrad'] = {'type': 'NDRDegrad', **deepcopy(SMALL_DEGRAD)}
        train.update(schedule='joint', grad_clip=10, ema_decay=0.9,
                     degrad_opt={'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'})
    if val_freq:
        opt['datasets']['val'] = paired_dataset(dirs, 'val')
        opt['val'] = {'val_freq': val_freq, 'save_img': False, 'pbar': False,
                      'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}}
    return opt


def inference_options(dirs: Dict[str, str], weights: str, name: str = 'test_run') -> dict:
    """A BasicSR test YAML (as a dict) that saves images and has no ``val.suffix``."""
    return {'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 'auto', 'manual_seed': 10,
            'datasets': {'test_1': paired_dataset(dirs, 'test', 'tiny_pairs')},
            'network_g': {'type': 'NDRRestore', **deepcopy(SMALL_RESTORE)},
            'path': {'pretrain_network_g': weights, 'strict_load_g': True, 'param_key_g': 'params'},
            'val': {'save_img': True,
                    'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}}}


def write_yaml(opt: dict, path: str) -> str:
    import yaml
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


# -------------------------------------------------------------------- processes
def env(root: str) -> Dict[str, str]:
    """Subprocess environment: the repo importable (before any inherited PYTHONPATH), one thread, runs under
    ``root``."""
    out = dict(os.environ)
    pythonpath = [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    out.update(PYTHONPATH=os.pathsep.join(pythonpath), OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', NDRSR_ROOT=root,
               PYTHONUNBUFFERED='1', PYTHONHASHSEED='0')
    out.pop('RANK', None)
    out.pop('LOCAL_RANK', None)
    out.pop('WORLD_SIZE', None)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd: List[str], root: str, cwd: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run to completion; fail with the output tail when the exit status is not 0."""
    os.makedirs(cwd, exist_ok=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(cmd)} exited {proc.returncode}:\n{proc.stdout[-6000:]}'
    return proc


def torchrun(nproc: int) -> List[str]:
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', f'--nproc_per_node={nproc}',
            '--master_addr=127.0.0.1', f'--master_port={free_port()}']


# -------------------------------------------------------------------- checks
def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(folder: str) -> Dict[str, str]:
    """{relative path: sha256} of every file under folder."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            full = osp.join(base, name)
            out[osp.relpath(full, folder)] = sha256(full)
    return out


def assert_same(a: Any, b: Any, where: str = 'state') -> None:
    """Exact recursive equality of nested dicts/lists/tuples/tensors/numbers."""
    import torch
    if torch.is_tensor(a) or torch.is_tensor(b):
        assert torch.is_tensor(a) and torch.is_tensor(b), f'{where}: {type(a)} vs {type(b)}'
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()), f'{where} differs'
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f'{where}: keys {sorted(a)} vs {sorted(b)}'
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f'{where}: {a!r} vs {b!r}'
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def load(path: str) -> Any:
    import torch
    return torch.load(path, map_location='cpu', weights_only=False)


# ------------------------------------------------------------ observing launcher
def _snapshot(model: Any) -> dict:
    import torch
    import torch.distributed as dist
    nets = {}
    for attr in NET_FILES:
        net = getattr(model, attr, None)
        if isinstance(net, torch.nn.Module):
            nets[attr] = {k: v.detach().cpu().clone() for k, v in model.get_bare_model(net).state_dict().items()}
    return {'nets': nets,
            'optimizers': deepcopy([o.state_dict() for o in model.optimizers]),
            'schedulers': deepcopy([s.state_dict() for s in model.schedulers]),
            'wrapper': type(model.net_g).__name__,
            'backend': dist.get_backend() if dist.is_initialized() else None,
            'world_size': dist.get_world_size() if dist.is_initialized() else 1}


def _launch(dump_dir: str, train_args: List[str]) -> None:
    """Run ndrsr/train.py as __main__, recording the model's state after resume and at the end."""
    import runpy

    import torch
    import ndrsr  # noqa: F401  (compat first, exactly as ndrsr/train.py does)
    import basicsr.train
    def rank():  # after init_dist: the SLURM launcher sets RANK from SLURM_PROCID only then
        import torch.distributed as dist
        return dist.get_rank() if dist.is_initialized() else int(os.environ.get('RANK', 0))

    built = []
    build_model = basicsr.train.build_model

    def observed_build_model(opt):
        model = build_model(opt)
        resume_training = model.resume_training

        def observed_resume(state):
            resume_training(state)
            torch.save(_snapshot(model), osp.join(dump_dir, f'resumed_rank{rank()}.pt'))

        model.resume_training = observed_resume
        built.append(model)
        return model

    basicsr.train.build_model = observed_build_model
    sys.argv = [TRAIN] + train_args
    runpy.run_path(TRAIN, run_name='__main__')
    torch.save(_snapshot(built[0]), osp.join(dump_dir, f'final_rank{rank()}.pt'))


if __name__ == '__main__':
    os.makedirs(sys.argv[1], exist_ok=True)
    _launch(sys.argv[1], sys.argv[2:])
