"""What ndrsr-restore --save-maps writes (ndrsr.cli.maps over ndrsr.lib.maps) and what ndrsr-eval scores
(ndrsr.cli.evaluate): files, shapes, exact atom colours, PSNR/SSIM by their definitions, NIQE without ground truth."""
import math

import cv2
import numpy as np
import pytest
from conftest import smooth_image

from ndrsr.cli.evaluate import evaluate_folder, score_pair, to_markdown
from ndrsr.cli.maps import save_maps
from ndrsr.lib.maps import atom_palette
from ndrsr.lib.tiling import tile_recognise


def test_save_maps_files_shapes_and_values(tmp_path, released_nets):
    net = released_nets[0]
    img = smooth_image(37, 50, seed=3)
    us, ss = tile_recognise(net, img)
    rgb = img[0].permute(1, 2, 0).numpy()
    paths = save_maps(str(tmp_path), 'photo', rgb, rgb, us, ss)
    assert set(paths) == {f'L{i}_{n}' for i in (1, 2, 3) for n in ('atom', 'confidence', 'U')} | {'summary'}
    palette = atom_palette(ss[0].shape[1])
    assert len({tuple(c) for c in palette}) == len(palette)  # one distinct colour per atom
    for i, (h, w) in enumerate([(37, 50), (19, 25), (10, 13)], start=1):
        for name in ('atom', 'confidence', 'U'):
            png = cv2.imread(paths[f'L{i}_{name}'], cv2.IMREAD_UNCHANGED)
            assert png.shape == (h, w, 3) and png.dtype == np.uint8, (i, name)
        atom = cv2.imread(paths[f'L{i}_atom'])[:, :, ::-1]
        argmax = ss[i - 1][0, :, :h, :w].argmax(0).numpy()
        assert np.array_equal(atom, palette[argmax])
    u = cv2.imread(paths['L1_U'])
    assert u.min() == 0 and u.max() == 255  # PCA stretched to the full range
    summary = cv2.imread(paths['summary'])
    assert summary.shape[1] == 3 * 320 and summary.shape[0] > 4 * 200
    assert paths['summary'] == str(tmp_path / 'photo_maps' / 'summary.png')


def test_scores_match_definitions_and_tables(tmp_path):
    rng = np.random.default_rng(2)
    gt = rng.integers(20, 230, (32, 40, 3), dtype=np.uint8)
    off = (gt.astype(np.int16) + 5).astype(np.uint8)  # MSE exactly 25 on every channel
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'out').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'norain-1.png'), gt)
    cv2.imwrite(str(tmp_path / 'out' / 'rain-1.png'), off)
    cv2.imwrite(str(tmp_path / 'out' / 'rain-2.png'), gt)  # no ground truth
    s = score_pair(off.astype(np.float64), gt.astype(np.float64))
    assert s['psnr_rgb'] == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-9)
    assert 0.9 < s['ssim_rgb'] < 1 and s['psnr_y'] > 30
    result = evaluate_folder(str(tmp_path / 'out'), str(tmp_path / 'gt'), pairing='rain')
    assert [r['name'] for r in result['rows']] == ['rain-1.png']
    assert result['rows'][0]['psnr_rgb'] == pytest.approx(s['psnr_rgb'])
    assert len(result['failures']) == 1 and 'rain-2' in result['failures'][0][0]
    md = to_markdown(result)
    assert '| rain-1.png | 34.15 |' in md and '**mean (1)**' in md


def test_niqe_without_ground_truth(tmp_path):
    (tmp_path / 'out').mkdir()
    img = (smooth_image(100, 200, seed=4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'out' / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'out' / 'small.png'), img[:96, :150])
    result = evaluate_folder(str(tmp_path / 'out'))
    assert result['columns'] == ['niqe'] and [r['name'] for r in result['rows']] == ['a.png']
    assert np.isfinite(result['rows'][0]['niqe']) and result['rows'][0]['niqe'] > 0
    assert 'two 96x96 blocks' in result['failures'][0][1]
