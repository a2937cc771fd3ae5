"""ndrsr-export, and ndrsr-restore / ndrsr-degrade running its files, as a user runs them.

One ONNX export through the console script (the slow step, module-scoped),
tiny random networks, real images (8-bit JPEG, 16-bit RGBA PNG, gray PNG).
"""
import cv2
import numpy as np
import pytest
from conftest import run_tool

from ndrsr.cli.degrade import main as degrade_main
from ndrsr.cli.export import main as export_main
from ndrsr.cli.restore import main as restore_main

pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp('photos')
    cv2.imwrite(str(folder / 'rgb.jpg'), rng.integers(0, 256, (37, 45, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'deep.png'), rng.integers(0, 65536, (30, 41, 4), dtype=np.uint16))
    cv2.imwrite(str(folder / 'gray.png'), rng.integers(0, 256, (26, 19), dtype=np.uint8))
    return folder


@pytest.fixture(scope='module')
def exported(weights, tmp_path_factory):
    """The tiny test weights exported by the console script to ONNX and safetensors."""
    folder = tmp_path_factory.mktemp('exported')
    onnx_path, st_path = folder / 'tiny.onnx', folder / 'tiny.safetensors'
    res = run_tool('ndrsr-export', '--weights', str(weights / 'net_g.pth'), '--format', 'onnx', '-o', str(onnx_path))
    assert res.returncode == 0, res.stderr
    assert 'onnxruntime vs PyTorch on 37x53, 64x64, 77x130: max difference' in res.stdout
    assert export_main(['--weights', str(weights / 'net_g.pth'), '--format', 'safetensors', '-o', str(st_path)]) == 0
    return onnx_path, st_path


def read_all(folder):
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir()) if p.is_file()}


def test_restore_with_onnx_and_safetensors_gives_the_pth_output(tmp_path, weights, photos, exported):
    onnx_path, st_path = exported
    outs = {}
    for name, w in (('pth', weights / 'net_g.pth'), ('onnx', onnx_path), ('st', st_path)):
        outs[name] = tmp_path / name
        assert restore_main([str(photos), '-o', str(outs[name]), '-w', str(w), '--tile', '24', '--tile-overlap', '8',
                             '-q']) == 0
    pth, onnx, st = (read_all(outs[n]) for n in ('pth', 'onnx', 'st'))
    assert sorted(pth) == sorted(onnx) == sorted(st) == ['deep.png', 'gray.png', 'rgb.jpg']
    for name in pth:
        assert np.abs(st[name].astype(int) - pth[name].astype(int)).max() <= 1  # the same network (float rounding)
        assert onnx[name].shape == pth[name].shape and onnx[name].dtype == pth[name].dtype
        assert np.abs(onnx[name].astype(int) - pth[name].astype(int)).max() <= 1  # float rounding, at most 1 level
    assert np.array_equal(onnx['deep.png'][..., 3], cv2.imread(str(photos / 'deep.png'), cv2.IMREAD_UNCHANGED)[..., 3])


def test_options_that_cannot_apply_to_onnx_are_refused(tmp_path, photos, exported, capsys):
    onnx_path, st_path = exported
    args = [str(photos / 'rgb.jpg'), '-o', str(tmp_path / 'o'), '-w', str(onnx_path), '-q']
    assert restore_main(args + ['--save-maps']) == 2
    assert 'degradation maps need the PyTorch network' in capsys.readouterr().err
    assert restore_main(args + ['--precision', 'bf16']) == 2
    assert 'onnxruntime runs ONNX weights in fp32' in capsys.readouterr().err
    assert degrade_main([str(photos / 'gray.png'), '--like', str(photos / 'rgb.jpg'), '-o', str(tmp_path / 'd'),
                         '-w', str(onnx_path), '-q']) == 2
    assert 'NDR-Degrad' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists() and not (tmp_path / 'd').exists()


def test_degrade_with_the_safetensors_pair_gives_the_pth_output(tmp_path, weights, photos, exported):
    _, st_path = exported
    for name, w in (('pth', weights / 'net_g.pth'), ('st', st_path)):
        assert degrade_main([str(photos / 'gray.png'), '--like', str(photos / 'rgb.jpg'), '-o', str(tmp_path / name),
                             '-w', str(w), '-q']) == 0
    assert read_all(tmp_path / 'pth').keys() == read_all(tmp_path / 'st').keys()
    for name, img in read_all(tmp_path / 'pth').items():
        assert np.abs(img.astype(int) - read_all(tmp_path / 'st')[name].astype(int)).max() <= 1


def test_export_and_restore_name_the_bad_file(tmp_path, weights, photos, exported, capsys):
    onnx_path, _ = exported
    out = tmp_path / 'x.onnx'
    assert export_main(['-w', str(weights / 'net_g.pth'), '--format', 'onnx', '-o', str(onnx_path)]) == 2
    assert 'exists; add --overwrite' in capsys.readouterr().err
    assert export_main(['-w', str(weights / 'net_g.pth'), '--format', 'safetensors', '-o', str(out)]) == 2
    assert 'must end in .safetensors' in capsys.readouterr().err
    assert export_main(['-w', str(onnx_path), '--format', 'safetensors', '-o', str(tmp_path / 'y.safetensors')]) == 2
    assert 'already ONNX' in capsys.readouterr().err
    cut = tmp_path / 'cut.onnx'
    cut.write_bytes(onnx_path.read_bytes()[:3000])
    assert restore_main([str(photos / 'rgb.jpg'), '-o', str(tmp_path / 'o'), '-w', str(cut), '-q']) == 2
    err = capsys.readouterr().err
    assert f'{cut} is not a loadable ONNX model' in err and '(command-line option: --weights)' in err
    assert not (tmp_path / 'o').exists()
