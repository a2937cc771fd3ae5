"""ndrsr-restore / ndrsr-degrade outputs: checked before any work, never replaced unless asked, nothing left
behind when nothing was produced; the errors a user can fix are one line without a traceback."""
import os

import cv2
import numpy as np
import pytest
import torch
from conftest import run_tool

from ndrsr.cli.degrade import main as degrade_main
from ndrsr.cli.restore import main as restore_main

NOT_WRITABLE = '/proc'  # a folder no process can create files in, root included


def g(weights) -> str:
    """The NDR-Restore weights file of the shared tiny networks (the ``weights`` fixture)."""
    return str(weights / 'net_g.pth')


@pytest.fixture
def network_must_not_run(monkeypatch):
    """Fail the test if a tool gets as far as loading a network."""
    def refuse(*args, **kwargs):
        raise AssertionError('the network was loaded: the problem should have been found before')
    monkeypatch.setattr('ndrsr.lib.weights.load_restore_network', refuse)


# ----------------------------------------------------------------------------- where the outputs go
@pytest.mark.slow
def test_output_that_is_a_file_is_refused_without_a_traceback(tmp_path, weights, photos):
    (tmp_path / 'taken').write_text('x')
    res = run_tool('ndrsr-restore', str(photos), '-o', str(tmp_path / 'taken'), '-w', g(weights), '-q')
    assert res.returncode == 2
    assert 'Traceback' not in res.stderr and 'is a file, not a folder' in res.stderr
    assert (tmp_path / 'taken').read_text() == 'x'


def test_output_under_a_file_is_refused(tmp_path, weights, photos, capsys, network_must_not_run):
    (tmp_path / 'taken').write_text('x')
    assert restore_main([str(photos), '-o', str(tmp_path / 'taken' / 'sub'), '-w', g(weights), '-q']) == 2
    assert 'is a file, not a folder' in capsys.readouterr().err


@pytest.mark.parametrize('out', [NOT_WRITABLE, NOT_WRITABLE + '/ndrsr-out'])
def test_a_non_writable_output_is_found_before_the_network_runs(out, weights, photos, capsys, network_must_not_run):
    assert restore_main([str(photos), '-o', out, '-w', g(weights), '-q']) == 2
    err = capsys.readouterr().err
    assert err.startswith('ndrsr-restore: error: cannot write the output folder') and 'Choose another' in err


def test_degrade_checks_its_output_before_the_networks_run(tmp_path, weights, photos, capsys, network_must_not_run):
    assert degrade_main(['--like', str(photos / 'a.png'), str(photos / 'b.png'), '-o', NOT_WRITABLE,
                         '-w', g(weights), '-q']) == 2
    assert 'cannot write the output folder' in capsys.readouterr().err


def test_negative_tile_sizes_are_refused_by_the_parser(tmp_path, weights, photos, capsys):
    for flag in ('--tile', '--tile-overlap'):
        with pytest.raises(SystemExit) as exit_:
            restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), flag, '-8', '-q'])
        assert exit_.value.code == 2
        assert f'argument {flag}: must be 0 or more pixels, got -8' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


# ----------------------------------------------------------------------------- nothing left behind
def test_restore_leaves_no_folder_when_every_input_fails(tmp_path, weights):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    out = tmp_path / 'out'
    assert restore_main([str(tmp_path / 'in'), '-o', str(out), '-w', g(weights), '-q']) == 1
    assert not out.exists()


def test_degrade_leaves_no_folder_when_every_input_fails(tmp_path, weights, photos):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    out = tmp_path / 'out'
    assert degrade_main(['--like', str(photos / 'a.png'), str(tmp_path / 'in' / 'broken.png'), '-o', str(out),
                         '-w', g(weights), '-q']) == 1
    assert not out.exists()


def test_an_existing_empty_output_folder_is_kept(tmp_path, weights):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'broken.png').write_bytes(b'')
    (tmp_path / 'out').mkdir()
    assert restore_main([str(tmp_path / 'in' / 'broken.png'), '-o', str(tmp_path / 'out'), '-w', g(weights),
                         '-q']) == 1
    assert (tmp_path / 'out').is_dir()


# ----------------------------------------------------------------------------- existing outputs
def test_existing_outputs_are_refused_before_anything_runs(tmp_path, weights, photos, capsys, network_must_not_run):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'mine')
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q']) == 2
    err = capsys.readouterr().err
    assert 'already exist' in err and 'a.png' in err and '--overwrite' in err and '--skip-existing' in err
    assert (out / 'a.png').read_bytes() == b'mine' and sorted(os.listdir(out)) == ['a.png']


def test_skip_existing_keeps_them_and_says_which(tmp_path, weights, photos, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'mine')
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q', '--skip-existing']) == 0
    printed = capsys.readouterr().out
    assert 'kept 1 existing output(s) (--skip-existing): a.png' in printed and 'restored 1/1' in printed
    assert (out / 'a.png').read_bytes() == b'mine'
    assert cv2.imread(str(out / 'b.png')).shape == (20, 28, 3)
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q', '--skip-existing']) == 0
    assert 'nothing to restore' in capsys.readouterr().out


def test_overwrite_replaces_them(tmp_path, weights, photos):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'mine')
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q', '--overwrite']) == 0
    assert cv2.imread(str(out / 'a.png')).shape == (20, 28, 3)


def test_overwrite_and_skip_existing_exclude_each_other(tmp_path, weights, photos):
    with pytest.raises(SystemExit):
        restore_main([str(photos), '-o', str(tmp_path / 'o'), '-w', g(weights), '--overwrite', '--skip-existing'])


def test_an_output_whose_name_depends_on_the_image_is_not_replaced(tmp_path, weights, capsys):
    """A JPEG-named input with 16 bits is written as PNG: that name is checked when the image is read."""
    (tmp_path / 'in').mkdir()
    deep = np.random.default_rng(1).integers(0, 65536, (16, 16, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'in' / 'deep.tif'), deep)
    os.rename(tmp_path / 'in' / 'deep.tif', tmp_path / 'in' / 'deep.jpg')  # a 16-bit TIFF named .jpg
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'deep.png').write_bytes(b'mine')
    assert restore_main([str(tmp_path / 'in'), '-o', str(out), '-w', g(weights), '-q']) == 1
    assert 'deep.png already exists' in capsys.readouterr().err
    assert (out / 'deep.png').read_bytes() == b'mine'


def test_degrade_refuses_and_keeps_existing_outputs(tmp_path, weights, photos, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'b_like_a.png').write_bytes(b'mine')
    args = ['--like', str(photos / 'a.png'), str(photos / 'b.png'), '-o', str(out), '-w', g(weights), '-q']
    assert degrade_main(args) == 2
    assert 'b_like_a.png' in capsys.readouterr().err
    assert degrade_main(args + ['--skip-existing']) == 0
    assert 'kept 1 existing output(s)' in capsys.readouterr().out
    assert (out / 'b_like_a.png').read_bytes() == b'mine'
    assert degrade_main(args + ['--overwrite']) == 0
    assert cv2.imread(str(out / 'b_like_a.png')).shape == (20, 28, 3)


def test_degrade_refuses_two_clean_images_with_one_output_name(tmp_path, weights, photos, capsys):
    cv2.imwrite(str(photos / 'b.jpg'), np.zeros((8, 8, 3), np.uint8))
    assert degrade_main(['--like', str(photos / 'a.png'), str(photos / 'b.png'), str(photos / 'b.jpg'),
                         '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 2
    assert 'would be written as' in capsys.readouterr().err


# ----------------------------------------------------------------------------- several frames
def test_an_animated_gif_restores_its_first_frame_and_says_so(tmp_path, weights, capsys):
    animation = cv2.Animation()
    animation.frames = [np.full((16, 24, 3), 40 * i, np.uint8) for i in range(3)]
    animation.durations = [100] * 3
    gif = tmp_path / 'clip.gif'
    assert cv2.imwriteanimation(str(gif), animation)
    assert restore_main([str(gif), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 0
    err = capsys.readouterr().err
    assert f'WARNING {gif}: an animated GIF of 3 frames; only the first frame is restored' in err
    assert cv2.imread(str(tmp_path / 'out' / 'clip.png')).shape == (16, 24, 3)


def test_a_single_frame_file_gives_no_warning(tmp_path, weights, photos, capsys):
    assert restore_main([str(photos / 'a.png'), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 0
    assert 'WARNING' not in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors a user can fix
def test_a_bad_device_is_one_line(tmp_path, weights, photos, capsys):
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), '--device', 'gpu', '-q']) == 2
    assert capsys.readouterr().err.strip() == ("ndrsr-restore: error: device must be auto, cpu or cuda[:N], got 'gpu' "
                                               "(command-line option: --device)")


def test_a_yaml_syntax_error_in_opt_is_one_line(tmp_path, weights, photos, capsys):
    (tmp_path / 'bad.yml').write_text('network_g: [dim: 8\n')
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), '--opt',
                         str(tmp_path / 'bad.yml'), '-q']) == 2
    line = capsys.readouterr().err.strip()
    assert '\n' not in line and 'bad.yml is not valid YAML (line 2' in line and line.endswith('--opt)')


def test_ctrl_c_ends_with_one_line(tmp_path, weights, photos, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr('ndrsr.cli.restore.restore_one', interrupted)
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 130
    assert capsys.readouterr().err.strip() == 'ndrsr-restore: interrupted'
    assert not (tmp_path / 'out').exists()


def test_convert_into_a_path_under_a_file_is_one_line(tmp_path, reference, capsys):
    from ndrsr.cli.convert import main as convert_main
    torch.save(reference['state_dict'], tmp_path / 'model_L.pth')
    (tmp_path / 'taken').write_text('x')
    assert convert_main([str(tmp_path / 'model_L.pth'), str(tmp_path / 'taken' / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ndrsr-convert: error:') and 'Not a directory' in err and err.count('\n') == 1
