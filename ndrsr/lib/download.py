"""Downloading one file: bounded in time and size, verified, never half a file under the final name.

:func:`download_file` fetches ``url`` into ``dest``:

* a timeout: a connection that opens nothing, or a server that stops sending, is
  given up after ``timeout`` seconds without a byte (``$NDRSR_DOWNLOAD_TIMEOUT``,
  default :data:`DEFAULT_TIMEOUT`), and tried again (``retries`` more times,
  ``$NDRSR_DOWNLOAD_RETRIES``, default :data:`DEFAULT_RETRIES`, with growing pauses);
  so are refused or cut connections, short bodies and HTTP 5xx answers;
* a size cap: the pinned size when there is one, else ``max_bytes``; a
  ``Content-Length`` above it is refused before anything is written, and a body
  that grows past it is cut;
* verified: a pinned size and sha256 (:class:`Pin`) must match exactly, else
  the file is deleted and a :class:`DownloadError` says so;
* written to ``.<name>.partial-<pid>`` beside ``dest`` and renamed to ``dest``
  only once complete and verified; on any error it is removed, and leftovers
  of killed processes (whose pid no longer runs) are removed by the next call;
* a full disk is said as such (``no space left on the device writing ...``).

Accepted URLs: ``http://``, ``https://`` and ``file://``. Standard library only.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from os import path as osp
from typing import Callable, List, Optional

DEFAULT_TIMEOUT = 30.0  # seconds without a byte from the server
DEFAULT_RETRIES = 3  # tries after the first
DEFAULT_MAX_BYTES = 2 << 30  # cap of a download without a pinned size: 2 GiB
CHUNK = 1 << 20
DISK_FULL = (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))
_PARTIAL = re.compile(r'^\.(?P<name>.+)\.partial-(?P<pid>\d+)$')


class DownloadError(RuntimeError):
    """A download that failed or was refused; the message names the URL (or file) and why.

    ``reason`` is the why alone (without the URL), for callers that name the URL themselves.
    """

    def __init__(self, message: str, reason: str = ''):
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class Pin:
    """The known size (bytes) and sha256 (hex) of a published file; either may be None (not checked)."""
    size: Optional[int] = None
    sha256: Optional[str] = None


class _Retry(Exception):
    """A failure worth another try (timeout, refused or cut connection, short body, HTTP 5xx)."""


def _env_number(name: str, default: float, kind: Callable = float):
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise DownloadError(f'${name}={text!r} is not a number; unset it or give e.g. {default}') from None
    if value < 0:
        raise DownloadError(f'${name}={text!r} must be 0 or more')
    return value


def download_timeout() -> float:
    """Seconds without a byte before a try is given up (``$NDRSR_DOWNLOAD_TIMEOUT``, else :data:`DEFAULT_TIMEOUT`)."""
    return _env_number('NDRSR_DOWNLOAD_TIMEOUT', DEFAULT_TIMEOUT)


def download_retries() -> int:
    """Tries after the first (``$NDRSR_DOWNLOAD_RETRIES``, else :data:`DEFAULT_RETRIES`)."""
    return int(_env_number('NDRSR_DOWNLOAD_RETRIES', DEFAULT_RETRIES, int))


def check_url(url: str) -> None:
    """Refuse what is not an http(s) or file URL (a mistyped mirror), before anything is created."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ('http', 'https', 'file') or (parsed.scheme != 'file' and not parsed.netloc):
        raise DownloadError(f'{url!r} is not a URL ndrsr can download from (http://, https:// or file://)')


def pid_running(pid: int) -> bool:
    """Whether a process with this id runs (a temporary file named after it is still in use)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def partial_path(dest: str) -> str:
    """Where this process writes ``dest`` while downloading it: ``.<name>.partial-<pid>`` beside it."""
    folder, name = osp.split(osp.abspath(dest))
    return osp.join(folder, f'.{name}.partial-{os.getpid()}')


def remove_leftovers(folder: str) -> List[str]:
    """Remove the ``.<name>.partial-<pid>`` files of processes that no longer run; returns what was removed."""
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in os.listdir(folder):
        m = _PARTIAL.match(entry)
        if m and not pid_running(int(m.group('pid'))):
            try:
                os.remove(osp.join(folder, entry))
                removed.append(osp.join(folder, entry))
            except OSError:
                pass
    return removed


def disk_full_message(path: str) -> str:
    """The one line said when the disk fills while writing ``path``."""
    return f'no space left on the device writing {path}'


def _fetch(url: str, tmp: str, limit: int, timeout: float, progress: bool) -> tuple:
    """One try: stream ``url`` into ``tmp``; returns (bytes written, sha256 hex)."""
    request = urllib.request.Request(url, headers={'User-Agent': 'ndrsr'})
    try:
        response = urllib.request.urlopen(request, timeout=timeout or None)
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise _Retry(f'HTTP {err.code} {err.reason}') from None
        raise DownloadError(f'HTTP {err.code} {err.reason}') from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, 'reason', None) or err
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _Retry(f'no answer within {timeout:g} s') from None
        if isinstance(reason, FileNotFoundError) or isinstance(err, FileNotFoundError):
            raise DownloadError(f'no such file ({reason})') from None
        if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):  # nothing listens / no such host: no retry
            raise DownloadError(str(reason)) from None
        raise _Retry(str(reason)) from None
    with response:
        length = response.headers.get('Content-Length')
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and expected > limit:
            raise DownloadError(f'the server announces {expected} bytes, more than the {limit} expected; refused')
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=expected, unit='B', unit_scale=True, file=sys.stderr, leave=False)
        digest, written = hashlib.sha256(), 0
        try:
            with open(tmp, 'wb') as out:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (socket.timeout, TimeoutError):
                        raise _Retry(f'the server stopped sending for {timeout:g} s after {written} bytes') from None
                    except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as err:
                        raise _Retry(f'the connection was cut after {written} bytes ({err.__class__.__name__})') \
                            from None
                    if not block:
                        break
                    written += len(block)
                    if written > limit:
                        raise DownloadError(f'the body grows past the {limit} bytes expected; refused')
                    digest.update(block)
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        finally:
            if bar is not None:
                bar.close()
        if expected is not None and written != expected:
            raise _Retry(f'the body ended after {written} of the {expected} bytes announced')
    return written, digest.hexdigest()


def _html_note(path: str) -> str:
    """`` (the server sent an HTML page ...)`` when the downloaded file is one, else ''."""
    with open(path, 'rb') as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b'<!doctype html', b'<html', b'<head', b'<body')):
        return ' (the server sent an HTML page, e.g. an error or sign-in page, instead of the file)'
    return ''


def download_file(url: str, dest: str, pin: Pin = Pin(), max_bytes: int = DEFAULT_MAX_BYTES,
                  timeout: Optional[float] = None, retries: Optional[int] = None, progress: bool = False,
                  pause: float = 1.0) -> str:
    """Download ``url`` to ``dest`` (its folder must exist); returns ``dest``. See the module docstring.

    Args:
        url: http(s):// or file:// address.
        dest: the final path; written only once complete and verified.
        pin: known size and sha256 of the file, checked exactly.
        max_bytes: cap when ``pin.size`` is None.
        timeout: seconds without a byte (None: :func:`download_timeout`).
        retries: tries after the first (None: :func:`download_retries`).
        progress: a byte progress bar on stderr.
        pause: seconds before the first retry, doubled for each next one.

    Raises:
        DownloadError: bad URL, refused, failed after every try, or not the pinned
            file; the message starts with what went wrong and names the URL.
        OSError: the destination cannot be written; a full disk is an OSError whose
            message is :func:`disk_full_message`.
    """
    check_url(url)
    timeout = download_timeout() if timeout is None else timeout
    retries = download_retries() if retries is None else retries
    limit = pin.size if pin.size is not None else max_bytes
    folder = osp.dirname(osp.abspath(dest))
    remove_leftovers(folder)
    tmp = partial_path(dest)
    why = ''
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(pause * 2 ** (attempt - 1))
            try:
                size, sha = _fetch(url, tmp, limit, timeout, progress)
                break
            except _Retry as err:
                why = str(err)
            except DownloadError as err:
                raise DownloadError(f'downloading {url}: {err}', str(err)) from None
        else:
            tries = f'{retries + 1} tries' if retries else '1 try'
            raise DownloadError(f'downloading {url} failed ({why}; {tries})', f'{why}; {tries}')
        if pin.size is not None and size != pin.size:
            why = (f'the file has {size} bytes, not the {pin.size} of the published file{_html_note(tmp)}; it was '
                   f'deleted (try again, or check the address)')
            raise DownloadError(f'downloading {url}: {why}', why)
        if pin.sha256 is not None and sha != pin.sha256.lower():
            why = (f'the file is not the published one (sha256 {sha[:16]}..., expected {pin.sha256[:16]}...): '
                   f'damaged in transfer or changed at the source{_html_note(tmp)}; it was deleted (try again)')
            raise DownloadError(f'downloading {url}: {why}', why)
        os.replace(tmp, dest)
        return dest
    except OSError as err:
        if err.errno in DISK_FULL:
            full = OSError(disk_full_message(dest))
            full.errno = err.errno
            raise full from None
        raise
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


__all__ = ['DEFAULT_MAX_BYTES', 'DEFAULT_RETRIES', 'DEFAULT_TIMEOUT', 'DownloadError', 'Pin', 'check_url',
           'disk_full_message', 'download_file', 'download_retries', 'download_timeout', 'partial_path',
           'pid_running', 'remove_leftovers']
