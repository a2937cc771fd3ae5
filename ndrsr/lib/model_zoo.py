"""Named models: the weights that ship with ndrsr, and the authors' checkpoint downloaded on first use.

``resolve_model(name)`` returns a :class:`ModelFiles` (the NDR-Restore weights,
the NDR-Degrad weights beside them, and the ``network_options.yml`` that says
how to build both), ready for :func:`ndrsr.lib.weights.load_restore_network` and
:func:`ndrsr.lib.weights.load_degrad_network`.

Models
    ``small`` (the default): ndrsr's own small all-in-one model (noise, rain,
        haze), its newest version (:data:`SMALL_LATEST`), shipped as package data
        under ``ndrsr/pretrained/<folder>/``. Model card: docs/models.md.
    ``small_vN``: the shipped versions by name (the newest and the one before it).
        A better model is added as a new version and ``small`` moves to it; a
        version name keeps its meaning. Versions no longer shipped
        (:data:`RETIRED`) are refused with the options file that rebuilds them.
    ``paper``: the authors' released checkpoint ``model_L.pth`` (noise + rain +
        haze, the paper's all-in-one setting), downloaded once from their
        Hugging Face repository, converted once with :mod:`ndrsr.lib.convert`,
        and cached.

Shipped models are looked up in ``$NDRSR_PRETRAINED_DIR`` when it is set
(another copy of the ``pretrained/`` folder: a test, or models kept outside the
package), else in the package's ``pretrained/`` folder (:data:`PACKAGE_WEIGHTS`).
Every file of a shipped model is checked against its sha256 in that folder's
``SHA256SUMS`` (``sha256sum`` format; a new model is added with
``cd ndrsr/pretrained && sha256sum small_vN/* >> SHA256SUMS``): a file that was
changed, damaged or replaced is refused (:mod:`ndrsr.lib.integrity`).

Cache: ``$NDRSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/ndrsr``, else
``~/.cache/ndrsr``. A download (:mod:`ndrsr.lib.download`: timeout and retries,
size cap) must match the published file's pinned size and sha256, else it is
deleted; it goes to a temporary file first, so an interrupted one leaves nothing
that looks complete, and the leftovers of killed runs are removed by the next.
The conversion writes into a temporary folder and moves its files into
``converted/`` with their ``SHA256SUMS``, which is checked on every later use.
Every load uses ``weights_only=True``. ``$NDRSR_URL_<NAME>`` (e.g.
``NDRSR_URL_PAPER``) replaces a model's URL: a mirror (of the same file), or a
local server in the tests.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from os import path as osp
from typing import Dict, Optional

from ndrsr.lib.download import (DISK_FULL, DownloadError, Pin, check_url, download_file, pid_running,
                                 remove_leftovers)
from ndrsr.lib.integrity import MANIFEST_NAME, IntegrityError, sha256_file, verify_recorded, write_manifest

PACKAGE_WEIGHTS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'pretrained')  # ndrsr/pretrained
DEFAULT_MODEL = 'small'


class ModelUnavailableError(RuntimeError):
    """A named model that cannot be provided here (unknown name, no network, bad download).

    ``argument`` names the parameter the fix concerns (``'model'``: another
    name; ``'weights'``: a weights file given directly), or None; command-line
    tools turn it into their flag.
    """

    def __init__(self, message: str, argument: Optional[str] = None):
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class ModelInfo:
    """A named model.

    Attributes:
        name: what users type (``--model NAME``).
        summary: one line for messages and ``--help``.
        folder: package folder under ``ndrsr/pretrained/`` (shipped models).
        url: download address (downloaded models), of a released-format or
            BasicSR checkpoint; converted into ``net_g.pth`` / ``net_degrad.pth``.
        file_name: the downloaded file's name in the cache.
        pin: the published file's size and sha256 (downloaded models); a
            download that differs is deleted.
    """
    name: str
    summary: str
    folder: Optional[str] = None
    url: Optional[str] = None
    file_name: Optional[str] = None
    pin: Pin = Pin()

    @property
    def shipped(self) -> bool:
        return self.folder is not None


@dataclass(frozen=True)
class ModelFiles:
    """Where a resolved model's files are.

    restore: NDR-Restore weights (``net_g.pth``); degrad: NDR-Degrad weights
    (``net_degrad.pth``, beside it); options: ``network_options.yml`` with
    ``network_g`` and ``network_degrad``.
    """
    name: str
    restore: str
    degrad: str
    options: str
    summary: str


SMALL_V3 = ModelInfo('small_v3', "ndrsr's small all-in-one model v3 (noise, rain incl. light rain, haze, leaves clean "
                     "photos alone; shipped with the package)", folder='small_v3')
SMALL_V4 = ModelInfo('small_v4', "ndrsr's small all-in-one model v4 (trained on camera noise and real noisy photos, "
                     "varied rain, outdoor haze; leaves clean photos alone; shipped with the package)",
                     folder='small_v4')
SMALL_LATEST = SMALL_V4  # what 'small' means: the newest shipped version

MODELS: Dict[str, ModelInfo] = {
    'small': ModelInfo('small', f"ndrsr's small all-in-one model, now {SMALL_LATEST.name} (noise, rain, haze; "
                                "shipped with the package)", folder=SMALL_LATEST.folder),
    'small_v3': SMALL_V3,
    'small_v4': SMALL_V4,
    'paper': ModelInfo(
        'paper', "the authors' released all-in-one model model_L.pth (noise, rain, haze; downloaded once)",
        url='https://huggingface.co/Mingde/pre-trained-models/resolve/main/model_L.pth', file_name='model_L.pth',
        # the Git LFS pointer of model_L.pth (commit d3b4f21 of Mingde/pre-trained-models on Hugging Face)
        pin=Pin(113841146, 'ad69f65d6c42ecfd1cb23c934ff60aaf4b6ce8b9b654b2ca49c27cb295fa7320')),
}


# versions no longer shipped -> the options file that rebuilds each (its card: docs/history.md)
RETIRED: Dict[str, str] = {
    'small_v1': 'options/train_small_all_in_one.yml',
    'small_v2': 'options/train_small_all_in_one_v2.yml (from small_v1)',
}


def pretrained_dir() -> str:
    """The folder that holds the shipped models (``$NDRSR_PRETRAINED_DIR``, else :data:`PACKAGE_WEIGHTS`)."""
    return os.environ.get('NDRSR_PRETRAINED_DIR') or PACKAGE_WEIGHTS


def cache_dir() -> str:
    """The folder that holds downloaded and converted models."""
    if os.environ.get('NDRSR_CACHE_DIR'):
        return os.environ['NDRSR_CACHE_DIR']
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(base, 'ndrsr')


def model_url(info: ModelInfo) -> Optional[str]:
    """The URL of a downloaded model (``$NDRSR_URL_<NAME>`` overrides it)."""
    return os.environ.get(f'NDRSR_URL_{info.name.upper()}') or info.url


def _files_in(folder: str, info: ModelInfo) -> ModelFiles:
    return ModelFiles(info.name, osp.join(folder, 'net_g.pth'), osp.join(folder, 'net_degrad.pth'),
                      osp.join(folder, 'network_options.yml'), info.summary)


def _complete(files: ModelFiles) -> bool:
    return all(osp.isfile(p) for p in (files.restore, files.degrad, files.options))


def _cache_problem(folder: str, err: OSError) -> ModelUnavailableError:
    """A cache that cannot be written (read-only, a file where a folder should be, disk full), in one message."""
    where = f' ({err.filename})' if getattr(err, 'filename', None) else ''
    if err.errno in DISK_FULL:
        return ModelUnavailableError(f'{err}: free space there, or set $NDRSR_CACHE_DIR to a folder on another disk '
                                     f'(the model cache is {cache_dir()})')
    return ModelUnavailableError(f'the model cache {cache_dir()} cannot be used: {err.strerror or err}{where} in '
                                 f'{folder}. Fix it, or set $NDRSR_CACHE_DIR to another folder.')


_CONVERT_TMP = re.compile(r'^\.convert-(?:(\d+)-)?')
STALE_SECONDS = 3600  # a temporary folder without a process id (older versions) is removed after this long


def remove_cache_leftovers(folder: str) -> None:
    """Remove what killed runs left in a model's cache folder: partial downloads and conversion folders."""
    remove_leftovers(folder)
    if not osp.isdir(folder):
        return
    for entry in os.listdir(folder):
        m = _CONVERT_TMP.match(entry)
        path = osp.join(folder, entry)
        if m is None or not osp.isdir(path):
            continue
        if m.group(1) is not None:
            if pid_running(int(m.group(1))):
                continue  # that run is still converting
        elif time.time() - osp.getmtime(path) < STALE_SECONDS:
            continue
        shutil.rmtree(path, ignore_errors=True)


def _pin_problem(path: str, pin: Pin) -> Optional[str]:
    """Why the file at ``path`` is not the pinned file, or None."""
    size = osp.getsize(path)
    if pin.size is not None and size != pin.size:
        return f'{size} bytes instead of {pin.size}'
    if pin.sha256 is not None and sha256_file(path) != pin.sha256.lower():
        return 'its sha256 is not the published one'
    return None


def _download(info: ModelInfo, folder: str, url: str, progress: bool) -> str:
    """Download the model's file into ``folder`` (once, verified); returns its path."""
    target = osp.join(folder, info.file_name or osp.basename(url))
    if osp.isfile(target):
        problem = _pin_problem(target, info.pin)
        if problem is None:
            return target
        print(f'{target} is damaged ({problem}); downloading it again', file=sys.stderr)
        os.remove(target)
    print(f'Downloading: {url} to {target}', flush=True)
    try:
        return download_file(url, target, info.pin, progress=progress)
    except DownloadError as err:
        raise ModelUnavailableError(
            f"could not download model '{info.name}' from {url} ({err.reason}). Without network access, download "
            f"{osp.basename(target)} from {info.url} on another machine and use that file as the weights "
            f"(it is converted on the fly)", argument='weights') from None
    except OSError as err:
        raise _cache_problem(folder, err) from None


def _convert(src: str, converted: str, name: str) -> None:
    """Convert a downloaded checkpoint into net_g.pth / net_degrad.pth / network_options.yml (and their
    SHA256SUMS, written last: it marks completion) in ``converted``."""
    from ndrsr.lib.convert import OUTPUT_NAMES, convert_file

    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix=f'.convert-{os.getpid()}-', dir=osp.dirname(converted))
        convert_file(src, tmp)
        write_manifest([osp.join(tmp, n) for n in OUTPUT_NAMES], osp.join(tmp, MANIFEST_NAME))
        os.makedirs(converted, exist_ok=True)
        for n in OUTPUT_NAMES + (MANIFEST_NAME,):
            os.replace(osp.join(tmp, n), osp.join(converted, n))
    except OSError as err:
        raise _cache_problem(osp.dirname(converted), err) from None
    except ValueError as err:
        raise ModelUnavailableError(f'the downloaded file {src} is not a usable NDR-Restore checkpoint ({err}). '
                                    f'Delete it to download it again.') from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _shipped_files(name: str, info: ModelInfo) -> ModelFiles:
    """The files of a shipped model, present and as recorded in the pretrained folder's SHA256SUMS."""
    root = pretrained_dir()
    from_env = bool(os.environ.get('NDRSR_PRETRAINED_DIR'))
    files = _files_in(osp.join(root, info.folder), info)
    missing = [p for p in (files.restore, files.degrad, files.options) if not osp.isfile(p)]
    if missing:
        more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
        if from_env:
            raise ModelUnavailableError(f"the files of model '{name}' are missing from {osp.dirname(files.restore)}: "
                                        f"{missing[0]}{more}. $NDRSR_PRETRAINED_DIR={root} names a folder without "
                                        f"them: unset it, or point it at a copy of ndrsr's pretrained/ folder.")
        raise ModelUnavailableError(f"the files of model '{name}' are missing from {osp.dirname(files.restore)}: "
                                    f"{missing[0]}{more}; reinstall ndrsr (they ship with the package).")
    fix = (f'restore the copy in $NDRSR_PRETRAINED_DIR={root} or unset it (reinstall ndrsr for the package\'s own)'
           if from_env else 'reinstall ndrsr (the models ship with the package)')
    try:
        verify_recorded([files.restore, files.degrad, files.options], osp.join(root, MANIFEST_NAME), fix)
    except IntegrityError as err:
        raise ModelUnavailableError(f"model '{name}': {err}") from None
    return files


def resolve_model(name: str, progress: bool = True) -> ModelFiles:
    """The files of model ``name``, downloading and converting it first if needed; every file verified.

    Raises:
        ModelUnavailableError: unknown name, shipped files missing or not as
            recorded, download or conversion failed, cache not usable. The
            message names the fix.
    """
    info = MODELS.get(name)
    if name in RETIRED:
        raise ModelUnavailableError(
            f"model '{name}' is no longer shipped with ndrsr; rebuild it with {RETIRED[name]} and "
            f"scripts/export_model.py, then use its net_g.pth as the weights, or use a shipped model "
            f"({', '.join(MODELS)})", argument='model')
    if info is None:
        raise ModelUnavailableError(f"unknown model {name!r}; known models: {', '.join(MODELS)}", argument='model')
    if info.shipped:
        return _shipped_files(name, info)
    folder = osp.join(cache_dir(), info.name)
    converted = osp.join(folder, 'converted')
    files = _files_in(converted, info)
    manifest = osp.join(converted, MANIFEST_NAME)
    if _complete(files) and osp.isfile(manifest):
        try:
            verify_recorded([files.restore, files.degrad, files.options], manifest,
                            f'delete {converted} to convert again')
        except IntegrityError as err:
            raise ModelUnavailableError(f"the converted files of model '{name}' in the cache are damaged: "
                                        f"{err}") from None
        return files
    url = model_url(info)
    try:
        check_url(url)
    except DownloadError as err:
        variable = f'NDRSR_URL_{info.name.upper()}'
        source = f'${variable}=' if os.environ.get(variable) else ''
        raise ModelUnavailableError(f"cannot download model '{name}': {source}{err}") from None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise _cache_problem(folder, err) from None
    remove_cache_leftovers(folder)
    src = _download(info, folder, url, progress)
    _convert(src, converted, name)
    return files


def describe_models() -> str:
    """One line per model, for ``--help``."""
    return '; '.join(f'{m.name}: {m.summary}' for m in MODELS.values())


__all__ = ['DEFAULT_MODEL', 'MODELS', 'RETIRED', 'SMALL_LATEST', 'ModelFiles', 'ModelInfo', 'ModelUnavailableError',
           'Pin', 'cache_dir', 'describe_models', 'model_url', 'pretrained_dir', 'remove_cache_leftovers',
           'resolve_model']
