"""The model that ships with the package, run by the tools as a user runs them: it restores, and ndrsr-degrade
transfers noise (--fit difference) and haze (--fit difference-mean) from one photo onto another, and warns when the
--like image holds nothing the model recognises. Photos: scikit-image's bundled ones, small."""
import cv2
import numpy as np
import pytest
import skimage.data

from ndrsr.cli.degrade import main as degrade_main
from ndrsr.lib.image_files import read_image_file
from ndrsr.cli.restore import main as restore_main
from ndrsr.data.degradations import add_gaussian_noise, add_haze, depth_proxy


def photo(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (128, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def write(path, rgb: np.ndarray) -> str:
    cv2.imwrite(str(path), (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)[:, :, ::-1])
    return str(path)


def read(path) -> np.ndarray:
    return read_image_file(str(path)).rgb


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def high_frequency(img: np.ndarray) -> float:
    return float(np.abs(img - cv2.blur(img, (5, 5))).mean())


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    """like images made from chelsea (clean, noise sigma 25, synthetic haze) and the clean photo coffee."""
    folder = tmp_path_factory.mktemp('photos')
    cat, coffee = photo(skimage.data.chelsea()), photo(skimage.data.coffee())
    files = {'cat': write(folder / 'cat.png', cat), 'coffee': write(folder / 'coffee.png', coffee),
             'noisy': write(folder / 'noisy.png', add_gaussian_noise(cat, 25, np.random.default_rng(0))),
             'hazy': write(folder / 'hazy.png', add_haze(cat, 1.6, 0.85, depth_proxy(cat, np.random.default_rng(1))))}
    return files


def test_the_shipped_model_restores_noise_and_haze(scenes, tmp_path, capsys):
    out = tmp_path / 'restored'
    assert restore_main([scenes['noisy'], scenes['hazy'], '-o', str(out), '-q']) == 0
    assert capsys.readouterr().out.startswith('model: small')
    cat = read(scenes['cat'])
    for name in ('noisy', 'hazy'):
        before, after = psnr(read(scenes[name]), cat), psnr(read(out / f'{name}.png'), cat)
        assert after > before + 3, (name, before, after)


def test_degrade_transfers_noise_with_the_difference_fit(scenes, tmp_path):
    out = tmp_path / 'noised'
    assert degrade_main(['--like', scenes['noisy'], scenes['coffee'], '-o', str(out), '-q']) == 0
    clean, noised = read(scenes['coffee']), read(out / 'coffee_like_noisy.png')
    assert high_frequency(noised) > 1.8 * high_frequency(clean)  # grain
    assert abs(noised.mean() - clean.mean()) < 0.02  # not a veil or a cast


def test_degrade_transfers_haze_with_the_difference_mean_fit(scenes, tmp_path):
    out = tmp_path / 'hazed'
    assert degrade_main(['--like', scenes['hazy'], scenes['coffee'], '-o', str(out), '-q',
                         '--fit', 'difference-mean']) == 0
    clean, hazed = read(scenes['coffee']), read(out / 'coffee_like_hazy.png')
    assert hazed.mean() > clean.mean() + 0.08  # lifted towards the airlight
    assert hazed.std() < 0.9 * clean.std()  # flattened
    assert high_frequency(hazed) < 1.2 * high_frequency(clean)  # no grain or streaks added


def test_degrade_warns_when_the_like_image_has_nothing_the_model_removes(scenes, tmp_path, capsys):
    out = tmp_path / 'same'
    assert degrade_main(['--like', scenes['cat'], scenes['coffee'], '-o', str(out), '-q']) == 0
    err = capsys.readouterr().err
    assert f'WARNING {scenes["cat"]}: the restoration removes little from this image' in err
    assert '--fit difference has little to transfer' in err
    clean, out_img = read(scenes['coffee']), read(out / 'coffee_like_cat.png')
    assert psnr(out_img, clean) > 35  # nothing transferred, as warned
    assert degrade_main(['--like', scenes['noisy'], scenes['coffee'], '-o', str(tmp_path / 'n'), '-q']) == 0
    assert 'WARNING' not in capsys.readouterr().err
