"""ndrsr.lib.image_header on real encoded files: sizes read without decoding, EXIF orientation as Pillow applies it,
JPEG data cut short and patched with an end marker."""
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from ndrsr.lib.image_header import (DEFAULT_MAX_PIXELS, apply_orientation, jpeg_data_problem, pixel_limit_problem,
                                    read_header)


def png_header_only(width, height):
    """A PNG whose IHDR claims width x height but whose data is a few bytes (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')


def photo(h=64, w=48):
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 0)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orientation_matches_pillows_exif_transpose(orientation):
    img = photo(5, 7)
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, 'JPEG', exif=exif, quality=95)
    header = read_header(buf.getvalue())
    assert (header.width, header.height, header.orientation, header.format) == (7, 5, orientation, 'JPEG')
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED),
                           cv2.COLOR_BGR2RGB)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    assert np.array_equal(apply_orientation(decoded, header.orientation), expected)


def test_the_size_of_a_bomb_is_read_from_its_header_and_refused():
    raw = png_header_only(50000, 50000)
    assert len(raw) < 200
    header = read_header(raw)
    assert (header.width, header.height) == (50000, 50000)
    problem = pixel_limit_problem(header)
    assert problem.startswith('50000x50000 pixels (2500 MP) is more than the limit of 100 MP')
    assert '--max-megapixels' in problem
    assert pixel_limit_problem(header, 0) is None and pixel_limit_problem(header, 3_000_000_000) is None
    assert pixel_limit_problem(read_header(png_header_only(10000, 10000)), DEFAULT_MAX_PIXELS) is None


def test_unknown_formats_have_no_header():
    assert read_header(b'not an image at all') is None


def test_a_jpeg_cut_short_with_an_end_marker_appended_is_found():
    good = cv2.imencode('.jpg', photo(256, 256))[1].tobytes()
    assert jpeg_data_problem(good) is None
    patched = good[:len(good) // 2] + b'\xff\xd9'
    problem = jpeg_data_problem(patched)
    assert problem is not None and 'premature end' in problem.lower()
    assert cv2.imdecode(np.frombuffer(patched, np.uint8), cv2.IMREAD_UNCHANGED) is not None  # OpenCV only warns
    gray = cv2.imencode('.jpg', photo(128, 128)[:, :, 0])[1].tobytes()
    assert jpeg_data_problem(gray) is None
    assert jpeg_data_problem(gray[:len(gray) // 2] + b'\xff\xd9') is not None


def test_harmless_jpeg_warnings_are_not_reported():
    good = cv2.imencode('.jpg', photo(64, 64))[1].tobytes()
    extraneous = good[:-2] + b'\x00\x00\xff\xd9'  # "2 extraneous bytes before marker 0xd9", common in camera files
    assert jpeg_data_problem(extraneous) is None
    assert jpeg_data_problem(cv2.imencode('.png', photo())[1].tobytes()) is None
