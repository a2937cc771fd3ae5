"""The console scripts ndrsr-restore, ndrsr-degrade and ndrsr-eval, run as a user runs them.

Real files in tmp_path, tiny random networks, real subprocesses of the
installed console scripts (``pip install -e .`` puts them next to python).
"""
import hashlib

import cv2
import numpy as np
import pytest
import torch
from conftest import SMALL_RESTORE, run_tool

from ndrsr.archs import NDRRestore
from ndrsr.cli.evaluate import main as eval_main
from ndrsr.cli.restore import main as restore_main

def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def mixed(tmp_path):
    """A folder with an 8-bit RGB JPEG, a 16-bit RGBA PNG, a gray PNG (odd sizes) and a truncated PNG."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'photos'
    folder.mkdir()
    cv2.imwrite(str(folder / 'rgb.jpg'), rng.integers(0, 256, (37, 45, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'deep.png'), rng.integers(0, 65536, (30, 41, 4), dtype=np.uint16))
    cv2.imwrite(str(folder / 'gray.png'), rng.integers(0, 256, (26, 19), dtype=np.uint8))
    (folder / 'broken.png').write_bytes((folder / 'gray.png').read_bytes()[:50])
    return folder


@pytest.mark.slow
def test_restore_folder_keeps_depth_alpha_gray_and_skips_a_broken_file(tmp_path, weights, mixed):
    before = digest(mixed)
    out = tmp_path / 'out'
    res = run_tool('ndrsr-restore', str(mixed), '-o', str(out), '--weights', str(weights / 'net_g.pth'), '--save-maps',
              '--tile', '24', '--tile-overlap', '8')  # 2 x 2 or 2 x 3 tiles per image
    assert res.returncode == 1, res.stderr
    assert 'broken.png' in res.stderr and 'truncated' in res.stderr and '1 image(s) FAILED' in res.stderr
    assert 'restored 3/4 images' in res.stdout
    assert digest(mixed) == before  # inputs untouched
    rgb = cv2.imread(str(out / 'rgb.jpg'), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (37, 45, 3) and rgb.dtype == np.uint8
    deep = cv2.imread(str(out / 'deep.png'), cv2.IMREAD_UNCHANGED)
    src = cv2.imread(str(mixed / 'deep.png'), cv2.IMREAD_UNCHANGED)
    assert deep.shape == (30, 41, 4) and deep.dtype == np.uint16
    assert np.array_equal(deep[:, :, 3], src[:, :, 3])  # alpha passed through exactly
    assert len(np.unique(deep[:, :, :3])) > 256  # really 16-bit data, not 8-bit scaled up
    gray = cv2.imread(str(out / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (26, 19) and gray.dtype == np.uint8
    assert not (out / 'broken.png').exists()
    for stem, (h, w) in (('rgb', (37, 45)), ('deep', (30, 41)), ('gray', (26, 19))):
        assert cv2.imread(str(out / f'{stem}_maps' / 'L1_atom.png')).shape == (h, w, 3)
        assert cv2.imread(str(out / f'{stem}_maps' / 'L3_U.png')).shape == (-(-h // 4), -(-w // 4), 3)
        assert (out / f'{stem}_maps' / 'summary.png').is_file()


@pytest.mark.slow
def test_restore_refuses_to_write_into_the_input_folder(weights, mixed):
    before = digest(mixed)
    res = run_tool('ndrsr-restore', str(mixed / 'rgb.jpg'), '-o', str(mixed), '-w', str(weights / 'net_g.pth'))
    assert res.returncode == 2
    assert 'output folder' in res.stderr and 'Choose another' in res.stderr
    assert digest(mixed) == before


def test_restore_usage_errors_name_the_problem(tmp_path, weights, mixed, capsys):
    assert restore_main([str(tmp_path / 'nothing-*.png'), '-o', str(tmp_path / 'o'), '-w',
                         str(weights / 'net_g.pth'), '-q']) == 2
    assert 'matches no image' in capsys.readouterr().err
    cv2.imwrite(str(mixed / 'rgb.png'), np.zeros((8, 8, 3), np.uint8))  # rgb.jpg and rgb.png -> same output
    assert restore_main([str(mixed), '-o', str(tmp_path / 'o'), '-w', str(weights / 'net_g.pth'), '-q']) == 2
    assert 'would both be written' in capsys.readouterr().err
    assert restore_main([str(mixed / 'gray.png'), '-o', str(tmp_path / 'o'), '-w',
                         str(weights / 'net_degrad.pth'), '-q']) == 2
    err = capsys.readouterr().err
    assert 'NDR-Degrad weights' in err and err.rstrip().endswith('(command-line option: --weights)')


def test_restore_tiled_cli_matches_whole_image_with_released_weights(tmp_path, reference):
    """The released checkpoint (converted on the fly) through the CLI, tiled and whole."""
    released = tmp_path / 'released.pth'
    torch.save(reference['state_dict'], released)
    img = (reference['lq'][0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
    big = cv2.resize(img, (133, 90), interpolation=cv2.INTER_CUBIC)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'x.png'), big)
    for name, tile in (('whole', '0'), ('tiled', '64')):
        assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / name), '-w', str(released), '--tile', tile,
                             '--tile-overlap', '16', '-q']) == 0
    whole = cv2.imread(str(tmp_path / 'whole' / 'x.png')).astype(np.float64)
    tiled = cv2.imread(str(tmp_path / 'tiled' / 'x.png')).astype(np.float64)
    mse = ((whole - tiled) ** 2).mean()
    assert mse == 0 or 10 * np.log10(255 ** 2 / mse) >= 50


@pytest.mark.slow
def test_degrade_like_and_eval(tmp_path, weights, mixed):
    out = tmp_path / 'degraded'
    res = run_tool('ndrsr-degrade', '--like', str(mixed / 'rgb.jpg'), str(mixed / 'gray.png'), str(mixed / 'deep.png'),
              '-o', str(out), '-w', str(weights / 'net_g.pth'), '--fit', 'mirror')
    assert res.returncode == 0, res.stderr
    gray = cv2.imread(str(out / 'gray_like_rgb.png'), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (26, 19) and gray.dtype == np.uint8
    deep = cv2.imread(str(out / 'deep_like_rgb.png'), cv2.IMREAD_UNCHANGED)
    assert deep.shape == (30, 41, 4) and deep.dtype == np.uint16

    # the default fit, difference: the --like image's degradation alone on each clean image's own U's
    res = run_tool('ndrsr-degrade', '--like', str(mixed / 'rgb.jpg'), str(mixed / 'gray.png'), '-o',
              str(tmp_path / 'difference'), '-w', str(weights / 'net_g.pth'))
    assert res.returncode == 0, res.stderr
    assert '(fit difference)' in res.stdout
    assert cv2.imread(str(tmp_path / 'difference' / 'gray_like_rgb.png'), cv2.IMREAD_UNCHANGED).shape == (26, 19)

    # ndrsr-eval: the degraded images against their clean sources (renamed to the same stems)
    gt = tmp_path / 'gt'
    gt.mkdir()
    for stem in ('gray', 'deep'):
        (gt / f'{stem}_like_rgb.png').write_bytes((mixed / f'{stem}.png').read_bytes())
    assert eval_main([str(out), '--gt', str(gt), '--csv', str(tmp_path / 'm.csv'), '--md', str(tmp_path / 'm.md')]) == 0
    csv_lines = (tmp_path / 'm.csv').read_text().splitlines()
    assert csv_lines[0] == 'name,psnr_rgb,ssim_rgb,psnr_y,ssim_y' and csv_lines[-1].startswith('mean,')
    assert len(csv_lines) == 4
    assert '| deep_like_rgb.png |' in (tmp_path / 'm.md').read_text()
    values = [float(v) for v in csv_lines[-1].split(',')[1:]]
    assert all(np.isfinite(values)) and 0 < values[0] < 60


def test_restore_with_an_upscaling_network_resizes_alpha(tmp_path):
    torch.manual_seed(0)
    torch.save({'params': NDRRestore(**SMALL_RESTORE, upscale=2).state_dict()}, tmp_path / 'net_g_sr.pth')
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (21, 30, 4), dtype=np.uint8)
    rgba[:, :15, 3] = 0
    rgba[:, 15:, 3] = 255
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'logo.png'), rgba)
    args = [str(tmp_path / 'in' / 'logo.png'), '-o', str(tmp_path / 'out'), '-w', str(tmp_path / 'net_g_sr.pth'), '-q']
    assert restore_main(args + ['--upscale', '3']) == 2  # checked against the weights
    assert restore_main(args + ['--upscale', '2']) == 0
    out = cv2.imread(str(tmp_path / 'out' / 'logo.png'), cv2.IMREAD_UNCHANGED)
    assert out.shape == (42, 60, 4)
    assert (out[:, :28, 3] == 0).all() and (out[:, 32:, 3] == 255).all()


def test_restore_cli_leaves_grad_mode_alone(tmp_path):
    """Running ndrsr-restore in-process must not switch autograd off for the caller."""
    import cv2
    import numpy as np
    import torch

    from ndrsr.archs import NDRRestore
    from ndrsr.cli.restore import main
    torch.save({'params': NDRRestore(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                                     heads=[1, 1, 1, 1]).state_dict()}, tmp_path / 'net_g.pth')
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), np.full((20, 24, 3), 128, np.uint8))
    assert torch.is_grad_enabled()
    assert main([str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '-w', str(tmp_path / 'net_g.pth'), '-q']) == 0
    assert torch.is_grad_enabled()
