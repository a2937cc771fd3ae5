"""ndrsr.lib.image_files: 8/16-bit, alpha and gray files read and written back; unreadable files named."""
import cv2
import numpy as np
import pytest

from ndrsr.data.image_io import ImageReadError
from ndrsr.lib.image_files import output_extension, read_image_file, to_file_array, write_image_file


def test_16bit_rgba_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65536, (13, 21, 4), dtype=np.uint16)
    src = str(tmp_path / 'in.png')
    cv2.imwrite(src, arr)
    img = read_image_file(src)
    assert img.bit_depth == 16 and not img.gray and img.alpha.dtype == np.uint16
    assert np.allclose(img.rgb, arr[:, :, 2::-1] / 65535.)
    out = str(tmp_path / 'out.png')
    write_image_file(out, img.rgb, img)
    assert np.array_equal(cv2.imread(out, cv2.IMREAD_UNCHANGED), arr)  # lossless at 16 bits, alpha untouched


def test_gray_gray_alpha_and_extension_choice(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    img = read_image_file(str(tmp_path / 'g.png'))
    assert img.gray and img.rgb.shape == (9, 11, 3) and img.alpha is None
    assert np.array_equal(to_file_array(img.rgb, 8, gray=True), gray)
    ga = to_file_array(img.rgb, 8, True, 255 - gray)  # OpenCV writes no gray + alpha: gray BGR + alpha
    assert ga.shape == (9, 11, 4) and all(np.array_equal(ga[:, :, c], gray) for c in range(3))
    cv2.imwrite(str(tmp_path / 'ga.png'), ga)
    img = read_image_file(str(tmp_path / 'ga.png'))
    assert np.array_equal(img.alpha, 255 - gray)
    up = to_file_array(np.zeros((18, 22, 3), np.float32), 8, False, img.alpha)  # alpha follows an up-scaled image
    assert up.shape == (18, 22, 4) and up[:, :, 3].mean() == pytest.approx((255 - gray).mean(), abs=3)
    assert output_extension(img, 'x.jpg') == '.png'  # JPEG cannot hold alpha
    cv2.imwrite(str(tmp_path / 'c.jpg'), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert output_extension(read_image_file(str(tmp_path / 'c.jpg')), 'c.jpg') == '.jpg'


def test_unreadable_files_raise_clear_errors(tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:40])
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'text.jpg').write_bytes(b'hello, not an image')
    for name, what in (('cut.png', 'truncated'), ('empty.png', 'empty'), ('text.jpg', 'cannot be decoded'),
                       ('missing.png', 'not found')):
        with pytest.raises(ImageReadError, match=what) as err:
            read_image_file(str(tmp_path / name))
        assert name in str(err.value)
