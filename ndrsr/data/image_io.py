"""Reading images through BasicSR's FileClient, with errors that name the file and the fix.

Every image the data layer reads goes through :func:`decode_image`, so disk
folders and LMDBs give bit-identical arrays. The choices, documented in
``docs/datasets.md``:

* decoded with ``cv2.IMREAD_UNCHANGED`` (what BasicSR's LMDB builders store),
  so EXIF orientation is ignored on every backend alike;
* 8-bit images are divided by 255, 16-bit images by 65535 (precision kept,
  unlike ``basicsr.utils.imfrombytes`` which truncates them to 8 bits);
  any other sample type (float EXR/TIFF, 32-bit int) is rejected;
* grayscale images are repeated to 3 channels (``gray: convert``, the default)
  or rejected (``gray: error``);
* RGBA / BGRA images: the alpha channel is dropped (not composited);
* truncated files are detected: PNGs must end with an ``IEND`` chunk, JPEGs
  with an ``EOI`` marker (OpenCV would otherwise return a silently grey-filled
  image), and anything OpenCV cannot decode is reported as corrupt.

Output of :func:`decode_image`: float32 ndarray (H, W, 3), BGR, values in [0, 1]
(BasicSR's convention before ``img2tensor(bgr2rgb=True)``).
"""
from __future__ import annotations

from os import path as osp
from typing import Any, Dict, Optional, Set

import cv2
import numpy as np

GRAY_MODES = ('convert', 'error')
# File extensions taken for images, everywhere (data folders, LMDB building, the command-line tools).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pnm')
_LMDB_ENVS: Dict[str, Any] = {}


class DataLayoutError(ValueError):
    """The data on disk does not match the options. The message names the file/folder and the fix.

    (Defined here so that the LMDB checks below can raise it; :mod:`ndrsr.data.pairing` re-exports it.)
    """


class ImageReadError(ValueError):
    """An image could not be read or is in an unsupported format. The message names the file and the fix."""


def truncation_problem(content: bytes) -> Optional[str]:
    """Return a description if ``content`` is a PNG/JPEG stream that is cut short, else None."""
    if content[:8] == b'\x89PNG\r\n\x1a\n':
        if b'IEND' not in content[-16:]:
            return 'PNG stream has no IEND chunk (file truncated)'
    elif content[:2] == b'\xff\xd8':
        tail = content.rstrip(b'\x00\r\n\t ')
        if not tail.endswith(b'\xff\xd9'):
            return 'JPEG stream has no end-of-image marker (file truncated)'
    return None


def decode_image(content: Optional[bytes], name: str, gray: str = 'convert') -> np.ndarray:
    """Decode image bytes into a float32 BGR array in [0, 1].

    Args:
        content: encoded image bytes (PNG, JPEG, BMP, TIFF, WebP ...), or None
            when an LMDB had no value for the key.
        name: the file path or ``lmdb:key`` used in error messages.
        gray: 'convert' repeats grayscale images to 3 channels, 'error' rejects them.

    Returns:
        ndarray (H, W, 3), float32, BGR, in [0, 1].

    Raises:
        ImageReadError: missing value, corrupt or truncated data, unsupported
            sample type or channel count, grayscale with ``gray='error'``.
    """
    if gray not in GRAY_MODES:
        raise ValueError(f"gray must be one of {GRAY_MODES}, got {gray!r}")
    if content is None:
        raise ImageReadError(f'{name}: no data (the LMDB has no value for this key). '
                             'Rebuild the LMDB with `ndrsr-make-lmdb` or remove the key from '
                             'its meta_info.txt.')
    if len(content) == 0:
        raise ImageReadError(f'{name}: the file is empty. Re-export it or remove it from the folder.')
    problem = truncation_problem(content)
    if problem is not None:
        raise ImageReadError(f'{name}: {problem}. Re-export or re-download it, or remove it from the folder.')
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f'{name}: cannot be decoded (corrupt, truncated or not an image). '
                             'Re-export or re-download it, or remove it from the folder.')
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.
    else:
        raise ImageReadError(f'{name}: unsupported sample type {img.dtype} (only 8-bit and 16-bit images are '
                             'supported). Convert it to an 8- or 16-bit PNG.')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        if gray == 'error':
            raise ImageReadError(f'{name}: grayscale image, but the dataset has gray: error. '
                                 'Convert it to colour, remove it, or set gray: convert.')
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])  # drop alpha (documented: not composited)
    elif img.shape[2] == 2:  # gray + alpha
        if gray == 'error':
            raise ImageReadError(f'{name}: grayscale+alpha image, but the dataset has gray: error. '
                                 'Convert it to colour, remove it, or set gray: convert.')
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.shape[2] != 3:
        raise ImageReadError(f'{name}: {img.shape[2]} channels are not supported. Convert it to an RGB image.')
    return img


def read_image(file_client, path: str, client_key: str = 'default', gray: str = 'convert',
               display: Optional[str] = None) -> np.ndarray:
    """Read one image through a BasicSR ``FileClient`` and decode it with :func:`decode_image`.

    Args:
        file_client: ``basicsr.utils.FileClient`` ('disk' or 'lmdb').
        path: file path (disk) or LMDB key (lmdb).
        client_key: the LMDB client ('lq' or 'gt'); ignored on disk.
        gray: see :func:`decode_image`.
        display: how to name the image in errors (default: ``path``), e.g. ``"/x/gt.lmdb key 'a'"``.

    Returns:
        ndarray (H, W, 3), float32, BGR, in [0, 1].
    """
    name = display or path
    if file_client.backend == 'lmdb':
        try:
            content = file_client.get(path, client_key)
        except UnicodeEncodeError:
            raise ImageReadError(f'{name}: LMDB keys must be ASCII. Rename the file and rebuild the LMDB.') from None
    else:
        try:
            content = file_client.get(path)
        except FileNotFoundError:
            raise ImageReadError(f'{name}: file not found (moved or deleted after the dataset was indexed?). '
                                 'Restore it or re-run `ndrsr-check -opt OPTIONS.yml`.') from None
        except IsADirectoryError:
            raise ImageReadError(f'{name}: is a folder, not an image. Move it out of the data folder.') from None
    return decode_image(content, name, gray)


def image_shape(content: bytes) -> tuple:
    """(H, W, C) of encoded image bytes as stored (C = 1 for grayscale); decodes the image."""
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError('cannot decode image bytes')
    return (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])


def lmdb_problem(path: str, env: Any = None) -> Optional[str]:
    """Why the LMDB at ``path`` cannot be read safely, or None.

    Checks ``data.mdb`` exists, is not empty and holds every page the database
    uses: LMDB maps the file into memory, so a truncated file (a copy or
    download cut short) is only noticed when a missing page is touched, and then
    the process dies with SIGBUS and no message. The page count comes from the
    environment's meta pages (``last_pgno`` and the page size), read without
    touching the data pages. ``env``: an environment already open on ``path`` (default: the shared one of
    :func:`lmdb_env`, if any).
    """
    import lmdb
    data = osp.join(path, 'data.mdb')
    if not osp.isfile(data):
        return f'{path} has no data.mdb, it is not an LMDB'
    size = osp.getsize(data)
    if size == 0:
        return f'{data} is empty (0 bytes): the LMDB was never written or its copy failed'
    opened = None
    env = env if env is not None else _LMDB_ENVS.get(osp.realpath(path))  # py-lmdb opens an LMDB once per process
    try:
        if env is None:
            env = opened = lmdb.open(path, readonly=True, lock=False, readahead=False)
        need = (env.info()['last_pgno'] + 1) * env.stat()['psize']
    except lmdb.Error as e:
        return f'{data} is not a readable LMDB ({e})'
    finally:
        if opened is not None:
            opened.close()
    if size < need:
        return (f'{data} is truncated: {size} bytes, but the database uses {need} bytes (a copy or download cut '
                'short, or a disk that filled up)')
    return None


def _lmdb_fix(path: str) -> str:
    return (f'Rebuild it with `ndrsr-make-lmdb FOLDER {path}` (after moving the broken one away), '
            'or copy it again.')


def check_lmdb(path: str, env: Any = None) -> None:
    """Raise :class:`DataLayoutError` naming the file and the fix when :func:`lmdb_problem` finds one."""
    problem = lmdb_problem(path, env)
    if problem is not None:
        raise DataLayoutError(f'{problem}. {_lmdb_fix(path)}')


def lmdb_env(path: str, **kwargs) -> Any:
    """The process-wide read-only ``lmdb.Environment`` of an LMDB, opened on first use.

    py-lmdb refuses to open one LMDB twice in a process, and its registry of open
    LMDBs survives ``fork``; so every FileClient of the data layer shares one
    environment per path (two sources, or a training and a validation set, may
    read the same LMDB), and a DataLoader worker forked after the parent opened
    one reuses it (read-only, ``lock=False``: no lock table is shared).
    ``kwargs`` override BasicSR's defaults ``readonly=True, lock=False, readahead=False``.
    An empty, truncated or invalid ``data.mdb`` is a :class:`DataLayoutError` (:func:`check_lmdb`).
    """
    key = osp.realpath(path)
    env = _LMDB_ENVS.get(key)
    if env is None:
        import lmdb
        opts = dict(readonly=True, lock=False, readahead=False)
        opts.update(kwargs)
        check_lmdb(path)  # before mapping it: a truncated file would kill the process on first read
        try:
            env = lmdb.open(path, **opts)
        except lmdb.Error as e:
            raise DataLayoutError(f'{path}: cannot open the LMDB ({e}). {_lmdb_fix(path)}') from None
        _LMDB_ENVS[key] = env
    return env


def stored_lmdb_keys(path: str) -> Set[str]:
    """All keys stored in an LMDB (without leaving it open unless it already was); checked by :func:`check_lmdb`
    first."""
    import lmdb
    shared = _LMDB_ENVS.get(osp.realpath(path))
    check_lmdb(path)
    env = shared if shared is not None else lmdb.open(path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin(write=False) as txn:
            return {k.decode('ascii', 'replace') for k in txn.cursor().iternext(keys=True, values=False)}
    finally:
        if shared is None:
            env.close()
