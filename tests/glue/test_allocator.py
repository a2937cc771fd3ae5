"""ndrsr.glue.allocator: freed tensor memory is reused (no page faults per forward), opt-out by environment."""
import os
import platform
import subprocess
import sys

import pytest
from helpers_pipeline import REPO

pytestmark = pytest.mark.slow  # real subprocesses

CHILD = r'''
import resource, sys, torch
applied = None
if sys.argv[1] == 'retain':
    from ndrsr.glue.allocator import retain_freed_memory
    applied = retain_freed_memory()
x = torch.rand(16, 1024, 1024)                    # 64 MiB tensors: above the largest mmap threshold
def step():
    y = x * 2.0                                   # fresh large tensors, freed at the end of the step
    z = torch.nn.functional.gelu(y) + x
    return float(z[0, 0, 0])
first = step()
values = [step() for _ in range(3)]               # the heap settles to the working set in a few steps
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
values += [step() for _ in range(4)]
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(applied, faults, all(v == first for v in values))
'''


def run_child(mode, **env):
    out = subprocess.run([sys.executable, '-c', CHILD, mode], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1', **env}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    applied, faults, same = out.stdout.split()
    return applied, int(faults), same == 'True'


@pytest.mark.skipif(not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_retained_memory_is_reused_without_page_faults():
    _, default_faults, same_default = run_child('default')
    applied, retained_faults, same_retained = run_child('retain')
    assert applied == 'True' and same_default and same_retained
    # each step allocates 3 x 64 MiB = 49152 pages; glibc's default unmaps them on free and faults them in
    # again every step (4 measured steps: ~197k faults); retained, the heap's pages are reused (a re-fit of
    # the heap now and then costs one tensor's pages)
    assert default_faults > 120_000
    assert retained_faults < default_faults / 4, (retained_faults, default_faults)


def test_opt_out_by_environment_changes_nothing():
    applied, _, same = run_child('retain', NDRSR_RETAIN_FREED_MEMORY='0')
    assert applied == 'False' and same
