"""What an encoded image is before it is decoded: its size (a pixel limit), its EXIF orientation, broken JPEG data.

* :func:`read_header` reads the width, height and EXIF orientation from the
  file's header with Pillow (lazy: nothing is decoded), so that
  :func:`check_pixel_limit` refuses a decompression bomb (a small file that
  decodes to tens of GB) before any memory is taken. The limit is
  :data:`DEFAULT_MAX_PIXELS` unless the caller gives another (the tools'
  ``--max-megapixels``; 0 = no limit).
* :func:`apply_orientation` turns a decoded array (H, W[, C]) upright as the
  EXIF orientation tag (1..8) says; OpenCV's ``IMREAD_UNCHANGED`` ignores it,
  so a portrait photo (tag 6) would come back sideways.
* :func:`jpeg_data_problem` finds JPEG data that ends early although the file
  ends with an end-of-image marker (libjpeg only warns and fills the rest
  grey): it decodes strictly with simplejpeg (libjpeg-turbo) and reports the
  warnings that mean missing data. Harmless warnings (extraneous bytes before
  a marker, common in camera files) are not reported.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: about 1.2 GB as float32 RGB, before the network's buffers
EXIF_ORIENTATION = 0x0112
# libjpeg warnings that mean the entropy-coded data stops early (the rest of the image is invented grey)
_MISSING_DATA = ('premature end', 'corrupt jpeg data: bad huffman', 'huffman code', 'invalid sos',
                 'must have at least', 'bogus marker')
_PIL_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageHeader:
    """Width and height in pixels (as stored, before orientation), the EXIF orientation (1: as stored) and
    Pillow's format name."""
    width: int
    height: int
    orientation: int = 1
    format: str = ''

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(content: bytes) -> Optional[ImageHeader]:
    """The header of an encoded image, or None when Pillow does not know the format (nothing is decoded)."""
    from PIL import Image, UnidentifiedImageError
    with _PIL_LOCK:  # Pillow's own bomb check would stop at its limit before ours is applied
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(io.BytesIO(content)) as im:
                width, height, fmt = im.width, im.height, im.format or ''
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block is not the image's problem
                    orientation = 1
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    return ImageHeader(width, height, orientation if 1 <= orientation <= 8 else 1, fmt)


def pixel_limit_problem(header: Optional[ImageHeader], max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
                        ) -> Optional[str]:
    """Why the image is refused for its size (``max_pixels`` 0 or None: never), else None."""
    if header is None or not max_pixels or header.pixels <= max_pixels:
        return None
    return (f'{header.width}x{header.height} pixels ({header.pixels / 1e6:.0f} MP) is more than the limit of '
            f'{max_pixels / 1e6:g} MP (a decompression bomb, or a very large image: raise the limit with '
            f'--max-megapixels, 0 = none, if you have the memory)')


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` (H, W[, C]) as stored -> upright, for EXIF orientation 1..8 (others: unchanged).

    2: mirrored; 3: rotated 180; 4: flipped upside down; 5: transposed; 6: rotated 90 clockwise to view;
    7: transversed; 8: rotated 90 counter-clockwise to view.
    """
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: a.swapaxes(0, 1)[::-1],
    }
    op = ops.get(int(orientation))
    return array if op is None else np.ascontiguousarray(op(array))


def jpeg_data_problem(content: bytes) -> Optional[str]:
    """Why a JPEG stream's image data is incomplete (libjpeg's warning, e.g. premature end of data), else None.

    None for anything that is not a JPEG, for JPEGs simplejpeg cannot decode at
    all (the decoder used for the pixels reports those) and when simplejpeg is
    not installed.
    """
    if content[:2] != b'\xff\xd8':
        return None
    try:
        import simplejpeg
    except ImportError:
        return None
    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(content)
    except ValueError:
        return None
    target = {'Gray': 'GRAY', 'CMYK': 'CMYK', 'YCCK': 'CMYK'}.get(colorspace, 'RGB')
    try:
        simplejpeg.decode_jpeg(content, colorspace=target, strict=True)
    except ValueError as err:
        message = str(err)
        if any(w in message.lower() for w in _MISSING_DATA):
            return f'JPEG image data is incomplete ({message}): the file was cut short and patched'
    return None


__all__ = ['DEFAULT_MAX_PIXELS', 'ImageHeader', 'apply_orientation', 'jpeg_data_problem', 'pixel_limit_problem',
           'read_header']
