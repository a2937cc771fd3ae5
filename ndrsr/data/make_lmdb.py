"""Build BasicSR-format LMDBs from image folders.

Usage (the tool is :mod:`ndrsr.cli.make_lmdb`)::

    ndrsr-make-lmdb FOLDER OUT.lmdb [--compress-level 1]
    ndrsr-make-lmdb -opt options/train_all_in_one.yml [--out-dir DIR] [--skip-existing]

The LMDB holds one PNG-encoded value per image (pixels as stored: 8/16-bit,
1/3/4 channels, ``cv2.IMREAD_UNCHANGED``), keyed by the file name without
extension, and a ``meta_info.txt`` with BasicSR's lines ``KEY.png (h,w,c) level``,
so the pairing rules work on the LMDB exactly as on the folder, and BasicSR's
own readers read it too.

Safety: an existing output is never overwritten; the LMDB is written into a
hidden temporary folder next to the output and renamed into place only when
complete, so a failure (corrupt image, full disk, Ctrl-C) leaves nothing
half-built. The source folder is only read. A build killed outright (SIGKILL)
leaves its temporary folder; the next build of the same output removes it once
its process is gone (:func:`clear_interrupted_builds`).

Map size: starts at 4 x the folder's size on disk + 64 MiB (PNG re-encoding of
JPEGs is larger than the JPEGs) and doubles whenever LMDB reports the map full,
so tiny and huge sets both fit (BasicSR's estimate from the first image fails
when that image is smaller than the rest).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from os import path as osp
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .image_io import decode_image
from .pairing import DataLayoutError, list_disk

MiB = 1 << 20
OWNER_FILE = '.ndrsr-build-owner'  # in a build's temporary folder: "<host> <pid>" of the building process


def _put_batch(env, batch: List[Tuple[bytes, bytes]]) -> None:
    """Write ``batch`` in one transaction, doubling the map size until it fits."""
    import lmdb
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in batch:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()['map_size'] * 2)


def encode_image(path: str, compress_level: int = 1) -> Tuple[bytes, Tuple[int, int, int]]:
    """Read ``path``, validate it (clear error if corrupt/truncated/unsupported) and PNG-encode its pixels.

    Returns:
        (PNG bytes, (h, w, c)) with c = 1 for grayscale.
    """
    with open(path, 'rb') as f:
        content = f.read()
    decode_image(content, path)  # raises ImageReadError naming the file
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    ok, encoded = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:
        raise DataLayoutError(f'{path}: PNG encoding failed; convert it to an 8- or 16-bit PNG.')
    shape = (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])
    return encoded.tobytes(), shape


def _owner_alive(tmp: str) -> Optional[bool]:
    """Whether the build that owns the temporary folder ``tmp`` still runs: True / False when its owner file
    names a process on this machine, None when that cannot be told (no owner file, another machine)."""
    try:
        with open(osp.join(tmp, OWNER_FILE)) as f:
            host, pid = f.read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def clear_interrupted_builds(lmdb_path: str, verbose: bool = True) -> List[str]:
    """Remove the hidden temporary folders left next to ``lmdb_path`` by builds of it that were killed.

    A build writes into ``.<name>.lmdb.<random>.tmp`` with an owner file (host and
    process id); a kill (SIGKILL, power loss) leaves that folder behind. Those whose
    process is gone are removed (only such folders, never anything else). A folder
    whose build still runs is a FileExistsError; one whose owner cannot be told (made
    on another machine, or by an older ndrsr without owner file) is left alone and
    returned, with a printed note.
    """
    parent, base = osp.split(osp.abspath(lmdb_path).rstrip('/'))
    if not osp.isdir(parent):
        return []
    unknown = []
    for name in sorted(os.listdir(parent)):
        tmp = osp.join(parent, name)
        if not (name.startswith(f'.{base}.') and name.endswith('.tmp') and osp.isdir(tmp)):
            continue
        alive = _owner_alive(tmp)
        if alive:
            raise FileExistsError(f'{tmp}: another build of {lmdb_path} is running; wait for it to finish.')
        if alive is None:
            unknown.append(tmp)
            print(f'note: {tmp} looks like the temporary folder of an interrupted build of {lmdb_path}, but its '
                  'owner cannot be told; delete it yourself if no build of it is running.', file=sys.stderr)
            continue
        shutil.rmtree(tmp)
        if verbose:
            print(f'Removed {tmp}, left by an interrupted build of {lmdb_path}.', flush=True)
    return unknown


def make_lmdb(folder: str, lmdb_path: str, compress_level: int = 1, batch: int = 500,
              initial_map_size: Optional[int] = None, verbose: bool = True) -> int:
    """Turn every image of ``folder`` (non-recursive) into a BasicSR LMDB at ``lmdb_path``.

    Args:
        folder: image folder.
        lmdb_path: output, must end with '.lmdb' and must not exist.
        compress_level: PNG compression (0-9), recorded in meta_info.txt.
        batch: images per transaction.
        initial_map_size: starting LMDB map size in bytes (default: 4 x folder size + 64 MiB).

    Returns:
        number of images written.

    Raises:
        FileExistsError: ``lmdb_path`` exists. DataLayoutError / ImageReadError: bad folder or image.
    """
    import lmdb
    lmdb_path = osp.abspath(osp.expanduser(str(lmdb_path)).rstrip('/'))
    if not lmdb_path.endswith('.lmdb'):
        raise DataLayoutError(f"{lmdb_path}: the LMDB path must end with '.lmdb' (BasicSR's convention).")
    if osp.exists(lmdb_path):
        raise FileExistsError(f'{lmdb_path} already exists; refusing to overwrite it. Choose another path, or delete '
                              'it yourself if it is outdated.')
    listing = list_disk(folder, 'folder', 'make_lmdb')
    for stem, name in listing.names.items():
        if not stem.isascii() or any(ch.isspace() for ch in stem):
            raise DataLayoutError(f'{osp.join(listing.root, name)}: LMDB keys must be ASCII without spaces '
                                  "(BasicSR's meta_info format). Rename the file.")
    parent = osp.dirname(lmdb_path)
    os.makedirs(parent, exist_ok=True)
    if initial_map_size is None:
        on_disk = sum(osp.getsize(osp.join(listing.root, n)) for n in listing.names.values())
        initial_map_size = 4 * on_disk + 64 * MiB
    clear_interrupted_builds(lmdb_path, verbose)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(lmdb_path)}.', suffix='.tmp', dir=parent)
    try:
        with open(osp.join(tmp, OWNER_FILE), 'w') as f:
            f.write(f'{socket.gethostname()} {os.getpid()}\n')
        env = lmdb.open(tmp, map_size=int(initial_map_size))
        try:
            meta: List[str] = []
            pending: List[Tuple[bytes, bytes]] = []
            pending_bytes = 0
            for i, (stem, name) in enumerate(listing.names.items()):
                value, (h, w, c) = encode_image(osp.join(listing.root, name), compress_level)
                pending.append((stem.encode('ascii'), value))
                pending_bytes += len(value)
                meta.append(f'{stem}.png ({h},{w},{c}) {compress_level}')
                if len(pending) >= batch or pending_bytes > 256 * MiB:
                    _put_batch(env, pending)
                    pending, pending_bytes = [], 0
                if verbose and (i + 1) % 100 == 0:
                    print(f'  {i + 1}/{len(listing.names)} images', flush=True)
            if pending:
                _put_batch(env, pending)
            env.sync()
        finally:
            env.close()
        with open(osp.join(tmp, 'meta_info.txt'), 'w') as f:
            f.write('\n'.join(meta) + '\n')
        if osp.exists(lmdb_path):
            raise FileExistsError(f'{lmdb_path} appeared while building; refusing to overwrite it.')
        os.remove(osp.join(tmp, OWNER_FILE))
        os.rename(tmp, lmdb_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # only our own temporary folder
        raise
    if verbose:
        print(f'Wrote {len(meta)} images from {listing.root} to {lmdb_path}', flush=True)
    return len(meta)


def folders_in_options(opt: dict) -> List[str]:
    """Every disk dataroot_lq / dataroot_gt of the MixedDegradationDataset and TaskValidationDataset entries."""
    folders: List[str] = []
    for ds in (opt.get('datasets') or {}).values():
        if not isinstance(ds, dict):
            continue
        entries = ds.get('sources') or [] if ds.get('type') == 'MixedDegradationDataset' else [ds]
        for src in (e for e in entries if isinstance(e, dict)):
            io = src.get('io_backend') or ds.get('io_backend') or {'type': 'disk'}
            if io.get('type', 'disk') != 'disk':
                continue
            for key in ('dataroot_lq', 'dataroot_gt'):
                if src.get(key) and src[key] not in folders:
                    folders.append(src[key])
    return folders
