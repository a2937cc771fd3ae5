"""Shared test fixtures. Everything is CPU, seeded and small."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import ndrsr  # noqa: E402,F401  (registers archs/data/models, applies compat fixes)

DATA = os.path.join(ROOT, 'tests', 'data')

# Tiny network sizes used throughout the tests (the reference's reduced configuration).
SMALL_RESTORE = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
SMALL_DEGRAD = dict(dim=8)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope='session')
def reference():
    """The released code's outputs on random weights (copy of shared/reference/official_small.pt)."""
    return torch.load(os.path.join(DATA, 'official_small.pt'), map_location='cpu', weights_only=True)
