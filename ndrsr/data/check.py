"""Layout check: will the datasets of an options file train?

Usage (the tool is :mod:`ndrsr.cli.check`)::

    ndrsr-check -opt options/train_all_in_one.yml [--no-read]

For every ``MixedDegradationDataset`` source and every ``TaskValidationDataset``
it prints how many pairs/images it found, every unpaired file, every
unreadable file (corrupt, truncated, unsupported format, grayscale with
``gray: error``), size mismatches between lq and gt (accounting for the scale)
and images smaller than the training crop. Exit status 0 when training would
run, 1 when it would fail, 2 for unusable options.

It uses the same pairing, reading and size checks as the datasets
(``parse_source``, ``read_image``, ``check_pair_sizes``), not a second copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from .image_io import ImageReadError, read_image
from .sources import SOURCE_KEYS, Source, check_pair_sizes, open_file_clients, parse_source
from .pairing import DataLayoutError


@dataclass
class SourceCheck:
    """What the check found for one source."""
    label: str
    source: Optional[Source] = None
    fatal: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    unreadable: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    too_small: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.fatal or self.unreadable or self.mismatched or self.too_small)


def check_source(spec: dict, label: str, scale: int, default_io: Optional[dict], unpaired: str,
                 crop: Optional[int], small_images: str, gray: str, read: bool) -> SourceCheck:
    """Check one source (a training source, or a validation dataset's options).

    Args:
        crop: the training gt_size, or None for whole-image validation.
    """
    result = SourceCheck(label)
    if not isinstance(spec, dict):
        result.fatal.append(f'{label}: each source must be a mapping of options, got {spec!r}.')
        return result
    try:
        src = parse_source(spec, scale, default_io, label, unpaired, report_limit=None)
        result.warnings.extend(src.unpaired_report)  # unpaired: ignore
    except DataLayoutError as e:
        try:  # unpaired files are fatal with unpaired: error; pair the rest to list and read them all
            src = parse_source({**spec, 'unpaired': 'ignore'}, scale, default_io, label, 'ignore', report_limit=None)
        except DataLayoutError:
            result.fatal.extend(str(e).split('\n'))
            return result
        result.fatal.extend(src.unpaired_report)
    result.source = src
    if not read:
        return result
    try:
        client = open_file_clients([src])[src.backend]
    except DataLayoutError as e:
        result.fatal.append(str(e))
        return result
    _read_all(src, client, result, crop, small_images, gray)
    return result


def _read_all(src: Source, client, result: SourceCheck, crop: Optional[int], small_images: str, gray: str) -> None:
    """Decode every image of ``src``; record unreadable, mismatched and too-small ones in ``result``."""
    for lq_stem, gt_stem in src.items:
        try:
            gt = read_image(client, src.gt.path(gt_stem), src.key('gt'), gray, src.gt.display(gt_stem))
        except ImageReadError as e:
            result.unreadable.append(str(e))
            continue
        if src.paired:
            try:
                lq = read_image(client, src.lq.path(lq_stem), src.key('lq'), gray, src.lq.display(lq_stem))
            except ImageReadError as e:
                result.unreadable.append(str(e))
                continue
            try:
                check_pair_sizes(gt, lq, src.pair_scale, src.gt.display(gt_stem), src.lq.display(lq_stem))
            except DataLayoutError as e:
                result.mismatched.append(str(e))
                continue
            small, name, need = lq, src.lq.display(lq_stem), None if crop is None else crop // src.pair_scale
        else:
            small, name, need = gt, src.gt.display(gt_stem), crop
        if need is not None and min(small.shape[:2]) < need:
            msg = (f'{name} is {small.shape[0]}x{small.shape[1]}, smaller than the crop {need}x{need}. '
                   'Remove it, lower gt_size, or set small_images: pad.')
            (result.too_small if small_images == 'error' else result.warnings).append(msg)


def options_check(opt: dict) -> Optional[SourceCheck]:
    """The problems training would refuse before reading any data (:func:`ndrsr.glue.options_check.options_problems`:
    unknown keys, gt_size and scale, source names, ratios, network sizes, the schedule), as one result; None when
    there are none. A file with only ``datasets`` (no ``model_type``, no ``train``) is checked as a data layout:
    the sections BasicSR needs besides are not asked for."""
    from ndrsr.glue.options_check import options_problems
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    is_train = 'train' in datasets or 'train' in opt
    full = 'model_type' in opt or 'train' in opt
    problems = options_problems(opt, is_train, data=False, sources=False, required=full)
    return SourceCheck('options', fatal=problems) if problems else None


def check_options(opt: dict, read: bool = True) -> List[SourceCheck]:
    """Check the options as training does (:func:`options_check`), then every MixedDegradationDataset source and
    TaskValidationDataset of a (BasicSR) options dict."""
    results: List[SourceCheck] = []
    static = options_check(opt)
    if static is not None:
        results.append(static)
    top_scale = opt.get('scale', 1)
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    for key, ds in datasets.items():
        if not isinstance(ds, dict):
            continue
        scale = ds.get('scale', top_scale)
        scale = scale if isinstance(scale, int) and scale >= 1 else 1  # a bad scale is reported by options_check
        gray = ds.get('gray', 'convert')
        unpaired = ds.get('unpaired', 'error')
        if ds.get('type') == 'MixedDegradationDataset':
            sources = ds.get('sources') if isinstance(ds.get('sources'), (list, tuple)) else []
            crop = ds.get('gt_size') if isinstance(ds.get('gt_size'), int) else None
            for i, spec in enumerate(sources):
                name = spec.get('name', '?') if isinstance(spec, dict) else '?'
                results.append(check_source(spec, f"datasets.{key} source {i} '{name}'", scale, ds.get('io_backend'),
                                            unpaired, crop, ds.get('small_images', 'error'), gray, read))
        elif ds.get('type') == 'TaskValidationDataset':
            spec = {k: v for k, v in ds.items() if k in SOURCE_KEYS}
            spec.setdefault('io_backend', {'type': 'disk'})
            results.append(check_source(spec, f'datasets.{key}', scale, None, unpaired, None, 'error', gray, read))
    return results
