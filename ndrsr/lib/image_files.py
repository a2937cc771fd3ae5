"""Image files for the command-line tools: read and write keeping bit depth, alpha and grayscale.

The training data layer (:mod:`ndrsr.data.image_io`) drops alpha and always
gives 3 channels; the tools must give back what they were given, as
Real-ESRGAN's inference script does:

* 8-bit and 16-bit images are read with ``cv2.IMREAD_UNCHANGED`` and written
  back at the same depth (other sample types are refused with a clear error);
* the alpha channel is kept aside untouched and written back as it was
  (resized with the image, bilinear, when the network up-scales);
* grayscale images are repeated to 3 channels for the network and written
  back as grayscale (BT.601 luma of the restored RGB). OpenCV decodes a
  gray + alpha PNG as BGRA, so those come back as RGBA (gray colours);
* truncated PNG/JPEG files are detected (same check as the data layer), and
  so are JPEGs cut short and patched with an end marker (a strict decode);
* the size is read from the header before decoding and refused above a pixel
  limit (a decompression bomb; :mod:`ndrsr.lib.image_header`);
* the EXIF orientation is applied (the image is read upright, as viewers show
  it, and written upright);
* an image file with several frames (animated GIF/PNG/WebP, multi-page TIFF)
  is read as its first frame, and says so (:attr:`ImageFile.frames`,
  :func:`multi_frame_warning`).

Paths are read with ``np.fromfile`` / written with Python's ``open`` so that non-ASCII
file names work on every platform; writes go to a temporary file renamed into
place, so a crash never leaves half an image, and with ``replace=False`` an
existing file (another run's) is never replaced.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from os import path as osp
from typing import Optional, Tuple

import cv2
import numpy as np

from ndrsr.lib.checkpoint import atomic_write
from ndrsr.data.image_io import IMAGE_EXTENSIONS, ImageReadError, truncation_problem  # one check for the project
from ndrsr.lib.image_header import (DEFAULT_MAX_PIXELS, apply_orientation, jpeg_data_problem, pixel_limit_problem,
                                    read_header)

# First bytes of the formats that may hold several frames (checked further by multi_frame_kind).
MULTI_FRAME_MAGIC = (b'GIF8', b'II*\x00', b'MM\x00*', b'\x89PNG', b'RIFF')
# Extensions that can hold the given properties when writing.
ALPHA_EXTENSIONS = ('.png', '.tif', '.tiff', '.webp')
DEEP_EXTENSIONS = ('.png', '.tif', '.tiff')


@dataclass
class ImageFile:
    """A decoded image file.

    rgb: float32 (H, W, 3) RGB in [0, 1] (grayscale repeated to 3 channels).
    alpha: the alpha channel (H, W) in the file's own dtype, or None.
    bit_depth: 8 or 16.
    gray: True when the file was grayscale (with or without alpha).
    path: where it was read from.
    frames: how many frames / pages the file holds (only the first is read).
    kind: what the file is when it has several frames ('animated GIF', 'multi-page TIFF', ...), else ''.
    """
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    bit_depth: int
    gray: bool
    path: str = ''
    frames: int = 1
    kind: str = ''

    @property
    def max_value(self) -> int:
        return 255 if self.bit_depth == 8 else 65535


def multi_frame_kind(content: bytes) -> str:
    """'animated GIF' / 'animated PNG' / 'animated WebP' / 'multi-page TIFF' when the format can hold several
    frames (for PNG and WebP: when the file says it is animated), else ''."""
    head = content[:8]
    if head[:4] == b'GIF8':
        return 'animated GIF'
    if head[:4] in (b'II*\x00', b'MM\x00*'):
        return 'multi-page TIFF'
    if head == b'\x89PNG\r\n\x1a\n':
        idat = content.find(b'IDAT')
        return 'animated PNG' if b'acTL' in content[:idat if idat > 0 else None] else ''
    if head[:4] == b'RIFF' and content[8:12] == b'WEBP':
        return 'animated WebP' if b'ANIM' in content[12:4096] else ''
    return ''


def frame_count(path: str, content: bytes) -> Tuple[int, str]:
    """(frames, kind) of an image file; (1, '') for the single-frame formats (nothing more is read)."""
    kind = multi_frame_kind(content)
    if not kind:
        return 1, ''
    try:
        return max(int(cv2.imcount(path)), 1), kind
    except cv2.error:
        return 1, kind


def multi_frame_warning(image: ImageFile) -> str:
    """``PATH: an animated GIF of N frames`` for the warning of a tool that uses only the first frame."""
    unit = 'pages' if 'TIFF' in image.kind else 'frames'
    return f'{image.path}: {"an" if image.kind[0] in "aeiou" else "a"} {image.kind} of {image.frames} {unit}'


def read_image_file(path: str, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Read ``path`` keeping depth, alpha and grayscale, upright (EXIF orientation applied); see :class:`ImageFile`.

    ``max_pixels``: refuse images with more pixels, from the header, before
    decoding (0 or None: no limit).

    Raises:
        ImageReadError: missing, empty, truncated, over the pixel limit,
            undecodable, or an unsupported sample type / channel count. The
            message names the file.
    """
    try:
        content = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError(f'{path}: file not found.') from None
    except (IsADirectoryError, PermissionError, OSError) as err:
        raise ImageReadError(f'{path}: cannot be read ({err.__class__.__name__}: {err}).') from None
    if content.size == 0:
        raise ImageReadError(f'{path}: the file is empty. Re-export it or remove it from the input.')
    raw = content.tobytes()
    problem = truncation_problem(raw)
    if problem is not None:
        raise ImageReadError(f'{path}: {problem}. Re-export or re-download it, or remove it from the input.')
    header = read_header(raw)
    problem = pixel_limit_problem(header, max_pixels) or jpeg_data_problem(raw)
    if problem is not None:
        raise ImageReadError(f'{path}: {problem}.')
    try:
        img = cv2.imdecode(content, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # e.g. more pixels than OpenCV decodes
        raise ImageReadError(f'{path}: cannot be decoded ({str(err).strip().splitlines()[-1]}).') from None
    if img is None:
        raise ImageReadError(f'{path}: cannot be decoded (corrupt, truncated or not an image). '
                             'Re-export or re-download it, or remove it from the input.')
    if header is not None and header.orientation != 1:
        img = apply_orientation(img, header.orientation)
    if img.dtype == np.uint8:
        depth = 8
    elif img.dtype == np.uint16:
        depth = 16
    else:
        raise ImageReadError(f'{path}: unsupported sample type {img.dtype} (8- and 16-bit images are supported). '
                             'Convert it to an 8- or 16-bit PNG.')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    alpha, gray = None, False
    if img.ndim == 2:
        gray, color = True, img[:, :, None]
    elif img.shape[2] == 2:
        gray, color, alpha = True, img[:, :, :1], img[:, :, 1].copy()
    elif img.shape[2] == 3:
        color = img
    elif img.shape[2] == 4:
        color, alpha = img[:, :, :3], img[:, :, 3].copy()
    else:
        raise ImageReadError(f'{path}: {img.shape[2]} channels are not supported. Convert it to RGB(A) or gray.')
    rgb = color.astype(np.float32) / (255. if depth == 8 else 65535.)
    rgb = np.repeat(rgb, 3, axis=2) if gray else np.ascontiguousarray(rgb[:, :, ::-1])
    frames, kind = frame_count(path, raw) if raw[:4] in MULTI_FRAME_MAGIC else (1, '')
    return ImageFile(rgb=rgb, alpha=alpha, bit_depth=depth, gray=gray, path=path, frames=frames,
                     kind=kind if frames > 1 else '')


def output_extension(image: Optional[ImageFile], source_path: str, ext: str = 'auto') -> str:
    """The extension to write ``image`` with: ``ext`` ('auto' keeps the input's), switched to
    '.png' when the chosen format cannot be written or cannot hold the alpha channel or 16 bits.
    With ``image`` None: what is known before reading the file."""
    ext = osp.splitext(source_path)[1].lower() if ext == 'auto' else '.' + ext.lower().lstrip('.')
    if ext not in IMAGE_EXTENSIONS:
        ext = '.png'
    if image is not None and ((image.alpha is not None and ext not in ALPHA_EXTENSIONS) or
                              (image.bit_depth == 16 and ext not in DEEP_EXTENSIONS)):
        ext = '.png'
    return ext


def to_file_array(rgb: np.ndarray, bit_depth: int, gray: bool = False,
                  alpha: Optional[np.ndarray] = None) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] -> the uint8/uint16 array OpenCV writes (BGR[A], gray[+A]).

    ``alpha`` (H', W') is resized (bilinear) to (H, W) if needed and appended unchanged otherwise.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {bit_depth}')
    dtype, peak = (np.uint8, 255.) if bit_depth == 8 else (np.uint16, 65535.)
    rgb = np.clip(rgb, 0, 1)
    if gray:
        color = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    else:
        color = rgb[:, :, ::-1]
    out = np.round(color * peak).astype(dtype)
    if alpha is not None and gray:  # OpenCV cannot write gray + alpha: write the gray as BGR + alpha
        out = np.repeat(out, 3, axis=2)
    if alpha is not None:
        if alpha.shape[:2] != out.shape[:2]:
            alpha = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = alpha.astype(dtype) if alpha.dtype == dtype else np.round(
            alpha.astype(np.float64) / np.iinfo(alpha.dtype).max * peak).astype(dtype)
        out = np.concatenate([out, alpha[:, :, None]], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def write_image_array(path: str, array: np.ndarray, replace: bool = True) -> None:
    """Encode ``array`` (as OpenCV expects it) into ``path`` atomically; makes the folder.

    ``replace=False``: FileExistsError if ``path`` exists (also when another
    process creates it meanwhile); the existing file is left as it is.
    """
    ext = osp.splitext(path)[1].lower()
    ok, buf = cv2.imencode(ext, array)
    if not ok:
        raise OSError(f'{path}: OpenCV cannot encode a {array.dtype} image with {array.shape} as {ext}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    def write(tmp: str) -> None:  # a Python file: a write error is an OSError with its errno (a full disk)
        with open(tmp, 'wb') as f:
            f.write(buf.tobytes())

    atomic_write(path, write, tmp=osp.join(folder, f'.{osp.basename(path)}.tmp-{os.getpid()}{ext}'),
                 replace=replace)


def write_image_file(path: str, rgb: np.ndarray, like: ImageFile, replace: bool = True) -> None:
    """Write restored float RGB (H, W, 3) in [0, 1] to ``path`` with the depth, alpha and
    grayscale of the input ``like`` (``replace``: see :func:`write_image_array`)."""
    write_image_array(path, to_file_array(rgb, like.bit_depth, like.gray, like.alpha), replace)


def write_rgb8(path: str, rgb: np.ndarray) -> None:
    """Write a float RGB (H, W, 3) in [0, 1] or uint8 RGB image as an 8-bit file (maps, figures)."""
    if rgb.dtype != np.uint8:
        rgb = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    write_image_array(path, np.ascontiguousarray(rgb[:, :, ::-1]))
