"""Two-node training: a real torchrun rendezvous between two agents on the loopback, as on two machines.

Each "node" is its own ``torchrun --nnodes 2 --node_rank N --master_addr 127.0.0.1`` process with one
worker, its own working directory and its own experiments root ($NDRSR_ROOT): the node of rank 0 hosts the
rendezvous, and only it writes the experiment. The workers run the real ndrsr/train.py (NDRModel, tiny
networks, gloo) through the observing launcher of helpers_pipeline, which records the networks at the end.
"""
import os
import subprocess
import sys
from os import path as osp

from helpers_pipeline import LAUNCHER, assert_same, env, free_port, load, make_pairs, train_options, write_yaml



def wait_for_all(procs, what: str) -> None:
    """Wait for every process (killing the rest on a timeout); each must exit 0, else its output's tail is shown."""
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f'{what} {rank} exited {p.returncode}:\n{out[-6000:]}'

def node_command(node_rank, port, dump, yml):
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes=2', f'--node_rank={node_rank}',
            '--nproc_per_node=1', '--master_addr=127.0.0.1', f'--master_port={port}',
            LAUNCHER, dump, '-opt', yml, '--launcher', 'pytorch']


def test_two_torchrun_nodes_rendezvous_on_the_loopback_and_end_with_the_same_weights(tmp_path):
    dump = str(tmp_path / 'dump')
    dirs = make_pairs(str(tmp_path / 'data'), n=8)  # on both nodes (a shared file system)
    yml = write_yaml(train_options(dirs, 'two_nodes', 'NDRModel', total_iter=3, save_freq=3),
                     str(tmp_path / 'two_nodes.yml'))
    port = free_port()
    roots = [str(tmp_path / f'node{r}') for r in (0, 1)]
    procs = []
    for rank, root in enumerate(roots):
        os.makedirs(root)
        procs.append(subprocess.Popen(node_command(rank, port, dump, yml), cwd=root,
                                      env=env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    wait_for_all(procs, 'node')

    ranks = [load(osp.join(dump, f'final_rank{r}.pt')) for r in (0, 1)]  # global ranks 0 and 1, one per node
    for snap in ranks:
        assert (snap['backend'], snap['world_size'], snap['wrapper']) == ('gloo', 2, 'DistributedDataParallel')
    assert set(ranks[0]['nets']) == {'net_g', 'net_g_ema', 'net_degrad'}
    assert_same(ranks[0]['nets'], ranks[1]['nets'], 'node 0 vs node 1')

    exp = osp.join(roots[0], 'experiments', 'two_nodes')
    assert sorted(os.listdir(osp.join(exp, 'models'))) == sorted(
        f'{label}_{it}.pth' for label in ('net_g', 'net_degrad') for it in ('3', 'latest'))
    assert_same(load(osp.join(exp, 'models', 'net_g_latest.pth'))['params_ema'], ranks[0]['nets']['net_g_ema'])
    log = open(next(osp.join(exp, n) for n in os.listdir(exp) if n.endswith('.log'))).read()
    assert 'World size (gpu number): 2' in log
    assert not osp.exists(osp.join(roots[1], 'experiments', 'two_nodes', 'models'))  # node 1 writes no checkpoint


def test_slurm_launcher_two_tasks_on_the_loopback(tmp_path):
    """``--launcher slurm`` as ``srun --ntasks 2`` starts it: SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST, the
    master host from ``scontrol show hostname`` (a stand-in script here: no SLURM on this machine), gloo on the
    CPU."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    scontrol = bin_dir / 'scontrol'
    scontrol.write_text('#!/bin/sh\n# scontrol show hostname NODELIST: one host per line\necho 127.0.0.1\n'
                        'echo 127.0.0.2\n')
    scontrol.chmod(0o755)
    dump = str(tmp_path / 'dump')
    dirs = make_pairs(str(tmp_path / 'data'), n=8)
    yml = write_yaml(train_options(dirs, 'slurm', 'SRModel', total_iter=2, save_freq=2),
                     str(tmp_path / 'slurm.yml'))
    root = str(tmp_path / 'root')
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        task_env = dict(env(root), SLURM_PROCID=str(rank), SLURM_NTASKS='2', SLURM_LOCALID=str(rank),
                        SLURM_NODELIST='node[01-02]', MASTER_PORT=port,
                        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
        procs.append(subprocess.Popen([sys.executable, LAUNCHER, dump, '-opt', yml, '--launcher', 'slurm'],
                                      cwd=str(tmp_path), env=task_env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    wait_for_all(procs, 'task')
    ranks = [load(osp.join(dump, f'final_rank{r}.pt')) for r in (0, 1)]
    for snap in ranks:
        assert (snap['backend'], snap['world_size'], snap['wrapper']) == ('gloo', 2, 'DistributedDataParallel')
    assert_same(ranks[0]['nets'], ranks[1]['nets'], 'task 0 vs task 1')
