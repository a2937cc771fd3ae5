"""Named models: the paper checkpoint's real download, cache and convert path, served from 127.0.0.1."""
import os

import pytest
import torch
from conftest import LocalServer, pin_paper_model

from ndrsr.lib import model_zoo
from ndrsr.lib.convert import convert_released
from ndrsr.lib.weights import load_degrad_network, load_restore_network


@pytest.fixture
def served_release(tmp_path, reference, monkeypatch):
    """The released-format checkpoint (the reference's small network) on a local server; an empty cache."""
    root = tmp_path / 'srv'
    root.mkdir()
    torch.save(reference['state_dict'], root / 'model_L.pth')
    pin_paper_model(monkeypatch, root / 'model_L.pth')  # the served file stands in for the published one
    server = LocalServer(root)
    monkeypatch.setenv('NDRSR_URL_PAPER', server.url('model_L.pth'))
    monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'cache'))
    yield server
    server.close()


def test_paper_model_downloads_once_converts_and_loads(served_release, reference, tmp_path):
    files = model_zoo.resolve_model('paper', progress=False)
    assert served_release.hits == ['/model_L.pth']
    assert files.restore.startswith(str(tmp_path / 'cache'))
    for p in (files.restore, files.degrad, files.options):
        assert os.path.isfile(p)
    again = model_zoo.resolve_model('paper', progress=False)
    assert again == files and served_release.hits == ['/model_L.pth']  # cached: no second download

    g_ref, d_ref, opt = convert_released(reference['state_dict'])
    net = load_restore_network(files.restore)
    assert {k: v for k, v in net.state_dict().items()}.keys() == g_ref.keys()
    assert all(torch.equal(net.state_dict()[k], g_ref[k]) for k in g_ref)
    degrad = load_degrad_network(files.restore)  # found beside net_g.pth
    assert all(torch.equal(degrad.state_dict()[k], d_ref[k]) for k in d_ref)


def test_conversion_is_redone_if_the_cache_is_incomplete(served_release):
    files = model_zoo.resolve_model('paper', progress=False)
    os.remove(files.options)
    model_zoo.resolve_model('paper', progress=False)
    assert os.path.isfile(files.options)
    assert served_release.hits == ['/model_L.pth']  # the downloaded file is reused


def test_offline_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('NDRSR_URL_PAPER', 'http://127.0.0.1:9/model_L.pth')  # discard port: connection refused
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model('paper', progress=False)
    msg = str(err.value)
    assert 'http://127.0.0.1:9/model_L.pth' in msg and 'use that file as the weights' in msg
    assert err.value.argument == 'weights' and '--' not in msg  # the tools name their own flag
    assert not any(f.endswith('.pth') for _, _, fs in os.walk(tmp_path / 'cache') for f in fs)


def test_bad_download_is_reported_not_cached_as_converted(tmp_path, monkeypatch):
    root = tmp_path / 'srv'
    root.mkdir()
    (root / 'model_L.pth').write_bytes(b'<html>not a checkpoint</html>')
    info = model_zoo.MODELS['paper']  # a mirror of a file without a pin: the conversion finds the problem
    monkeypatch.setitem(model_zoo.MODELS, 'paper', model_zoo.ModelInfo(info.name, info.summary, url=info.url,
                                                                       file_name=info.file_name))
    server = LocalServer(root)
    try:
        monkeypatch.setenv('NDRSR_URL_PAPER', server.url('model_L.pth'))
        monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'cache'))
        with pytest.raises(model_zoo.ModelUnavailableError, match='Delete it to download it again'):
            model_zoo.resolve_model('paper', progress=False)
        assert not os.path.exists(tmp_path / 'cache' / 'paper' / 'converted' / 'network_options.yml')
    finally:
        server.close()


def test_unknown_name():
    with pytest.raises(model_zoo.ModelUnavailableError, match="unknown model 'nope'; known models: small, small_v3") \
            as err:
        model_zoo.resolve_model('nope')
    assert err.value.argument == 'model'


@pytest.mark.parametrize('name, recipe', [('small_v1', 'options/train_small_all_in_one.yml'),
                                          ('small_v2', 'options/train_small_all_in_one_v2.yml')])
def test_retired_versions_name_the_options_that_rebuild_them(name, recipe):
    """Versions no longer shipped: a clear refusal naming the recipe (which exists), not 'unknown model'."""
    from conftest import ROOT
    assert os.path.isfile(os.path.join(ROOT, recipe))
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model(name)
    message = str(err.value)
    assert f"model '{name}' is no longer shipped" in message and recipe in message and 'unknown' not in message
    assert err.value.argument == 'model'
    assert not os.path.exists(os.path.join(model_zoo.PACKAGE_WEIGHTS, name))  # and its files are gone


def test_pretrained_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv('NDRSR_PRETRAINED_DIR', raising=False)
    assert model_zoo.pretrained_dir() == model_zoo.PACKAGE_WEIGHTS
    monkeypatch.setenv('NDRSR_PRETRAINED_DIR', str(tmp_path))
    assert model_zoo.pretrained_dir() == str(tmp_path)
    with pytest.raises(model_zoo.ModelUnavailableError, match=str(tmp_path / model_zoo.SMALL_LATEST.folder)):
        model_zoo.resolve_model('small')


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv('NDRSR_CACHE_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert model_zoo.cache_dir() == str(tmp_path / 'ndrsr')
