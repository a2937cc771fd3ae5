"""Data sources: the options of one source parsed, its files listed and paired, and how it is sampled.

A *source* is one folder (or LMDB) of ground-truth images, with either a paired
folder of degraded images or a synthesis recipe (``synthesize``). The training
mix (:class:`~ndrsr.data.mixed_degradation_dataset.MixedDegradationDataset`) is
a list of sources, a validation set
(:class:`~ndrsr.data.task_val_dataset.TaskValidationDataset`) is one, and the
layout checker (``ndrsr-check``) parses them the same way. Every
source option is documented in docs/datasets.md.

* :func:`parse_source` validates a source's options, lists and pairs its files;
  :class:`Source` is the result.
* :func:`open_file_clients` opens BasicSR FileClients for sources (disk, LMDB).
* :func:`check_pair_sizes` checks that a gt image is ``scale`` times its lq.
* :func:`sampling_counts` gives each source's slots per epoch (``repeat`` / ``ratio``).
* :func:`source_problems` lists what is wrong with a source's options without
  touching its folders (used by :func:`parse_source` and the options check).
* :func:`check_choice` checks an option against its allowed values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from basicsr.utils import FileClient

from ndrsr.glue.options_io import unknown_key_problems

from .synthesis import SynthStep, parse_synthesis, synthesis_scale, synthesis_task
from .image_io import lmdb_env
from .pairing import (DataLayoutError, Listing, PairingRule, filter_by_meta_info, list_images, make_rule,
                      pair_listings, pairing_errors)

SOURCE_KEYS = ('name', 'task', 'dataroot_lq', 'dataroot_gt', 'pairing', 'synthesize', 'io_backend', 'meta_info_file',
               'repeat', 'ratio', 'unpaired', 'synthesis_scope')
UNPAIRED_MODES = ('error', 'ignore')
# where a source's synthesis runs: on the training crop, or on the whole photo before the crop (haze whose depth
# is a property of the scene: a crop of sky is far, a crop of a near wall is near)
SYNTHESIS_SCOPES = ('crop', 'image')


@dataclass
class Source:
    """One parsed source: where its images are and how lq is obtained.

    Attributes:
        name, task: from the options.
        backend: 'disk' or 'lmdb'; io_kwargs: the rest of io_backend for FileClient.
        gt, lq: listings (lq None for clean-only sources).
        items: (lq stem or None, gt stem), sorted.
        steps: synthesis applied to lq (clean-only: to the gt crop).
        synthesis_scope: 'crop' (steps run on the training crop) or 'image' (on the whole photo, then cropped).
        pair_scale: gt size / lq file size for paired sources (1 for clean-only).
        rule: pairing rule (paired sources).
        repeat, ratio: sampling weight options.
        unpaired_report: messages about files skipped with unpaired: ignore.
    """
    name: str
    task: str
    backend: str
    io_kwargs: Dict
    gt: Listing
    lq: Optional[Listing]
    items: List[Tuple[Optional[str], str]]
    steps: List[SynthStep]
    pair_scale: int = 1
    rule: Optional[PairingRule] = None
    repeat: Optional[int] = None
    ratio: Optional[float] = None
    unpaired_report: List[str] = field(default_factory=list)
    synthesis_scope: str = 'crop'

    @property
    def paired(self) -> bool:
        return self.lq is not None

    def key(self, role: str) -> str:
        """The FileClient client_key of the 'lq' or 'gt' listing (its root; ignored on disk)."""
        return (self.lq if role == 'lq' else self.gt).root


def open_file_clients(sources: Sequence[Source]) -> Dict[str, FileClient]:
    """BasicSR FileClients for ``sources``: {'disk': ..., 'lmdb': ...} as needed.

    One LMDB FileClient serves every LMDB of the sources, with client_keys equal
    to the LMDB paths; its environments are the process-wide shared ones of
    :func:`ndrsr.data.image_io.lmdb_env`, because py-lmdb opens an LMDB only once
    per process and sources (or a training and a validation set) may share one.
    Call it lazily in the worker, as BasicSR does.
    """
    clients: Dict[str, FileClient] = {}
    kwargs: Dict = {}
    roots: List[str] = []
    for src in sources:
        if src.backend == 'disk':
            clients.setdefault('disk', FileClient('disk'))
            continue
        for listing in (src.lq, src.gt):
            if listing is not None and listing.root not in roots:
                roots.append(listing.root)
        for k, v in src.io_kwargs.items():
            if kwargs.setdefault(k, v) != v:
                raise DataLayoutError(f"source '{src.name}': io_backend {k}={v!r} conflicts with {kwargs[k]!r} of "
                                      'another LMDB source; use the same LMDB options for all sources.')
    if roots:
        client = FileClient('lmdb', db_paths=[], client_keys=[])
        for root in roots:
            client.client.db_paths.append(root)
            client.client._client[root] = lmdb_env(root, **kwargs)
        clients['lmdb'] = client
    return clients


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def choice_problems(spec: dict, key: str, allowed: Sequence, default: Any, where: str) -> List[str]:
    """A problem when ``spec[key]`` (default ``default``) is not one of ``allowed``."""
    value = spec.get(key, default)
    return [] if value in allowed else [f'{where}: {key} must be one of {list(allowed)}, got {value!r}']


def source_name(spec: dict) -> str:
    """The name a source gets: ``name``, else its task, else the task its synthesis implies."""
    if spec.get('name') is not None:
        return str(spec['name'])
    if spec.get('task'):
        return str(spec['task'])
    try:
        return synthesis_task(parse_synthesis(spec.get('synthesize')))
    except ValueError:
        return '?'


def source_problems(spec: Any, where: str, extra_keys: Tuple[str, ...] = ()) -> List[str]:
    """Every problem of one source's options that shows without listing its folders, one line each.

    Unknown keys (with the nearest valid name), the io backend type, ``synthesize``,
    ``pairing`` and ``task`` of a paired source, ``repeat`` / ``ratio``, ``unpaired``, ``synthesis_scope``.
    :func:`parse_source` raises them all at once; the options check lists them before a run.
    """
    if not isinstance(spec, dict):
        return [f'{where}: each source must be a mapping of options, got {spec!r}']
    problems = unknown_key_problems(spec, SOURCE_KEYS + tuple(extra_keys), where)
    io = spec.get('io_backend')
    if io is not None and (not isinstance(io, dict) or io.get('type', 'disk') not in ('disk', 'lmdb')):
        problems.append(f'{where}: io_backend must be {{type: disk}} or {{type: lmdb}}, got {io!r}')
    try:
        parse_synthesis(spec.get('synthesize'), f'{where} synthesize')
    except ValueError as e:
        problems.append(str(e))
    if spec.get('dataroot_lq'):
        try:
            make_rule(spec.get('pairing'))
        except DataLayoutError as e:
            problems.append(f'{where}: {e}')
        if not spec.get('task'):
            problems.append(f'{where}: paired sources need a task tag, e.g. task: rain')
    repeat, ratio = spec.get('repeat'), spec.get('ratio')
    if repeat is not None and ratio is not None:
        problems.append(f'{where}: set either repeat (copies per epoch) or ratio (share of samples), not both')
    if repeat is not None and (not is_int(repeat) or repeat < 1):
        problems.append(f'{where}: repeat must be an integer >= 1, got {repeat!r}')
    if ratio is not None and (not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0):
        problems.append(f'{where}: ratio must be a positive number, got {ratio!r}')
    problems += choice_problems(spec, 'unpaired', UNPAIRED_MODES, 'error', where)
    problems += choice_problems(spec, 'synthesis_scope', SYNTHESIS_SCOPES, 'crop', where)
    return problems


def check_choice(value, allowed: Sequence, key: str, where: str):
    """``value`` if it is one of ``allowed``, else a DataLayoutError naming the option ``key`` at ``where``."""
    if value not in allowed:
        raise DataLayoutError(f'{where}: {key} must be one of {allowed}, got {value!r}.')
    return value


def parse_source(spec: dict, scale: int, default_io: Optional[dict], where: str,
                 default_unpaired: str = 'error', extra_keys: Tuple[str, ...] = (),
                 report_limit: Optional[int] = 5) -> Source:
    """Validate one source's options, list its files and pair them.

    Args:
        spec: the source's options (see docs/datasets.md).
        scale: the dataset's scale (gt size / lq size of every sample).
        default_io: dataset-level io_backend used when the source has none.
        where: prefix of error messages, e.g. "datasets.train source 'rain'".
        default_unpaired: 'error' or 'ignore', when the source does not say.
        extra_keys: keys tolerated besides SOURCE_KEYS (validation datasets).
        report_limit: how many unpaired files to name in messages (None: all).

    Raises:
        DataLayoutError: bad options, missing folders, unpaired files, scale mismatch.
    """
    problems = source_problems(spec, where, extra_keys)  # the same checks as the options check, all at once
    if problems:
        raise DataLayoutError('\n'.join(problems))
    io = dict(spec.get('io_backend') or default_io or {'type': 'disk'})
    backend = io.pop('type', 'disk')
    if backend not in ('disk', 'lmdb'):
        raise DataLayoutError(f"{where}: io_backend type {backend!r} is not supported; use disk or lmdb.")
    steps = parse_synthesis(spec.get('synthesize'), f'{where} synthesize')
    synth_scale = synthesis_scale(steps)
    unpaired = check_choice(spec.get('unpaired', default_unpaired), UNPAIRED_MODES, 'unpaired', where)
    scope = check_choice(spec.get('synthesis_scope', 'crop'), SYNTHESIS_SCOPES, 'synthesis_scope', where)

    gt = list_images(spec.get('dataroot_gt'), backend, 'dataroot_gt', where)
    keep_gt = filter_by_meta_info(gt, spec.get('meta_info_file'), where)
    report_lines: List[str] = []
    if spec.get('dataroot_lq'):
        if scale % synth_scale:
            raise DataLayoutError(f'{where}: synthesize shrinks lq by {synth_scale}, which does not divide the '
                                  f'dataset scale {scale}. Fix scale or synthesize.')
        lq = list_images(spec['dataroot_lq'], backend, 'dataroot_lq', where)
        rule = make_rule(spec.get('pairing'))
        report = pair_listings(lq, gt, rule, keep_gt)
        problems = pairing_errors(report, lq, gt, rule, where, report_limit)
        if problems and unpaired == 'error':
            raise DataLayoutError('\n'.join(problems))
        report_lines = problems
        if not report.pairs:
            raise DataLayoutError(f'{where}: no lq image in {lq.root} pairs with a gt image in {gt.root} by pairing '
                                  f'rule {rule.describe()}. Set pairing to match the file names.')
        items = [(lq_stem, gt_stem) for lq_stem, gt_stem in report.pairs]
        pair_scale = scale // synth_scale
        task = spec['task']
    else:
        if spec.get('pairing') is not None:
            raise DataLayoutError(f'{where}: pairing is set but dataroot_lq is not. Add dataroot_lq, or remove '
                                  'pairing for a clean-only source.')
        if not steps:
            raise DataLayoutError(f'{where}: a clean-only source (no dataroot_lq) needs synthesize, e.g. '
                                  'synthesize: [noise] or [down2]; or add dataroot_lq for paired data.')
        if synth_scale != scale:
            raise DataLayoutError(f'{where}: synthesize {[s.kind for s in steps]} shrinks lq by {synth_scale} but the '
                                  f'dataset scale is {scale}: every sample of a batch needs the same lq size. Add or '
                                  f'remove a down{scale if scale > 1 else 2} step, or use downup2 (same-size SR).')
        lq, rule, pair_scale = None, None, 1
        items = [(None, s) for s in (keep_gt if keep_gt is not None else gt.names)]
        task = spec.get('task') or synthesis_task(steps)
    repeat, ratio = spec.get('repeat'), spec.get('ratio')
    return Source(name=source_name(spec), task=str(task), backend=backend, io_kwargs=io, gt=gt, lq=lq,
                  items=items, steps=steps, pair_scale=pair_scale, rule=rule, repeat=repeat, ratio=ratio,
                  unpaired_report=report_lines, synthesis_scope=scope)


def check_pair_sizes(gt: np.ndarray, lq: np.ndarray, scale: int, gt_name: str, lq_name: str) -> np.ndarray:
    """Check that gt is ``scale`` x lq (up to scale - 1 extra gt pixels) and crop gt to exactly lq * scale.

    Args:
        gt: (Hg, Wg, C); lq: (Hl, Wl, C).

    Returns:
        gt cropped to (Hl * scale, Wl * scale, C).
    """
    (hg, wg), (hl, wl) = gt.shape[:2], lq.shape[:2]
    if not (hl * scale <= hg < (hl + 1) * scale and wl * scale <= wg < (wl + 1) * scale):
        expect = f'{hl * scale}x{wl * scale}' if scale > 1 else f'{hl}x{wl}'
        raise DataLayoutError(f'size mismatch: lq {lq_name} is {hl}x{wl} (HxW) and gt {gt_name} is {hg}x{wg}; with '
                              f'scale {scale} the gt should be {expect}. Check the pairing rule, the scale option, or '
                              'that the two files show the same picture.')
    return gt[:hl * scale, :wl * scale]


def sampling_counts(sources: List[Source], where: str) -> List[int]:
    """Slots per epoch of each source.

    ``repeat`` (default 1): len(source) * repeat slots, the released setting.
    ``ratio`` (all sources): proportions p_i = ratio_i / sum(ratio); the epoch has
    L = max_i ceil(len_i / p_i) slots so every image is seen at least once, and
    source i gets round(p_i * L).
    """
    with_ratio = [s.ratio is not None for s in sources]
    if any(with_ratio) and not all(with_ratio):
        names = [s.name for s in sources if s.ratio is None]
        raise DataLayoutError(f'{where}: some sources set ratio and others do not ({names}); either give every source '
                              'a ratio (target proportions) or use repeat (copies per epoch) everywhere.')
    if not all(with_ratio):
        return [len(s.items) * (s.repeat or 1) for s in sources]
    total = float(sum(s.ratio for s in sources))
    props = [s.ratio / total for s in sources]
    length = max(math.ceil(len(s.items) / p) for s, p in zip(sources, props))
    return [max(1, round(p * length)) for p in props]


__all__ = ['SOURCE_KEYS', 'UNPAIRED_MODES', 'SYNTHESIS_SCOPES', 'Source', 'open_file_clients', 'check_choice',
           'choice_problems', 'is_int', 'source_name', 'source_problems', 'parse_source', 'check_pair_sizes',
           'sampling_counts']
