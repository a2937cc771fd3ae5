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

Cache: ``$NDRSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/ndrsr``, else
``~/.cache/ndrsr``. A download goes to a temporary file first (torch.hub's
downloader), so an interrupted one leaves nothing that looks complete; the
conversion writes its files atomically. Every load uses ``weights_only=True``.
``$NDRSR_URL_<NAME>`` (e.g. ``NDRSR_URL_PAPER``) replaces a model's URL: a
mirror, or a local server in the tests.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from os import path as osp
from typing import Dict, Optional

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
    """
    name: str
    summary: str
    folder: Optional[str] = None
    url: Optional[str] = None
    file_name: Optional[str] = None

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
SMALL_LATEST = SMALL_V3  # what 'small' means: the newest shipped version

MODELS: Dict[str, ModelInfo] = {
    'small': ModelInfo('small', f"ndrsr's small all-in-one model, now {SMALL_LATEST.name} (noise, rain, haze; "
                                "shipped with the package)", folder=SMALL_LATEST.folder),
    'small_v3': SMALL_V3,
    'paper': ModelInfo(
        'paper', "the authors' released all-in-one model model_L.pth (noise, rain, haze; downloaded once)",
        url='https://huggingface.co/Mingde/pre-trained-models/resolve/main/model_L.pth', file_name='model_L.pth'),
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


def _download(info: ModelInfo, folder: str, progress: bool) -> str:
    """Download the model's file into ``folder`` (once); returns its path."""
    from basicsr.utils.download_util import load_file_from_url

    url = model_url(info)
    target = osp.join(folder, info.file_name or osp.basename(url))
    if osp.isfile(target):
        return target
    try:
        return load_file_from_url(url, model_dir=folder, progress=progress, file_name=osp.basename(target))
    except Exception as err:  # noqa: BLE001 - no network, HTTP error, disk full: one clear message
        reason = getattr(err, 'reason', None) or err
        raise ModelUnavailableError(
            f"could not download model '{info.name}' from {url} ({reason}). Without network access, download "
            f"{osp.basename(target)} from that address on another machine and use that file as the weights "
            f"(it is converted on the fly)", argument='weights') from None


def _convert(src: str, folder: str) -> None:
    """Convert a downloaded checkpoint into net_g.pth / net_degrad.pth / network_options.yml in ``folder``."""
    from ndrsr.lib.convert import convert_file

    tmp = tempfile.mkdtemp(prefix='.convert-', dir=osp.dirname(folder))
    try:
        convert_file(src, tmp)
        os.makedirs(folder, exist_ok=True)
        for name in ('net_g.pth', 'net_degrad.pth', 'network_options.yml'):  # options last: it marks completion
            os.replace(osp.join(tmp, name), osp.join(folder, name))
    except (ValueError, OSError) as err:
        raise ModelUnavailableError(f'the downloaded file {src} is not a usable NDR-Restore checkpoint ({err}). '
                                    f'Delete it to download it again.') from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(name: str, progress: bool = True) -> ModelFiles:
    """The files of model ``name``, downloading and converting it first if needed.

    Raises:
        ModelUnavailableError: unknown name, shipped files missing, download
            or conversion failed. The message names the fix.
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
        files = _files_in(osp.join(pretrained_dir(), info.folder), info)
        if not _complete(files):
            raise ModelUnavailableError(f"the files of model '{name}' are missing from {osp.dirname(files.restore)}; "
                                        'reinstall ndrsr (they ship with the package).')
        return files
    folder = osp.join(cache_dir(), info.name)
    files = _files_in(osp.join(folder, 'converted'), info)
    if _complete(files):
        return files
    os.makedirs(folder, exist_ok=True)
    src = _download(info, folder, progress)
    _convert(src, osp.join(folder, 'converted'))
    return files


def describe_models() -> str:
    """One line per model, for ``--help``."""
    return '; '.join(f'{m.name}: {m.summary}' for m in MODELS.values())


__all__ = ['DEFAULT_MODEL', 'MODELS', 'RETIRED', 'SMALL_LATEST', 'ModelFiles', 'ModelInfo', 'ModelUnavailableError',
           'cache_dir', 'describe_models', 'model_url', 'pretrained_dir', 'resolve_model']
