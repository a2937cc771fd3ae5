"""ndrsr.app.jobs without a browser: the page's work gives the tools' files, failures are messages, requests
do not share outputs. Tiny random networks (the ``weights`` fixture); the browser test uses the shipped model.
"""
import os

import cv2
import numpy as np
import pytest
from conftest import run_tool

from ndrsr.app import jobs
from ndrsr.data.image_io import ImageReadError


@pytest.fixture
def rgba16(tmp_path):
    """A 16-bit RGBA PNG of random pixels (24 x 40)."""
    path = tmp_path / 'in' / 'rgba16.png'
    path.parent.mkdir()
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 65536, (24, 40, 4), dtype=np.uint16))
    return str(path)


def test_restore_photos_writes_what_ndrsr_restore_writes(weights, rgba16, tmp_path):
    networks = jobs.Networks()
    result = jobs.restore_photos([rgba16], str(weights / 'net_g.pth'), 'tiny', jobs.Runtime('cpu', 'fp32'),
                                 networks, str(tmp_path / 'out'))
    assert result.failures == [] and len(result.photos) == 1
    photo = result.photos[0]
    assert os.path.basename(photo.output) == 'rgba16.png' and photo.size == (40, 24)
    cli = run_tool('ndrsr-restore', rgba16, '-o', str(tmp_path / 'cli'), '--weights', str(weights / 'net_g.pth'),
                   '--ext', 'png', '--device', 'cpu', '-q')
    assert cli.returncode == 0, cli.stderr
    assert open(photo.output, 'rb').read() == (tmp_path / 'cli' / 'rgba16.png').read_bytes()
    assert cv2.imread(photo.before).dtype == np.uint8  # previews are 8-bit for the browser
    # a second request: a folder of its own, the network loaded once
    again = jobs.restore_photos([rgba16], str(weights / 'net_g.pth'), 'tiny', jobs.Runtime('cpu', 'fp32'),
                                networks, str(tmp_path / 'out'))
    assert os.path.dirname(again.photos[0].output) != os.path.dirname(photo.output)
    assert len(networks._nets) == 1


def test_bad_photos_are_listed_and_the_others_restored(weights, rgba16, tmp_path):
    bad = tmp_path / 'in' / 'notes.png'
    bad.write_text('not an image')
    result = jobs.restore_photos([str(bad), rgba16], str(weights / 'net_g.pth'), 'tiny', jobs.Runtime('cpu'),
                                 jobs.Networks(), str(tmp_path / 'out'))
    assert [p.name for p in result.photos] == ['rgba16.png']
    assert len(result.failed()) == 1 and result.failed()[0].startswith('notes.png: ')
    assert str(tmp_path) not in result.summary()  # the page names the file, not the server's copy
    assert 'Restored 1 of 2' in result.summary() and 'FAILED notes.png' in result.summary()


def test_transfer_writes_what_ndrsr_degrade_writes(weights, tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'clean.png'), rng.integers(0, 256, (32, 24, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'rainy.png'), rng.integers(0, 256, (16, 40, 3), dtype=np.uint8))
    for fit in ('difference', 'mirror'):
        result = jobs.transfer_degradation(str(folder / 'clean.png'), str(folder / 'rainy.png'), fit,
                                           str(weights / 'net_g.pth'), jobs.Runtime('cpu'), jobs.Networks(),
                                           str(tmp_path / 'out'))
        assert os.path.basename(result.output) == 'clean_like_rainy.png'
        cli = run_tool('ndrsr-degrade', '--like', str(folder / 'rainy.png'), str(folder / 'clean.png'), '-o',
                       str(tmp_path / fit), '--weights', str(weights / 'net_g.pth'), '--fit', fit, '--device', 'cpu',
                       '-q')
        assert cli.returncode == 0, cli.stderr
        assert open(result.output, 'rb').read() == (tmp_path / fit / 'clean_like_rainy.png').read_bytes()
        # the tool's warning (random networks remove little or much) is the page's
        assert any(w.split(': ', 1)[1] in cli.stderr for w in result.warnings) or 'WARNING' not in cli.stderr


def test_maps_give_nine_maps_a_summary_and_a_legend(weights, rgba16, tmp_path):
    result = jobs.degradation_maps(rgba16, str(weights / 'net_g.pth'), 'tiny', jobs.Runtime('cpu'),
                                   jobs.Networks(), str(tmp_path / 'out'))
    assert len(result.maps) == 9 and all(os.path.isfile(f) for f, _ in result.maps)
    assert cv2.imread(result.summary) is not None
    assert 'How to read the maps' in result.legend and 'removes' in result.legend


def test_user_errors_are_one_line_messages(weights, tmp_path):
    with pytest.raises(ValueError, match='no weights file was uploaded'):
        jobs.model_weights(jobs.UPLOADED, None)
    with pytest.raises(ValueError) as err:
        jobs.Runtime(device='cpu', precision='fp16').check()
    assert 'Advanced: precision' in jobs.user_message(err.value)
    truncated = tmp_path / 'cut.png'
    cv2.imwrite(str(truncated), np.zeros((64, 64, 3), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ImageReadError) as err:
        jobs.read_input(str(truncated))
    assert str(err.value).startswith('cut.png: ')
    not_weights = tmp_path / 'w.pth'
    not_weights.write_text('<html>not a checkpoint</html>')
    with pytest.raises(Exception) as err:
        jobs.Networks().get('restore', str(not_weights), 'cpu')
    assert 'w.pth' in jobs.user_message(err.value)
