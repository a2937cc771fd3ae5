"""CUDA smoke run: the numbers, the training pipeline (nccl DDP, CUDA prefetch, resume) and the tools on a GPU.

    python bench/gpu_smoke.py [--work DIR]

Needs a CUDA device (the test suite is CPU-only; this script is what a GPU
session runs, see bench/gpu_session.sh). Each check prints PASS/FAIL with its
figures; the exit status is the number of failures.

1. The released code's reference vectors (tests/assets/official_small.pt) on CUDA
   in true float32 (TF32 off), plain network and fast view: <= 1e-5.
2. Default-size NDRRestore at 256x256: CUDA plain vs CPU plain, CUDA fast vs
   CUDA plain (<= 1e-4, fp32); bf16 / fp16 autocast vs fp32 (PSNR of the
   difference, reported; output finite).
3. ndrsr/train.py under torchrun with ``--launcher pytorch`` on the GPU
   (nccl, DDP around the fast training view, ``prefetch_mode: cuda`` with
   pinned memory, validation), then ``--auto_resume`` to a later iteration:
   the resumed networks equal the checkpoint exactly.
4. ndrsr/test.py (BasicSR's test pipeline) on the trained weights, images written.
5. ``python -m ndrsr.cli.restore`` on CUDA in fp32 / bf16 / auto (fp16).
"""
from __future__ import annotations

import argparse
import glob
import math
import sys
import tempfile
import time
from os import path as osp

from _common import ROOT

sys.path.insert(0, osp.join(ROOT, 'tests'))

import torch  # noqa: E402

import ndrsr  # noqa: E402,F401  (compat fixes first, then basicsr)
from basicsr.archs import build_network  # noqa: E402
from ndrsr.archs import NDRRestore  # noqa: E402
from ndrsr.archs.fast_path import prepare_for_inference  # noqa: E402
from ndrsr.lib.convert import convert_released  # noqa: E402

FAILURES = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f'{"PASS" if ok else "FAIL"} {name}: {detail}', flush=True)
    if not ok:
        FAILURES.append(name)


def max_diff(a, b) -> float:
    if isinstance(a, (list, tuple)):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return (a.float().cpu() - b.float().cpu()).abs().max().item()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float().cpu() - b.float().cpu())**2).mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def strict_fp32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def reference_vectors(device: torch.device) -> None:
    ref = torch.load(osp.join(ROOT, 'tests', 'data', 'official_small.pt'), map_location='cpu', weights_only=True)
    g, d, opt = convert_released(ref['state_dict'])
    restore, degrad = build_network(dict(opt['network_g'])), build_network(dict(opt['network_degrad']))
    restore.load_state_dict(g)
    degrad.load_state_dict(d)
    restore, degrad = restore.to(device).eval(), degrad.to(device).eval()
    reps = [ref[f'rep{i}'].to(device) for i in (1, 2, 3)]
    for label, wrap in (('plain', lambda n: n), ('fast', prepare_for_inference)):
        with torch.inference_mode():
            restored, us = wrap(restore)(ref['lq'].to(device), return_degradation=True)
            degraded = wrap(degrad)(ref['gt'].to(device), reps)
        diff = max(max_diff(restored, ref['restored']), max_diff(us, reps), max_diff(degraded, ref['degraded']))
        check(f'released reference vectors, CUDA fp32, {label}', diff <= 1e-5, f'max abs diff {diff:.2e}')


def default_network(device: torch.device) -> None:
    torch.manual_seed(0)
    net = NDRRestore().eval()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        cpu = net(x)
        net = net.to(device)
        xd = x.to(device)
        plain = net(xd)
        fast = prepare_for_inference(net)(xd)
        check('default size 256^2: CUDA plain vs CPU plain (fp32)', max_diff(plain, cpu) <= 1e-4,
              f'{max_diff(plain, cpu):.2e}')
        check('default size 256^2: CUDA fast vs CUDA plain (fp32)', max_diff(fast, plain) <= 1e-4,
              f'{max_diff(fast, plain):.2e}')
        for name, dtype in (('bf16', torch.bfloat16), ('fp16', torch.float16)):
            with torch.autocast('cuda', dtype=dtype):
                low_plain = net(xd).float()
                low_fast = prepare_for_inference(net)(xd).float()
            finite = bool(torch.isfinite(low_fast).all() and torch.isfinite(low_plain).all())
            check(f'default size 256^2: {name} autocast finite', finite,
                  f'PSNR vs fp32: plain {psnr(low_plain, plain):.1f} dB, fast {psnr(low_fast, plain):.1f} dB; '
                  f'max abs diff fast {max_diff(low_fast, plain):.2e}')


def pipelines(work: str, cuda: bool = True) -> None:
    """Checks 3-5 (``cuda=False``: a CPU dry run of the same steps, gloo and no CUDA prefetcher)."""
    from helpers_pipeline import (LAUNCHER, TEST, inference_options, load, make_pairs, run, torchrun,
                                  train_options, write_yaml)
    dirs = make_pairs(osp.join(work, 'data'), n=4, size=64)
    root, dump = osp.join(work, 'root'), osp.join(work, 'dump')
    opt = train_options(dirs, name='gpu_smoke', model_type='NDRModel', total_iter=6, save_freq=3, val_freq=3)
    opt['datasets']['train'].update(num_worker_per_gpu=2, prefetch_mode='cuda' if cuda else None, pin_memory=cuda,
                                    gt_size=32)
    yml = write_yaml(opt, osp.join(work, 'train.yml'))
    t = time.perf_counter()
    proc = run(torchrun(1) + [LAUNCHER, dump, '-opt', yml, '--launcher', 'pytorch'], root, osp.join(work, 'cwd'),
               600)
    final = load(osp.join(dump, 'final_rank0.pt'))
    check('torchrun --launcher pytorch on CUDA', final['backend'] == ('nccl' if cuda else 'gloo') and
          final['wrapper'] == 'DistributedDataParallel',
          f'backend {final["backend"]}, wrapper {final["wrapper"]}, world size {final["world_size"]}, '
          f'{time.perf_counter() - t:.1f} s')
    log = open(glob.glob(osp.join(root, 'experiments', 'gpu_smoke', 'train_*.log'))[0]).read()
    check('CUDA prefetcher used', ('Use cuda prefetch dataloader' in log) == cuda, 'basicsr log line')
    check('validation ran', 'Validation [pairs]' in log, 'per-task validation line in the log')
    models = osp.join(root, 'experiments', 'gpu_smoke', 'models')
    opt['train']['total_iter'] = 9
    write_yaml(opt, yml)
    run(torchrun(1) + [LAUNCHER, dump, '-opt', yml, '--launcher', 'pytorch', '--auto_resume'], root,
        osp.join(work, 'cwd2'), 600)
    resumed = load(osp.join(dump, 'resumed_rank0.pt'))
    saved = torch.load(osp.join(models, 'net_g_6.pth'), map_location='cpu', weights_only=True)['params']
    same = all(torch.equal(resumed['nets']['net_g'][k], saved[k]) for k in saved)
    check('--auto_resume on CUDA restores the iteration-6 networks exactly', same,
          f'{len(saved)} tensors compared; optimizer steps '
          f'{resumed["optimizers"][0]["state"][0]["step"]}')
    del proc
    weights = osp.join(models, 'net_g_latest.pth')
    test_opt = inference_options(dirs, weights, name='gpu_smoke_test')
    run([sys.executable, TEST, '-opt', write_yaml(test_opt, osp.join(work, 'test.yml'))], root, osp.join(work, 'cwd3'),
        600)
    images = glob.glob(osp.join(root, 'results', 'gpu_smoke_test', 'visualization', '*', '*.png'))
    check('ndrsr/test.py on CUDA', len(images) == 4, f'{len(images)} images written')
    outputs = {}
    for precision in ('fp32', 'bf16', 'auto') if cuda else ('fp32', 'auto'):
        out = osp.join(work, f'restore_{precision}')
        run([sys.executable, '-m', 'ndrsr.cli.restore', dirs['lq'], '-o', out, '-w', weights, '--opt', yml,
             '--device', 'cuda' if cuda else 'cpu', '--precision', precision, '-q'], root, osp.join(work, 'cwd4'), 600)
        outputs[precision] = sorted(glob.glob(osp.join(out, '*.png')))
    import cv2
    import numpy as np
    worst = min(psnr(torch.from_numpy(cv2.imread(a).astype(np.float32) / 255),
                     torch.from_numpy(cv2.imread(b).astype(np.float32) / 255))
                for p in outputs if p != 'fp32' for a, b in zip(outputs[p], outputs['fp32']))
    check('ndrsr.cli.restore on CUDA fp32 / bf16 / auto', all(len(v) == 4 for v in outputs.values()),
          f'files {[len(v) for v in outputs.values()]}; lowest PSNR of bf16/fp16 vs fp32 images {worst:.1f} dB')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work', default=None, help='working folder (default: a temporary one)')
    p.add_argument('--cpu-dry-run', action='store_true', help='run checks 3-5 on the CPU (checks the script itself)')
    args = p.parse_args()
    work = args.work or tempfile.mkdtemp(prefix='ndrsr_gpu_smoke_')
    if args.cpu_dry_run:
        pipelines(work, cuda=False)
        print(f'\n{len(FAILURES)} failure(s)')
        return len(FAILURES)
    if not torch.cuda.is_available():
        print('no CUDA device: this smoke run needs a GPU')
        return 1
    device = torch.device('cuda')
    print(f'torch {torch.__version__} | {torch.cuda.get_device_name(device)} | CUDA {torch.version.cuda} | '
          f'cuDNN {torch.backends.cudnn.version()} | nccl {torch.cuda.nccl.version()}', flush=True)
    strict_fp32()
    reference_vectors(device)
    default_network(device)
    pipelines(work)
    print(f'\n{len(FAILURES)} failure(s){": " + ", ".join(FAILURES) if FAILURES else ""}')
    return len(FAILURES)


if __name__ == '__main__':
    sys.exit(main())
