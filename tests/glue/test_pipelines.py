"""Real BasicSR pipelines through ndrsr/train.py and ndrsr/test.py, in subprocesses, on the CPU.

torchrun with 2 gloo ranks, torch.distributed.launch (``--local-rank``), a run killed
with SIGKILL and auto-resumed from another directory, and test.py without val.suffix.
Each run lives under tmp_path through $NDRSR_ROOT; nothing is written to the repository.
"""
import os
import re
import signal
import subprocess
import sys
import time
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from helpers_pipeline import (LAUNCHER, NET_FILES, SMALL_RESTORE, TEST, TRAIN, assert_same, env, free_port,
                              inference_options, load, make_pairs, run, torchrun, train_options, tree, write_yaml)

pytestmark = pytest.mark.slow  # real subprocesses

MODEL_TYPES = ['SRModel', 'NDRModel']
LOSS = re.compile(r'\biter:\s+(\d+),.*?\]\s+(l_\w+: .*)$')


def logged_losses(log_text):
    """{iteration: {loss name: value}} from BasicSR's MessageLogger lines."""
    out = {}
    for line in log_text.splitlines():
        m = LOSS.search(line)
        if m:
            out[int(m.group(1))] = {k: float(v) for k, v in re.findall(r'(l_\w+): ([-+0-9.eE]+|nan|inf)', m.group(2))}
    return out


def read_logs(folder, prefix):
    names = sorted(n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith('.log'))
    return names, [open(osp.join(folder, n)).read() for n in names]


def labels(model_type):
    return ['net_g', 'net_degrad'] if model_type == 'NDRModel' else ['net_g']


def checkpoint_iter(name):
    m = re.fullmatch(r'(?:net_\w+?_)?(\d+)\.(?:pth|state)', name)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------- DDP, 2 ranks
@pytest.mark.parametrize('model_type', MODEL_TYPES)
def test_torchrun_two_gloo_ranks_train_identically_and_write_one_checkpoint_set(tmp_path, model_type):
    root, dump = str(tmp_path / 'root'), str(tmp_path / 'dump')
    dirs = make_pairs(str(tmp_path / 'data'), n=8)
    yml = write_yaml(train_options(dirs, 'ddp', model_type, total_iter=4, save_freq=2, val_freq=4),
                     str(tmp_path / 'ddp.yml'))
    run(torchrun(2) + [LAUNCHER, dump, '-opt', yml, '--launcher', 'pytorch'], root, str(tmp_path / 'cwd'), 300)

    ranks = [load(osp.join(dump, f'final_rank{r}.pt')) for r in (0, 1)]
    for snap in ranks:  # init_dist chose gloo, model_to_device wrapped in DDP without device_ids
        assert (snap['backend'], snap['world_size'], snap['wrapper']) == ('gloo', 2, 'DistributedDataParallel')
    assert_same(ranks[0]['nets'], ranks[1]['nets'], 'rank0 vs rank1')

    exp = osp.join(root, 'experiments', 'ddp')
    expected = sorted(f'{label}_{it}.pth' for label in labels(model_type) for it in ('2', '4', 'latest'))
    assert sorted(os.listdir(osp.join(exp, 'models'))) == expected
    assert sorted(os.listdir(osp.join(exp, 'training_states'))) == ['2.state', '4.state']
    for attr, (label, key) in NET_FILES.items():
        if attr in ranks[0]['nets']:
            assert_same(load(osp.join(exp, 'models', f'{label}_latest.pth'))[key], ranks[0]['nets'][attr], attr)
    assert not torch.equal(*(load(osp.join(exp, 'models', f'net_g_{i}.pth'))['params']['output.weight']
                             for i in (2, 4)))
    names, (log,) = read_logs(exp, 'train_ddp_')  # one log: only rank 0 writes
    assert 'World size (gpu number): 2' in log
    losses = logged_losses(log)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(np.isfinite(v) for step in losses.values() for v in step.values())
    assert 'Validation' in log
    assert os.listdir(str(tmp_path / 'cwd')) == []  # nothing written to the working directory


# ------------------------------------------------ torch.distributed.launch
def test_torch_distributed_launch_local_rank_hyphen(tmp_path):
    root = str(tmp_path / 'root')
    dirs = make_pairs(str(tmp_path / 'data'))
    opt = train_options(dirs, 'launch', total_iter=2, save_freq=2)
    # A DataLoader worker with BasicSR's own dataset: basicsr's init_dist forced 'spawn', whose fresh worker
    # interpreter imported basicsr.data without the functional_tensor fix and exited 1 (compat fix 4c).
    opt['datasets']['train']['num_worker_per_gpu'] = 1
    yml = write_yaml(opt, str(tmp_path / 'launch.yml'))
    cmd = [sys.executable, '-m', 'torch.distributed.launch', '--nproc_per_node=1', '--master_addr=127.0.0.1',
           f'--master_port={free_port()}', TRAIN, '-opt', yml, '--launcher', 'pytorch']
    run(cmd, root, str(tmp_path / 'cwd'), 240)
    exp = osp.join(root, 'experiments', 'launch')
    with open(osp.join(exp, 'launch.yml')) as f:
        header = f.read().split('\n\n')[0]
    assert '--local-rank=0' in header  # the launcher really passed the hyphenated flag
    _, (log,) = read_logs(exp, 'train_launch_')
    assert re.search(r'^\s+dist: True$', log, re.M) and 'World size (gpu number): 1' in log
    assert osp.isfile(osp.join(exp, 'models', 'net_g_latest.pth'))


# ------------------------------------------- SIGKILL, then --auto_resume elsewhere
def _train_until_killed(yml, root, states, timeout=240):
    """Start ndrsr/train.py from ``root``; SIGKILL it once 6.state exists (so 4.state is surely complete)."""
    log = open(osp.join(osp.dirname(yml), 'killed.out'), 'w')
    proc = subprocess.Popen([sys.executable, TRAIN, '-opt', yml], cwd=root, env=env(root), stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while not osp.exists(osp.join(states, '6.state')):
            assert proc.poll() is None, f'training exited early:\n{open(log.name).read()[-4000:]}'
            assert time.monotonic() < deadline, 'no checkpoint at iteration 6 in time'
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        log.close()


@pytest.mark.parametrize('model_type', MODEL_TYPES)
def test_sigkill_then_auto_resume_from_another_directory(tmp_path, model_type):
    root, dump = str(tmp_path / 'root'), str(tmp_path / 'dump')
    os.makedirs(root)
    dirs = make_pairs(str(tmp_path / 'data'))
    yml = write_yaml(train_options(dirs, 'killed', model_type, total_iter=100000, save_freq=2),
                     str(tmp_path / 'killed.yml'))
    exp = osp.join(root, 'experiments', 'killed')
    states, models = osp.join(exp, 'training_states'), osp.join(exp, 'models')
    _train_until_killed(yml, root, states)
    before = tree(exp)
    saved = sorted(checkpoint_iter(n) for n in os.listdir(states) if checkpoint_iter(n) is not None)
    total = saved[-1] + 2

    elsewhere = str(tmp_path / 'somewhere' / 'else')
    out = run([sys.executable, LAUNCHER, dump, '-opt', yml, '--auto_resume', '--force_yml',
               f'train:total_iter={total}'], root, elsewhere, 240).stdout
    m = re.search(r'Resuming training from epoch: \d+, iter: (\d+)\.', out)
    assert m, out[-4000:]
    k = int(m.group(1))
    assert k >= 4 and k in saved

    # the state the resumed run holds right after resume_training == the killed run's checkpoint k
    resumed, state = load(osp.join(dump, 'resumed_rank0.pt')), load(osp.join(states, f'{k}.state'))
    assert_same(resumed['optimizers'], state['optimizers'], 'optimizers')
    assert_same(resumed['schedulers'], state['schedulers'], 'schedulers')
    expected_nets = {'net_g', 'net_g_ema', 'net_degrad'} if model_type == 'NDRModel' else {'net_g'}
    assert set(resumed['nets']) == expected_nets
    for attr, (label, key) in NET_FILES.items():
        if attr in resumed['nets']:
            assert_same(resumed['nets'][attr], load(osp.join(models, f'{label}_{k}.pth'))[key], attr)

    # it continued from k to total, and logged only those iterations
    new_logs = [n for n in os.listdir(exp) if n.endswith('.log') and n not in before]
    assert len(new_logs) == 1
    losses = logged_losses(open(osp.join(exp, new_logs[0])).read())
    assert sorted(losses) == list(range(k + 1, total + 1))
    assert all(np.isfinite(v) for step in losses.values() for v in step.values())
    assert osp.isfile(osp.join(models, 'net_g_latest.pth'))

    # the killed run's folder is intact, under root, never archived; nothing went to the cwd
    after = tree(exp)
    assert set(before) <= set(after)
    for rel, digest in before.items():
        it = checkpoint_iter(osp.basename(rel))
        if rel.endswith('.log') or (it is not None and it <= k):
            assert after[rel] == digest, f'{rel} changed'
    assert os.listdir(osp.join(root, 'experiments')) == ['killed']
    assert os.listdir(elsewhere) == []


# ---------------------------------------------------------- test.py, no suffix
def test_test_py_without_val_suffix_saves_named_results(tmp_path):
    from basicsr.utils import img2tensor, tensor2img

    from ndrsr.archs.ndr_restore_arch import NDRRestore
    root = str(tmp_path / 'root')
    dirs = make_pairs(str(tmp_path / 'data'))
    torch.manual_seed(3)
    net = NDRRestore(**SMALL_RESTORE).eval()
    weights = str(tmp_path / 'net_g.pth')
    torch.save({'params': net.state_dict()}, weights)
    opt = inference_options(dirs, weights, name='tiny_test')
    assert 'suffix' not in opt['val']
    run([sys.executable, TEST, '-opt', write_yaml(opt, str(tmp_path / 'test.yml'))], root, str(tmp_path / 'cwd'))

    results = osp.join(root, 'results', 'tiny_test')
    vis = osp.join(results, 'visualization', 'tiny_pairs')
    assert sorted(os.listdir(vis)) == [f'{i:03d}_tiny_test.png' for i in range(4)]
    lq = cv2.imread(osp.join(dirs['lq'], '001.png')).astype(np.float32) / 255.
    with torch.no_grad():
        expected = tensor2img([net(img2tensor(lq, bgr2rgb=True, float32=True)[None])])
    assert np.array_equal(cv2.imread(osp.join(vis, '001_tiny_test.png')), expected)
    _, (log,) = read_logs(results, 'test_tiny_test_')
    assert re.search(r'# psnr: \d+\.\d+', log)
