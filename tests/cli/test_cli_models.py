"""Named models in ndrsr-restore / ndrsr-degrade: the default model, --model NAME, the real download path
(served from 127.0.0.1), and the offline failure. The shipped model is stood in for by tiny random networks
in a folder named by $NDRSR_PRETRAINED_DIR, laid out as the package's pretrained/ folder."""
import fnmatch
import os
import runpy
import subprocess

import cv2
import numpy as np
import pytest
import setuptools
import torch
import yaml
from conftest import BIN, ROOT, SMALL_DEGRAD, SMALL_RESTORE, LocalServer, pin_paper_model, run_tool

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.cli.degrade import main as degrade_main
from ndrsr.cli.restore import main as restore_main
from ndrsr.lib import model_zoo
from ndrsr.lib.integrity import write_manifest



def same_files(a, b) -> bool:
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """$NDRSR_PRETRAINED_DIR/<the folder of 'small'> with tiny random networks (non-default FFN factor: only the options
    file says so) and their network_options.yml; returns the folder."""
    folder = tmp_path / 'pretrained' / model_zoo.MODELS['small'].folder
    folder.mkdir(parents=True)
    torch.manual_seed(1)
    restore_opt = dict(SMALL_RESTORE, ffn_expansion_factor=2.0)
    torch.save({'params': NDRRestore(**restore_opt).state_dict()}, folder / 'net_g.pth')
    torch.save({'params': NDRDegrad(**SMALL_DEGRAD).state_dict()}, folder / 'net_degrad.pth')
    with open(folder / 'network_options.yml', 'w') as f:
        yaml.safe_dump({'network_g': dict(type='NDRRestore', **restore_opt),
                        'network_degrad': dict(type='NDRDegrad', **SMALL_DEGRAD)}, f)
    write_manifest([folder / n for n in ('net_g.pth', 'net_degrad.pth', 'network_options.yml')],
                   tmp_path / 'pretrained' / 'SHA256SUMS')  # recorded, as the package's are
    monkeypatch.setenv('NDRSR_PRETRAINED_DIR', str(tmp_path / 'pretrained'))
    return folder


def test_restore_without_weights_uses_the_default_model_and_says_so(shipped, photos, tmp_path, capsys):
    assert restore_main([str(photos), '-o', str(tmp_path / 'default'), '-q']) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f'model: small \u2014 {model_zoo.MODELS["small"].summary} [{shipped}]'
    assert restore_main([str(photos), '-o', str(tmp_path / 'named'), '--model', 'small', '-q']) == 0
    assert capsys.readouterr().out.startswith('model: small')
    assert restore_main([str(photos), '-o', str(tmp_path / 'weights'), '--weights', str(shipped / 'net_g.pth'),
                         '-q']) == 0
    assert 'model:' not in capsys.readouterr().out  # --weights: no model line
    assert same_files(tmp_path / 'default', tmp_path / 'weights')
    assert same_files(tmp_path / 'named', tmp_path / 'weights')


@pytest.mark.slow
def test_the_console_script_finds_the_default_model(shipped, photos, tmp_path):
    res = run_tool('ndrsr-restore', str(photos / 'a.png'), '-o', str(tmp_path / 'out'), '-q')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith('model: small')
    assert (tmp_path / 'out' / 'a.png').is_file()


def test_degrade_with_the_default_model_uses_both_networks(shipped, photos, tmp_path, capsys):
    like = ['--like', str(photos / 'a.png'), str(photos / 'b.png'), '-q']
    assert degrade_main(like + ['-o', str(tmp_path / 'default')]) == 0
    assert capsys.readouterr().out.startswith('model: small')
    assert degrade_main(like + ['-o', str(tmp_path / 'weights'), '-w', str(shipped / 'net_g.pth')]) == 0
    assert same_files(tmp_path / 'default', tmp_path / 'weights')
    assert cv2.imread(str(tmp_path / 'default' / 'b_like_a.png')).shape == (20, 28, 3)


def test_model_and_weights_exclude_each_other(shipped, photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        restore_main([str(photos), '-o', str(tmp_path / 'o'), '--model', 'small', '-w', 'x.pth'])
    assert exit_.value.code == 2 and 'not allowed with argument' in capsys.readouterr().err


@pytest.mark.parametrize('extra, words', [(['--opt', 'x.yml'], '--opt goes with --weights'),
                                          (['--degrad-weights', 'd.pth'], '--degrad-weights goes with --weights')])
def test_options_of_a_weights_file_are_refused_with_a_model(extra, words, shipped, photos, tmp_path, capsys):
    main = restore_main if extra[0] == '--opt' else degrade_main
    args = [str(photos)] if main is restore_main else ['--like', str(photos / 'a.png'), str(photos / 'b.png')]
    assert main(args + ['-o', str(tmp_path / 'o'), '-q'] + extra) == 2
    assert words in capsys.readouterr().err


def test_unknown_model_is_one_line_naming_the_flag(photos, tmp_path, capsys):
    assert restore_main([str(photos), '-o', str(tmp_path / 'o'), '--model', 'large', '-q']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith("ndrsr-restore: error: unknown model 'large'; known models: small, ")
    assert err.rstrip().endswith('paper (command-line option: --model)')


def test_missing_shipped_files_are_one_line(tmp_path, photos, monkeypatch, capsys):
    monkeypatch.setenv('NDRSR_PRETRAINED_DIR', str(tmp_path / 'empty'))
    assert restore_main([str(photos), '-o', str(tmp_path / 'o'), '-q']) == 2
    err = capsys.readouterr().err
    assert "the files of model 'small' are missing" in err and err.count('\n') == 1
    assert not (tmp_path / 'o').exists()


@pytest.mark.slow
def test_paper_model_is_downloaded_once_through_the_cli(tmp_path, reference, monkeypatch, capsys):
    root = tmp_path / 'srv'
    root.mkdir()
    torch.save(reference['state_dict'], root / 'model_L.pth')
    pin_paper_model(monkeypatch, root / 'model_L.pth')  # the served file stands in for the published one
    server = LocalServer(root)
    try:
        monkeypatch.setenv('NDRSR_URL_PAPER', server.url('model_L.pth'))
        monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'cache'))
        img = (reference['lq'][0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
        (tmp_path / 'in').mkdir()
        cv2.imwrite(str(tmp_path / 'in' / 'x.png'), img)
        for out in ('first', 'second'):
            assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / out), '--model', 'paper', '-q']) == 0
        assert server.hits == ['/model_L.pth']  # cached after the first run
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith('Downloading: ') and server.url('model_L.pth') in lines[0]
        assert lines.count(f'model: paper \u2014 {model_zoo.MODELS["paper"].summary} '
                           f'[{tmp_path / "cache" / "paper" / "converted"}]') == 2
        assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / 'released'), '-w', str(root / 'model_L.pth'),
                             '-q']) == 0  # the same checkpoint converted on the fly
        assert same_files(tmp_path / 'first', tmp_path / 'released')
        assert same_files(tmp_path / 'second', tmp_path / 'released')
    finally:
        server.close()


@pytest.mark.slow
def test_paper_model_offline_is_one_clear_message(tmp_path, photos):
    env_url = 'http://127.0.0.1:9/model_L.pth'  # the discard port: connection refused
    res = subprocess.run([os.path.join(BIN, 'ndrsr-restore'), str(photos), '-o', str(tmp_path / 'out'),
                          '--model', 'paper', '-q'], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, NDRSR_URL_PAPER=env_url, NDRSR_CACHE_DIR=str(tmp_path / 'cache'),
                                  CUDA_VISIBLE_DEVICES=''))
    assert res.returncode == 2
    assert 'Traceback' not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("ndrsr-restore: error: could not download model 'paper' from " + env_url)
    assert 'model_L.pth' in line and line.endswith('(command-line option: --weights)')
    assert not (tmp_path / 'out').exists()


def test_shipped_weights_are_package_data(monkeypatch):
    """setup.py installs ndrsr/pretrained/<model>/<file> with the package (pip install, not only -e)."""
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kw: captured.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(os.path.join(ROOT, 'setup.py'))
    patterns = captured['package_data']['ndrsr']
    folders = {m.folder for m in model_zoo.MODELS.values() if m.shipped}
    package = model_zoo.PACKAGE_WEIGHTS
    shipped = {n for n in os.listdir(package) if os.path.isdir(os.path.join(package, n))}
    assert folders == shipped and 'small_v3' in folders  # every folder a model, every model's folder there
    for folder in folders:
        for name in ('net_g.pth', 'net_degrad.pth', 'network_options.yml'):
            assert any(fnmatch.fnmatch(f'pretrained/{folder}/{name}', p) for p in patterns), patterns


SHIPPED = os.path.join(model_zoo.PACKAGE_WEIGHTS, model_zoo.MODELS['small'].folder)


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHIPPED, 'network_options.yml')),
                    reason='the shipped small model is not in this tree')
def test_the_real_default_model_equals_its_weights_file(tmp_path, monkeypatch):
    monkeypatch.delenv('NDRSR_PRETRAINED_DIR', raising=False)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), np.random.default_rng(2).integers(0, 256, (32, 40, 3), np.uint8))
    assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / 'default'), '-q']) == 0
    assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / 'weights'), '-q',
                         '--weights', os.path.join(SHIPPED, 'net_g.pth')]) == 0
    assert same_files(tmp_path / 'default', tmp_path / 'weights')


@pytest.mark.slow
def test_a_closed_output_pipe_ends_quietly(shipped, photos, tmp_path):
    """``ndrsr-restore ... | head -1``: the reader goes away after the model line; no error, no traceback."""
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.Popen([os.path.join(BIN, 'ndrsr-restore'), str(photos), '-o', str(tmp_path / 'out'), '-q'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().startswith('model: small')
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and err == ''
    assert sorted(os.listdir(tmp_path / 'out')) == ['a.png', 'b.png']  # the work was done
