"""Shared test fixtures and helpers. Everything is CPU, seeded and small.

The tests mirror the package (``archs/``, ``data/``, ``models/``, ``metrics`` in ``archs/``, ``lib/`` as
``library/``, ``glue/``, ``cli/``); pytest.ini puts this folder on ``sys.path``, so tests import
``conftest``, ``helpers_pipeline`` and ``model_options`` by name.
"""
import functools
import http.server
import os
import subprocess
import sys
import threading

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import ndrsr  # noqa: E402,F401  (registers archs/data/models, applies compat fixes)

DATA = os.path.join(ROOT, 'tests', 'assets')
BIN = os.path.dirname(sys.executable)  # where ``pip install -e .`` put the console scripts

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


def run_tool(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed console script ``name`` (e.g. ``ndrsr-restore``) as a user does, on the CPU."""
    path = os.path.join(BIN, name)
    if not os.path.isfile(path):
        pytest.fail(f'console script {name} is not installed next to {sys.executable}; '
                    f'run `{sys.executable} -m pip install --no-build-isolation --no-deps -e .`')
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope='session')
def weights(tmp_path_factory):
    """A folder with net_g.pth / net_degrad.pth: BasicSR checkpoints of random tiny networks (SMALL_*)."""
    from ndrsr.archs import NDRDegrad, NDRRestore
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    torch.save({'params': NDRRestore(**SMALL_RESTORE).state_dict()}, folder / 'net_g.pth')
    torch.save({'params': NDRDegrad(**SMALL_DEGRAD).state_dict()}, folder / 'net_degrad.pth')
    return folder


@pytest.fixture
def photos(tmp_path):
    """A folder with two 8-bit RGB photos of random pixels, a.png and b.png (20 x 28)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    return folder


class LocalServer:
    """A local HTTP server over ``root`` that counts GET requests."""

    def __init__(self, root):
        self.hits = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                return super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     functools.partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/{name}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w) photo-like test image: smooth gradients, an edge and mild noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None]
    img = torch.stack([0.5 + 0.4 * torch.sin(6 * x + 3 * y), y * x + 0 * x, 0.5 + 0.3 * torch.cos(9 * y) * (x > 0.4)])
    return (img[None] + 0.05 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope='session')
def released_nets():
    """NDRRestore / NDRDegrad with the released code's random weights (tests/assets/official_small.pt)."""
    from ndrsr.archs import NDRDegrad, NDRRestore
    from ndrsr.lib.convert import convert_released
    ref = torch.load(os.path.join(DATA, 'official_small.pt'), weights_only=True)
    g, d, opt = convert_released(ref['state_dict'])
    restore = NDRRestore(**{k: v for k, v in opt['network_g'].items() if k != 'type'}).eval()
    restore.load_state_dict(g)
    degrad = NDRDegrad(**{k: v for k, v in opt['network_degrad'].items() if k != 'type'}).eval()
    degrad.load_state_dict(d)
    return restore, degrad, ref


def pin_paper_model(monkeypatch, path) -> None:
    """Pin the 'paper' model to the file at ``path`` (the file a test serves in place of model_L.pth), as
    model_zoo pins the published file: same size and sha256 or the download is refused."""
    import hashlib

    from ndrsr.lib import model_zoo
    from ndrsr.lib.download import Pin
    data = open(path, 'rb').read()
    info = model_zoo.MODELS['paper']
    monkeypatch.setitem(model_zoo.MODELS, 'paper', model_zoo.ModelInfo(
        info.name, info.summary, url=info.url, file_name=info.file_name,
        pin=Pin(len(data), hashlib.sha256(data).hexdigest())))
