"""ndrsr-eval: the table first, reports only where asked (never into the scored folder by default), nothing
written when nothing was scored, existing reports kept, clear messages for sizes it cannot score."""
import os

import cv2
import numpy as np
import pytest

from ndrsr.cli import evaluate
from ndrsr.cli.evaluate import main as eval_main

NOT_WRITABLE = '/proc'  # a folder no process can create files in, root included


@pytest.fixture
def pair(tmp_path):
    """restored/ and gt/ with one 32x40 image each (scores about 28 dB)."""
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    noisy = np.clip(gt.astype(int) + rng.integers(-10, 11, gt.shape), 0, 255).astype(np.uint8)
    for name, img in (('restored', noisy), ('gt', gt)):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / 'x.png'), img)
    return tmp_path / 'restored', tmp_path / 'gt'


def test_the_scored_folder_is_left_as_it_was(pair, capsys):
    restored, gt = pair
    assert eval_main([str(restored), '--gt', str(gt)]) == 0
    assert os.listdir(restored) == ['x.png']
    out = capsys.readouterr().out
    assert '| x.png |' in out and 'wrote' not in out


def test_reports_where_asked_folders_created(pair, tmp_path, capsys):
    restored, gt = pair
    csv_path, md_path = tmp_path / 'new' / 'deeper' / 'm.csv', tmp_path / 'other' / 'm.md'
    assert eval_main([str(restored), '--gt', str(gt), '--csv', str(csv_path), '--md', str(md_path)]) == 0
    assert csv_path.read_text().splitlines()[0] == 'name,psnr_rgb,ssim_rgb,psnr_y,ssim_y'
    assert '| x.png |' in md_path.read_text()
    out = capsys.readouterr().out
    assert out.index('| x.png |') < out.index(f'wrote {csv_path}')  # the table comes first


def test_a_report_that_cannot_be_written_is_refused_before_scoring(pair, capsys, monkeypatch):
    restored, gt = pair
    monkeypatch.setattr(evaluate, 'evaluate_folder', lambda *a, **k: pytest.fail('scored before the check'))
    assert eval_main([str(restored), '--gt', str(gt), '--csv', NOT_WRITABLE + '/m.csv']) == 2
    err = capsys.readouterr().err
    assert 'cannot write the report /proc/m.csv' in err and '--csv' in err and 'Traceback' not in err


def test_a_write_failure_after_scoring_keeps_the_table(pair, tmp_path, capsys, monkeypatch):
    restored, gt = pair

    def disk_full(result, path):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(evaluate, 'write_csv', disk_full)
    assert eval_main([str(restored), '--gt', str(gt), '--csv', str(tmp_path / 'm.csv')]) == 2
    captured = capsys.readouterr()
    assert '| x.png |' in captured.out
    assert 'cannot write' in captured.err and 'no space left on the device' in captured.err.lower()
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.m.csv')]  # no temporary file left


def test_existing_reports_are_kept_unless_overwrite(pair, tmp_path, capsys):
    restored, gt = pair
    report = tmp_path / 'm.csv'
    report.write_text('mine')
    assert eval_main([str(restored), '--gt', str(gt), '--csv', str(report)]) == 2
    assert 'already exists' in capsys.readouterr().err and report.read_text() == 'mine'
    assert eval_main([str(restored), '--gt', str(gt), '--csv', str(report), '--overwrite']) == 0
    assert report.read_text().startswith('name,')


def test_nothing_scored_writes_nothing(pair, tmp_path, capsys):
    restored, _ = pair
    empty_gt = tmp_path / 'other_gt'
    empty_gt.mkdir()
    cv2.imwrite(str(empty_gt / 'unrelated.png'), np.zeros((32, 40, 3), np.uint8))
    csv_path = tmp_path / 'reports' / 'm.csv'
    assert eval_main([str(restored), '--gt', str(empty_gt), '--csv', str(csv_path)]) == 1
    assert 'no ground truth' in capsys.readouterr().err
    assert not (tmp_path / 'reports').exists()


def test_a_1x1_image_is_not_scored_as_nan(tmp_path, capsys):
    for name in ('restored', 'gt'):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / 'dot.png'), np.full((1, 1, 3), 100 if name == 'gt' else 110, np.uint8))
    assert eval_main([str(tmp_path / 'restored'), '--gt', str(tmp_path / 'gt')]) == 1
    captured = capsys.readouterr()
    assert 'nan' not in captured.out.lower()
    assert 'SSIM needs at least 11x11 pixels' in captured.err and 'dot.png' in captured.err


def test_crop_border_too_large_for_an_image(pair, capsys):
    restored, gt = pair
    assert eval_main([str(restored), '--gt', str(gt), '--crop-border', '20']) == 1
    err = capsys.readouterr().err
    assert '--crop-border 20 leaves nothing of a 40x32 image' in err and 'error: (-215' not in err


def test_negative_crop_border_is_a_usage_error(pair, capsys):
    restored, gt = pair
    with pytest.raises(SystemExit) as exit_:
        eval_main([str(restored), '--gt', str(gt), '--crop-border', '-2'])
    assert exit_.value.code == 2 and 'must be 0 or more pixels' in capsys.readouterr().err


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    assert eval_main([str(tmp_path / 'nothing')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ndrsr-eval: error:') and err.count('\n') == 1 and err.count('ndrsr-eval:') == 1
