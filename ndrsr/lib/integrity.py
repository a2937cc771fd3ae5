"""Is a weights file intact, and is it the file it claims to be.

Intact (:func:`checkpoint_problem`)
    PyTorch's checkpoints are zip archives with a CRC-32 per member;
    ``torch.load`` does not check them, so zeroed or flipped bytes load as wrong
    tensors. The whole archive is read once and every member checked (a 100 MB
    file takes a fraction of a second).
Recorded (:func:`verify_recorded`)
    Files with a known content are listed with their sha256 in a manifest in
    ``sha256sum`` format (``<hex>  <relative path>`` per line, checkable with
    ``sha256sum -c``): the shipped models in ``ndrsr/pretrained/SHA256SUMS``, a
    converted download in its cache folder. A file that is missing from the
    manifest or differs from its line is refused; a verified file is not hashed
    again while its size and modification time stay the same.
What a file is when it is not a checkpoint (:func:`describe_unloadable`)
    Empty, zero-filled, an HTML page, a truncated archive, a pickle that holds
    more than tensors: said in words, with the fix. Torch's own message is never
    passed on: for a file that is not plain tensors it advises
    ``weights_only=False``, which runs whatever code a hostile file holds.

Depends on the standard library only.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import zipfile
import zlib
from os import path as osp
from typing import Dict, Iterable, Optional, Tuple

MANIFEST_NAME = 'SHA256SUMS'
ZIP_MAGIC = b'PK\x03\x04'
_VERIFIED: Dict[Tuple[str, int, int], str] = {}  # (real path, size, mtime_ns) -> sha256 already checked
_VERIFIED_LOCK = threading.Lock()


class IntegrityError(ValueError):
    """A file that is not what it should be; the message names the file and the fix.

    ``argument`` names the parameter of the library call the fix concerns, or None
    (command-line tools turn it into their flag).
    """

    def __init__(self, message: str, argument: Optional[str] = None):
        super().__init__(message)
        self.argument = argument


class NonFiniteError(IntegrityError):
    """Numbers that are NaN or infinite where finite ones are needed (weights, a network's output)."""


def check_finite(tensor, what: str, fix: str = '') -> None:
    """Raise :class:`NonFiniteError` ``'<what> has NaN or infinite values<fix>'`` unless every value of
    ``tensor`` (a torch tensor, any shape) is finite."""
    if not bool(tensor.isfinite().all()):
        raise NonFiniteError(f'{what} has NaN or infinite values{fix}')


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the zip checkpoint at ``path`` is not intact (missing, truncated, a member failing its CRC-32), or None.

    Files that are not zip archives (PyTorch's legacy format, or not a checkpoint
    at all) are reported as ``'truncated (not a complete zip archive)'``; callers
    that accept the legacy format check :func:`is_zip_archive` first.
    """
    if not osp.isfile(path):
        return 'missing'
    if not zipfile.is_zipfile(path):
        return 'truncated (not a complete zip archive)'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        return f'unreadable ({err})'
    if bad is not None:
        return f'corrupt: member {bad} fails its CRC-32 check (altered or zeroed bytes)'
    return None


def starts_like_zip(path: str) -> bool:
    """Whether the file begins as a zip archive does (PyTorch's format since 1.6), complete or not."""
    with open(path, 'rb') as f:
        return f.read(4) == ZIP_MAGIC


def _head(path: str, size: int = 1 << 16) -> bytes:
    with open(path, 'rb') as f:
        return f.read(size)


def _all_zero(path: str) -> bool:
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            if block.count(0) != len(block):
                return False
    return True


def describe_unloadable(path: str, error: Optional[BaseException] = None) -> str:
    """What the file at ``path`` is, in words, for a checkpoint that could not be loaded (no fix, no file name).

    ``error`` is the loader's exception; only the name of a refused Python global
    is taken from it (never its advice).
    """
    size = osp.getsize(path)
    head = _head(path)
    if size == 0:
        return 'is empty (0 bytes)'
    if head.startswith(ZIP_MAGIC):
        problem = checkpoint_problem(path)
        if problem is not None:
            return f'is {problem}'
    if _all_zero(path):
        return f'is all zero bytes ({size} of them): a damaged file'
    text = head.lstrip().lower()
    if text.startswith((b'<!doctype html', b'<html', b'<head', b'<?xml', b'<body')):
        return 'is an HTML page, not a checkpoint (an error or sign-in page saved in place of the file)'
    refused = re.search(r'Unsupported global: GLOBAL (\S+)', str(error or ''))
    if refused or (head[:1] == b'\x80' or head.startswith(ZIP_MAGIC)) and 'Unpickl' in type(error).__name__:
        what = f' ({refused.group(1)})' if refused else ''
        return (f'is a Python pickle that holds more than tensors{what}; ndrsr loads only tensors and containers, '
                f'never code (export the weights as a plain state dict)')
    if head.startswith(ZIP_MAGIC):
        return 'is a zip archive but not a PyTorch checkpoint'
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head[:4096])
    if printable > 0.95 * min(len(head), 4096):
        return 'is a text file, not a checkpoint'
    return 'is not a PyTorch checkpoint (unrecognised content)'


def read_manifest(manifest: str) -> Dict[str, str]:
    """``{relative path: sha256}`` of a manifest in ``sha256sum`` format (blank lines and ``#`` comments skipped).

    Raises:
        IntegrityError: a line that is not ``<64 hex digits>  <path>``.
    """
    out: Dict[str, str] = {}
    with open(manifest, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            m = re.fullmatch(r'([0-9a-fA-F]{64}) [ *](.+)', line)
            if m is None:
                raise IntegrityError(f'{manifest}, line {number}: expected "<sha256>  <path>" (the output of '
                                     f'sha256sum), got {line!r}')
            out[m.group(2).strip()] = m.group(1).lower()
    return out


def _cached_sha256(path: str) -> str:
    st = os.stat(path)
    key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(key)
    if known is None:
        known = sha256_file(path)
        with _VERIFIED_LOCK:
            _VERIFIED[key] = known
    return known


def verify_recorded(paths: Iterable[str], manifest: str, fix: str) -> None:
    """Check each of ``paths`` against its line in ``manifest`` (paths relative to the manifest's folder).

    ``fix`` ends every message (e.g. ``'reinstall ndrsr'``).

    Raises:
        IntegrityError: no manifest, a file not listed, or a sha256 that differs.
    """
    if not osp.isfile(manifest):
        raise IntegrityError(f'{manifest} is missing: the files beside it cannot be verified; {fix}.')
    recorded = read_manifest(manifest)
    base = osp.dirname(osp.abspath(manifest))
    for path in paths:
        rel = osp.relpath(osp.abspath(path), base).replace(os.sep, '/')
        expected = recorded.get(rel)
        if expected is None:
            raise IntegrityError(f'{path} is not listed in {manifest}, so it cannot be verified; {fix} (a new '
                                 f'file is added with: cd {base} && sha256sum {rel} >> {MANIFEST_NAME}).')
        actual = _cached_sha256(path)
        if actual != expected:
            raise IntegrityError(f'{path} is not the recorded file (sha256 {actual[:16]}..., recorded '
                                 f'{expected[:16]}... in {manifest}): it was changed, damaged or replaced; {fix}.')


def write_manifest(paths: Iterable[str], manifest: str) -> None:
    """Write ``manifest`` (``sha256sum`` format) for ``paths``, relative to its folder. Not atomic: write it last,
    into a folder that is renamed into place afterwards, or through :func:`ndrsr.lib.checkpoint.atomic_write`."""
    base = osp.dirname(osp.abspath(manifest))
    lines = [f'{sha256_file(p)}  {osp.relpath(osp.abspath(p), base).replace(os.sep, "/")}\n' for p in paths]
    with open(manifest, 'w', encoding='utf-8') as f:
        f.writelines(lines)


__all__ = ['MANIFEST_NAME', 'IntegrityError', 'NonFiniteError', 'check_finite', 'checkpoint_problem',
           'describe_unloadable', 'read_manifest', 'sha256_file', 'starts_like_zip', 'verify_recorded',
           'write_manifest']
