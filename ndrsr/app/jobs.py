"""The work behind the page's tabs, without the page: restore photos, show what the NDR recognises, transfer
a degradation.

Each job reads its input files with the tools' reader, runs the library's
per-image functions (:mod:`ndrsr.lib.image_ops`) and writes its outputs with
the tools' writer into a folder of its own, so a result of the page is the
file ``ndrsr-restore`` / ``ndrsr-degrade`` writes for the same input and
options (``ndrsr-restore --ext png``: the page always gives PNG, which keeps
16 bits and alpha). Nothing here is shared between requests except the loaded
networks (:class:`Networks`), which are read-only once loaded.

Errors a user can fix (bad image, weights, options) are raised as they come
from the library (``ImageReadError``, ``WeightsError``, ``ModelUnavailableError``,
``ValueError``); :func:`user_message` turns them into one line for the page.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from os import path as osp
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from ndrsr.lib.image_header import DEFAULT_MAX_PIXELS
from ndrsr.lib.image_files import ImageFile, multi_frame_warning, read_image_file, write_image_file, write_rgb8
from ndrsr.lib.image_ops import LITTLE_REMOVED, degrade_rgb, recognise_like, recognise_rgb, restore_rgb
from ndrsr.lib.tiling import DEFAULT_OVERLAP, resolve_device, resolve_precision

UPLOADED = 'uploaded weights'  # the model choice that uses the weights file uploaded on the page
PREVIEW_SIDE = 2048  # previews on the page are down-scaled to this many pixels on their long side
# report(fraction done in [0, 1], what is being done)
Report = Callable[[float, str], None]


def _silent(fraction: float, text: str) -> None:
    """A :data:`Report` that shows nothing."""


# ----------------------------------------------------------------------------- settings and networks
@dataclass(frozen=True)
class Runtime:
    """How the networks run: ``device`` (auto, cpu, cuda[:N]), ``precision`` (auto, fp32, fp16, bf16), ``tile``
    (pixels, 0 = auto), ``overlap`` (pixels) and ``max_pixels`` (0: no limit), as the tools' --device,
    --precision, --tile, --tile-overlap and --max-megapixels."""
    device: str = 'auto'
    precision: str = 'auto'
    tile: int = 0
    overlap: int = DEFAULT_OVERLAP
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger photos are refused from their header (ndrsr-app --max-megapixels)

    def check(self) -> None:
        """Raise the library's ValueError for a device or precision this machine cannot use."""
        resolve_precision(self.precision, resolve_device(self.device))

    def tiling(self) -> dict:
        """The keyword arguments of :mod:`ndrsr.lib.image_ops`'s functions."""
        return dict(tile=int(self.tile), overlap=int(self.overlap), precision=self.precision)

    def describe(self) -> str:
        return (f'device {resolve_device(self.device)}, precision {self.precision}, '
                f'tile {int(self.tile) or "auto"}')


def model_names() -> List[str]:
    """The model choices of the page: the named models (the default first), then :data:`UPLOADED`."""
    from ndrsr.lib.model_zoo import DEFAULT_MODEL, MODELS
    return [DEFAULT_MODEL] + [n for n in MODELS if n != DEFAULT_MODEL] + [UPLOADED]


def model_weights(choice: str, uploaded: Optional[str]) -> Tuple[str, str]:
    """(NDR-Restore weights file, a label for messages) of a model choice.

    A named model is resolved by :func:`ndrsr.lib.model_zoo.resolve_model` (``paper`` is downloaded on
    first use); :data:`UPLOADED` needs ``uploaded``, the weights file given on the page.
    """
    if choice == UPLOADED:
        if not uploaded:
            raise ValueError(f'the model is "{UPLOADED}" but no weights file was uploaded: upload a .pth file '
                             f'under "Advanced", or choose a named model.')
        return uploaded, f'uploaded weights {osp.basename(uploaded)}'
    from ndrsr.lib.model_zoo import resolve_model
    files = resolve_model(choice, progress=False)
    return files.restore, files.name


class Networks:
    """Loaded networks by (kind, weights file, device), at most ``capacity`` of them (least recently used out).

    Loading is serialised by a lock; a loaded network is only read afterwards (evaluation mode).
    """

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._nets: 'OrderedDict[tuple, nn.Module]' = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: str, weights: str, device: str) -> nn.Module:
        """``kind`` 'restore' (NDR-Restore) or 'degrad' (NDR-Degrad, beside or inside ``weights``)."""
        from ndrsr.lib.weights import load_degrad_network, load_restore_network
        dev = resolve_device(device)
        key = (kind, osp.realpath(weights), os.stat(weights).st_mtime_ns, str(dev))
        with self._lock:
            if key in self._nets:
                self._nets.move_to_end(key)
                return self._nets[key]
            load = load_restore_network if kind == 'restore' else load_degrad_network
            net = load(weights, None, dev)
            self._nets[key] = net
            while len(self._nets) > self.capacity:
                self._nets.popitem(last=False)
            return net


# ----------------------------------------------------------------------------- files
def new_folder(root: str, prefix: str) -> str:
    """A new, empty folder under ``root`` for one request's outputs."""
    import tempfile
    os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=root)


def stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def write_preview(path: str, rgb: np.ndarray, side: int = PREVIEW_SIDE) -> str:
    """An 8-bit RGB PNG of (H, W, 3) float RGB for the page, down-scaled (area) to at most ``side`` pixels."""
    import cv2
    h, w = rgb.shape[:2]
    if max(h, w) > side:
        f = side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    write_rgb8(path, rgb)
    return path


def read_input(path: str, what: str = 'the photo', max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> Tuple[ImageFile, Optional[str]]:
    """The image file and, for a file of several frames, the warning that only the first is used."""
    from ndrsr.data.image_io import ImageReadError
    try:
        image = read_image_file(path, max_pixels)
    except ImageReadError as err:  # the page names the uploaded file, not the server's copy of it
        raise ImageReadError(str(err).replace(path, osp.basename(path))) from None
    if image.frames == 1:
        return image, None
    return image, f'{multi_frame_warning(image)}; only the first frame is used as {what}.'.replace(
        path, osp.basename(path))


# ----------------------------------------------------------------------------- Restore
@dataclass
class RestoredPhoto:
    """One restored photo: ``output`` the full-resolution file (as ``ndrsr-restore --ext png`` writes it),
    ``before`` / ``after`` 8-bit previews, ``seconds`` the restoration time, ``note`` a warning or None."""
    name: str
    output: str
    before: str
    after: str
    seconds: float
    size: Tuple[int, int]
    note: Optional[str] = None


@dataclass
class RestoreResult:
    """What one press of Restore gave: the restored photos, the failed ones ``(name, why)``, the model and
    runtime used, the total time."""
    photos: List[RestoredPhoto]
    failures: List[Tuple[str, str]]
    model: str
    runtime: str
    seconds: float = 0.0

    def summary(self) -> str:
        """Markdown lines for the page: what was done, each photo's time, the warnings and failures."""
        lines = [f'Restored {len(self.photos)} of {len(self.photos) + len(self.failures)} photo(s) in '
                 f'{self.seconds:.1f} s with {self.model} ({self.runtime}).']
        lines += [f'- {p.name}: {p.size[0]}x{p.size[1]}, {p.seconds:.2f} s' for p in self.photos]
        lines += [f'- WARNING {p.note}' for p in self.photos if p.note]
        lines += [f'- FAILED {why}' for why in self.failed()]
        return '\n'.join(lines)

    def failed(self) -> List[str]:
        """One line per failed photo: its name and why."""
        return [why if why.startswith(name) else f'{name}: {why}' for name, why in self.failures]


def restore_photos(paths: Sequence[str], weights: str, model: str, runtime: Runtime, networks: Networks,
                   out_root: str, report: Report = _silent) -> RestoreResult:
    """Restore every photo in ``paths`` into a new folder under ``out_root``; one bad photo does not stop the
    others (its failure is listed). ``weights``: NDR-Restore weights (:func:`model_weights`)."""
    import torch

    from ndrsr.data.image_io import ImageReadError
    runtime.check()
    net = networks.get('restore', weights, runtime.device)
    folder = new_folder(out_root, 'restore-')
    result = RestoreResult([], [], model, runtime.describe())
    start = time.perf_counter()
    for i, path in enumerate(paths):
        name = osp.basename(path)
        report(i / len(paths), f'restoring {name} ({i + 1}/{len(paths)})')

        def tiles(done: int, total: int, i=i, name=name) -> None:
            report((i + done / total) / len(paths), f'restoring {name}: tile {done}/{total}')

        try:
            image, note = read_input(path, max_pixels=runtime.max_pixels)
            t0 = time.perf_counter()
            rgb = restore_rgb(net, image.rgb, progress=tiles, **runtime.tiling())
            seconds = time.perf_counter() - t0
            output = osp.join(folder, stem(path) + '.png')
            write_image_file(output, rgb, image)
        except (ImageReadError, ValueError, OSError, MemoryError, torch.OutOfMemoryError) as err:
            result.failures.append((name, user_message(err)))
            continue
        previews = osp.join(folder, 'previews')
        os.makedirs(previews, exist_ok=True)
        result.photos.append(RestoredPhoto(
            name, output, write_preview(osp.join(previews, f'{i}_before.png'), image.rgb),
            write_preview(osp.join(previews, f'{i}_after.png'), rgb), seconds, (rgb.shape[1], rgb.shape[0]), note))
    result.seconds = time.perf_counter() - start
    report(1.0, 'done')
    return result


# ----------------------------------------------------------------------------- What it sees
MAP_KINDS = ('atom', 'confidence', 'U')
LEGEND = """\
**How to read the maps.** NDR-Restore compares every pixel's features with its {atoms} learnt *atoms* (the
neural degradation representation) at three scales (L1 full, L2 half, L3 quarter resolution) and builds
from them the degradation U it hands to the restoration.
- **dominant atom**: which atom each pixel resembles most, one colour per atom (the bar below the summary
  counts them). One colour over the whole photo: one degradation everywhere; colours following the
  scene: the network reads the scene as well as the degradation.
- **confidence**: how clearly one atom wins (dark: a mix of atoms, yellow: one atom).
- **U (PCA)**: the recognised degradation itself, its three strongest components as red, green, blue.
  Rain shows as streaks, noise as grain, haze as a smooth veil that follows depth.
"""


@dataclass
class MapsResult:
    """The maps of one photo: ``summary`` the one-figure summary (input, restored, a row per level),
    ``maps`` [(file, caption)] per level and kind, ``legend`` Markdown, ``seconds``."""
    summary: str
    maps: List[Tuple[str, str]]
    legend: str
    seconds: float
    note: Optional[str] = None


def degradation_maps(path: str, weights: str, model: str, runtime: Runtime, networks: Networks, out_root: str,
                     report: Report = _silent) -> MapsResult:
    """What the NDR recognises in the photo ``path``: the files ``ndrsr-restore --save-maps`` writes, with
    a legend. Raises the reader's and the library's errors."""
    from ndrsr.lib.maps import colour_atoms, colour_confidence, level_maps, summary_figure
    from ndrsr.lib.transfer import removed_share
    runtime.check()
    net = networks.get('restore', weights, runtime.device)
    image, note = read_input(path, max_pixels=runtime.max_pixels)
    start = time.perf_counter()
    report(0.1, 'recognising the degradation')
    us, ss = recognise_rgb(net, image.rgb, **runtime.tiling())
    report(0.4, 'restoring')
    restored = restore_rgb(net, image.rgb, **runtime.tiling())
    report(0.7, 'recognising the restored photo')
    scene, _ = recognise_rgb(net, restored, **runtime.tiling()) if restored.shape == image.rgb.shape else (None, None)
    removed = removed_share(us, [u - c for u, c in zip(us, scene)]) if scene is not None else None
    height, width = image.rgb.shape[:2]
    levels = level_maps([u[0] for u in us], [s[0] for s in ss], height, width)
    folder = new_folder(out_root, 'maps-')
    maps = []
    for i, m in enumerate(levels, start=1):
        for kind, rgb, caption in (
                ('atom', colour_atoms(m['atom'], m['atoms']), f'L{i} dominant atom'),
                ('confidence', colour_confidence(m['confidence']),
                 f'L{i} confidence (mean {m["confidence"].mean():.2f})'),
                ('U', m['u_rgb'], f'L{i} U (PCA)')):
            file = osp.join(folder, f'L{i}_{kind}.png')
            write_rgb8(file, rgb)
            maps.append((file, caption))
    summary = osp.join(folder, f'{stem(path)}_summary.png')
    write_rgb8(summary, summary_figure(image.rgb, restored, levels))
    report(1.0, 'done')
    legend = f'Model: {model}.'
    if removed is not None:
        legend += (f' Its restoration removes {removed:.0%} of the degradation it recognises in this photo (the '
                   f'change of U from the photo to its restoration)'
                   + (': it sees little degradation here and leaves the photo nearly as it is.'
                      if removed < LITTLE_REMOVED else '.'))
    legend += '\n\n' + LEGEND.format(atoms=levels[0]['atoms'])
    return MapsResult(summary, maps, legend, time.perf_counter() - start, note)


# ----------------------------------------------------------------------------- Transfer
@dataclass
class TransferResult:
    """``output``: the clean photo with the degradation (as ``ndrsr-degrade`` writes it), ``before`` /
    ``after`` previews, ``warnings`` the tool's warnings, ``seconds``."""
    output: str
    before: str
    after: str
    warnings: List[str] = field(default_factory=list)
    seconds: float = 0.0


def transfer_degradation(clean_path: str, like_path: str, fit: str, weights: str, runtime: Runtime,
                         networks: Networks, out_root: str, report: Report = _silent) -> TransferResult:
    """``ndrsr-degrade --like LIKE CLEAN --fit FIT``: the degradation of ``like_path`` rendered onto
    ``clean_path``, written as ``CLEAN-STEM_like_LIKE-STEM.png`` in a new folder under ``out_root``."""
    from ndrsr.lib.transfer import DIFFERENCE_FITS
    runtime.check()
    start = time.perf_counter()
    restore_net = networks.get('restore', weights, runtime.device)
    degrad_net = networks.get('degrad', weights, runtime.device)
    warnings = []
    like_image, note = read_input(like_path, 'the degraded example', runtime.max_pixels)
    warnings += [note] if note else []
    clean, note = read_input(clean_path, 'the clean photo', runtime.max_pixels)
    warnings += [note] if note else []
    report(0.1, 'recognising the degradation of the example')
    like = recognise_like(restore_net, like_image.rgb, fit, **runtime.tiling())
    warnings += [w for w in [like.warning(osp.basename(like_path))] if w]
    report(0.5, 'rendering it onto the clean photo')
    rgb = degrade_rgb(degrad_net, like, clean.rgb, restore_net if fit in DIFFERENCE_FITS else None,
                      **runtime.tiling())
    folder = new_folder(out_root, 'transfer-')
    output = osp.join(folder, f'{stem(clean_path)}_like_{stem(like_path)}.png')
    write_image_file(output, rgb, clean)
    os.makedirs(osp.join(folder, 'previews'))
    before = write_preview(osp.join(folder, 'previews', 'before.png'), clean.rgb)
    after = write_preview(osp.join(folder, 'previews', 'after.png'), rgb)
    report(1.0, 'done')
    return TransferResult(output, before, after, warnings, time.perf_counter() - start)


# ----------------------------------------------------------------------------- messages
def user_message(err: BaseException) -> str:
    """One line for the page: the error's own message (they name the file and the fix), with the setting to
    change when the library names one."""
    import torch
    if isinstance(err, torch.OutOfMemoryError) or isinstance(err, MemoryError):
        return 'out of memory: choose a smaller tile under "Advanced" (e.g. 256), or a smaller photo.'
    setting = {'device': 'Advanced: device', 'precision': 'Advanced: precision', 'weights': 'the weights file',
               'model': 'the model'}.get(getattr(err, 'argument', None) or '')
    text = str(err) or err.__class__.__name__
    return f'{text} (change: {setting})' if setting else text


__all__ = ['LEGEND', 'MAP_KINDS', 'UPLOADED', 'MapsResult', 'Networks', 'RestoreResult', 'RestoredPhoto', 'Runtime',
           'TransferResult', 'degradation_maps', 'model_names', 'model_weights', 'restore_photos',
           'transfer_degradation', 'user_message']
