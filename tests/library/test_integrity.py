"""Weights that are not what they claim: CRC-checked on every load, shipped models against their recorded sha256,
files that are not checkpoints named for what they are (never with torch's advice to drop weights_only), and the
paper model's pinned download (served from 127.0.0.1) refused and deleted when corrupt."""
import os
import pickle
import shutil
import struct
import zipfile

import pytest
import torch
from conftest import SMALL_RESTORE, LocalServer, pin_paper_model

from ndrsr.archs import NDRRestore
from ndrsr.lib import model_zoo
from ndrsr.lib.checkpoint import WeightsError, load_checkpoint
from ndrsr.lib.download import Pin
from ndrsr.lib.integrity import checkpoint_problem, read_manifest, verify_recorded
from ndrsr.lib.weights import load_restore_network

SHIPPED = [m for m in model_zoo.MODELS.values() if m.shipped]


def flip_tensor_bytes(path, member_suffix='/data/0', offsets=(3, 7, 11)):
    """Flip bits inside one tensor's bytes of a zip checkpoint, without touching its CRC (a damaged file)."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 26)  # the local header's name and extra-field lengths (torch pads the extra)
        name_len, extra_len = struct.unpack('<HH', f.read(4))
        start = info.header_offset + 30 + name_len + extra_len
        for off in offsets:
            f.seek(start + off)
            byte = f.read(1)[0]
            f.seek(start + off)
            f.write(bytes([byte ^ 0x70]))  # exponent bits of a float32


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'net_g.pth'
    torch.save({'params': NDRRestore(**SMALL_RESTORE).state_dict()}, path)
    return path


# ----------------------------------------------------------------------------- CRC on every load
def test_flipped_bytes_are_refused_on_load(tiny_weights):
    flip_tensor_bytes(tiny_weights)
    assert checkpoint_problem(str(tiny_weights)).startswith('corrupt: member')
    with pytest.raises(WeightsError, match='fails its CRC-32 check') as err:
        load_restore_network(str(tiny_weights))
    assert str(tiny_weights) in str(err.value) and 'weights_only=False' not in str(err.value)


def test_zeroed_bytes_are_refused_on_load(tiny_weights):
    data = bytearray(tiny_weights.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    tiny_weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r'CRC-32|corrupt|truncated'):
        load_checkpoint(str(tiny_weights))


def test_a_truncated_checkpoint_says_so(tiny_weights):
    tiny_weights.write_bytes(tiny_weights.read_bytes()[:5000])
    with pytest.raises(WeightsError, match='truncated'):
        load_checkpoint(str(tiny_weights))


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.mark.parametrize('content, words', [
    (b'<!DOCTYPE html><html><body>Sign in</body></html>', 'is an HTML page, not a checkpoint'),
    (bytes(8192), 'is all zero bytes'),
    (b'', 'is empty'),
    (pickle.dumps(Evil(), protocol=2), 'is a Python pickle that holds more than tensors'),
    (b'just some notes\n' * 20, 'is a text file'),
])
def test_files_that_are_not_checkpoints_are_named_for_what_they_are(tmp_path, content, words):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(str(path))
    msg = str(err.value)
    assert words in msg and str(path) in msg
    assert 'weights_only=False' not in msg and 'weights_only` set to `False' not in msg
    assert '\n' not in msg


def test_an_intact_legacy_format_checkpoint_still_loads(tmp_path):
    path = tmp_path / 'old.pth'
    torch.save({'w': torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(str(path))['w'], torch.ones(3))


# ----------------------------------------------------------------------------- recorded sha256 of shipped models
def test_every_shipped_file_is_recorded_and_matches():
    manifest = os.path.join(model_zoo.PACKAGE_WEIGHTS, 'SHA256SUMS')
    recorded = read_manifest(manifest)
    for info in SHIPPED:
        for name in ('net_g.pth', 'net_degrad.pth', 'network_options.yml'):
            assert f'{info.folder}/{name}' in recorded, f'add {info.folder}/{name} to {manifest}'
    verify_recorded([os.path.join(model_zoo.PACKAGE_WEIGHTS, rel) for rel in recorded], manifest, 'reinstall')


@pytest.fixture
def pretrained_copy(tmp_path, monkeypatch):
    """A copy of the package's pretrained/ folder (with its SHA256SUMS) named by $NDRSR_PRETRAINED_DIR."""
    copy = tmp_path / 'pretrained'
    shutil.copytree(model_zoo.PACKAGE_WEIGHTS, copy)
    monkeypatch.setenv('NDRSR_PRETRAINED_DIR', str(copy))
    return copy


def test_a_shipped_file_replaced_by_another_models_is_refused(pretrained_copy, tiny_weights):
    name = model_zoo.SMALL_LATEST.name
    folder = pretrained_copy / model_zoo.SMALL_LATEST.folder
    assert model_zoo.resolve_model(name).restore == str(folder / 'net_g.pth')
    shutil.copy(tiny_weights, folder / 'net_g.pth')  # another model's intact weights under the shipped name
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model(name)
    msg = str(err.value)
    assert f'{folder / "net_g.pth"} is not the recorded file' in msg
    assert 'NDRSR_PRETRAINED_DIR' in msg and 'reinstall ndrsr' in msg


def test_flipped_exponent_bits_in_a_shipped_model_are_refused(pretrained_copy):
    flip_tensor_bytes(pretrained_copy / model_zoo.SMALL_LATEST.folder / 'net_g.pth')
    with pytest.raises(model_zoo.ModelUnavailableError, match='is not the recorded file'):
        model_zoo.resolve_model('small')


def test_a_shipped_folder_without_its_manifest_is_refused(pretrained_copy):
    os.remove(pretrained_copy / 'SHA256SUMS')
    with pytest.raises(model_zoo.ModelUnavailableError, match='SHA256SUMS is missing'):
        model_zoo.resolve_model('small')


def test_a_wrong_pretrained_dir_names_the_variable_and_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv('NDRSR_PRETRAINED_DIR', str(tmp_path / 'nowhere'))
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model('small')
    msg = str(err.value)
    assert '$NDRSR_PRETRAINED_DIR' in msg and str(tmp_path / 'nowhere') in msg
    assert os.path.join(str(tmp_path / 'nowhere'), model_zoo.SMALL_LATEST.folder, 'net_g.pth') in msg


# ----------------------------------------------------------------------------- the paper model's download
@pytest.fixture
def served(tmp_path, reference, monkeypatch):
    """The released-format checkpoint on a local server, pinned (size + sha256) as model_zoo pins model_L.pth."""
    root = tmp_path / 'srv'
    root.mkdir()
    torch.save(reference['state_dict'], root / 'model_L.pth')
    pin_paper_model(monkeypatch, root / 'model_L.pth')
    server = LocalServer(root)
    monkeypatch.setenv('NDRSR_URL_PAPER', server.url('model_L.pth'))
    monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('NDRSR_DOWNLOAD_RETRIES', '0')
    yield root
    server.close()


def cache_files(tmp_path):
    return sorted(os.path.relpath(os.path.join(b, f), tmp_path / 'cache')
                  for b, _, fs in os.walk(tmp_path / 'cache') for f in fs)


def test_the_released_file_is_pinned():
    pin = model_zoo.MODELS['paper'].pin
    assert pin == Pin(113841146, 'ad69f65d6c42ecfd1cb23c934ff60aaf4b6ce8b9b654b2ca49c27cb295fa7320')


def test_a_corrupted_download_is_refused_deleted_and_not_converted(served, tmp_path):
    flip_tensor_bytes(served / 'model_L.pth')  # same size, bits flipped in a tensor
    with pytest.raises(model_zoo.ModelUnavailableError, match='is not the published one') as err:
        model_zoo.resolve_model('paper', progress=False)
    assert 'deleted' in str(err.value)
    assert cache_files(tmp_path) == []


def test_an_html_page_in_place_of_the_file_is_said_so(served, tmp_path):
    (served / 'model_L.pth').write_bytes(b'<!DOCTYPE html><html><body>Sign in to continue</body></html>')
    with pytest.raises(model_zoo.ModelUnavailableError, match='the server sent an HTML page'):
        model_zoo.resolve_model('paper', progress=False)
    assert cache_files(tmp_path) == []


def test_a_good_download_records_the_converted_files_and_checks_them(served, tmp_path):
    files = model_zoo.resolve_model('paper', progress=False)
    converted = os.path.dirname(files.restore)
    assert sorted(read_manifest(os.path.join(converted, 'SHA256SUMS'))) == [
        'net_degrad.pth', 'net_g.pth', 'network_options.yml']
    flip_tensor_bytes(files.restore)
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model('paper', progress=False)
    msg = str(err.value)
    assert converted in msg and f'delete {converted} to convert again' in msg


def test_a_damaged_cached_download_is_fetched_again(served, tmp_path):
    model_zoo.resolve_model('paper', progress=False)
    cached = tmp_path / 'cache' / 'paper' / 'model_L.pth'
    shutil.rmtree(tmp_path / 'cache' / 'paper' / 'converted')
    cached.write_bytes(cached.read_bytes()[:1000])  # cut short by another program
    files = model_zoo.resolve_model('paper', progress=False)
    assert cached.read_bytes() == (served / 'model_L.pth').read_bytes() and os.path.isfile(files.options)


def test_not_a_url_leaves_nothing(served, tmp_path, monkeypatch):
    monkeypatch.setenv('NDRSR_URL_PAPER', 'not a url')
    with pytest.raises(model_zoo.ModelUnavailableError, match="NDRSR_URL_PAPER.*'not a url' is not a URL"):
        model_zoo.resolve_model('paper', progress=False)
    assert cache_files(tmp_path) == []


def test_leftovers_of_killed_runs_are_cleaned(served, tmp_path):
    paper = tmp_path / 'cache' / 'paper'
    paper.mkdir(parents=True)
    (paper / '.model_L.pth.partial-999999999').write_bytes(b'half')  # no such pid
    (tmp_path / 'cache' / 'paper' / '.convert-999999999-abc').mkdir()
    (tmp_path / 'cache' / 'paper' / '.convert-999999999-abc' / 'net_g.pth').write_bytes(b'half')
    model_zoo.resolve_model('paper', progress=False)
    assert sorted(os.listdir(paper)) == ['converted', 'model_L.pth']


def test_an_unwritable_cache_names_the_cache_and_the_variable(served, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('x')
    monkeypatch.setenv('NDRSR_CACHE_DIR', str(tmp_path / 'file' / 'cache'))  # a file where a folder should be
    with pytest.raises(model_zoo.ModelUnavailableError) as err:
        model_zoo.resolve_model('paper', progress=False)
    msg = str(err.value)
    assert str(tmp_path / 'file' / 'cache') in msg and '$NDRSR_CACHE_DIR' in msg

