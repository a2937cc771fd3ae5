"""How lq and gt files find each other: listing folders / LMDBs and pairing rules.

Everything works on *stems* (file names without extension, which are also the
LMDB keys BasicSR uses), so one rule serves a disk folder and its LMDB, and
``0001_0.8_0.2.jpg`` pairs with ``0001.png`` whatever the extensions.

A pairing rule maps an lq stem to its gt stem (many lq may share one gt, as in
RESIDE where every clear image has several hazy versions):

==============  =====================================  ===========================
rule            lq stem                                gt stem
==============  =====================================  ===========================
``same``        ``baby``                               ``baby``
``rain``        ``rain-12``                            ``norain-12`` (Rain100L/Rain200)
``reside``      ``0001_0.8_0.2``                       ``0001`` (RESIDE OTS/SOTS; alias ``haze``)
dict            ``{pattern: REGEX, gt: TEMPLATE}``      ``TEMPLATE.format(**named groups)``
dict            ``{filename_tmpl: '{}x2'}``            BasicSR's template: lq = tmpl.format(gt)
==============  =====================================  ===========================
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from os import path as osp
from typing import Dict, Iterable, List, Optional, Tuple, Union

from .image_io import IMAGE_EXTENSIONS, DataLayoutError, stored_lmdb_keys


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class PairingRule:
    """Maps an lq stem to a gt stem: ``gt_template.format(**pattern.fullmatch(lq).groupdict())``."""
    name: str
    pattern: 're.Pattern[str]'
    gt_template: str

    def gt_stem(self, lq_stem: str) -> Optional[str]:
        """The gt stem for ``lq_stem``, or None when the lq name does not match the rule's pattern."""
        m = self.pattern.fullmatch(lq_stem)
        if m is None:
            return None
        return self.gt_template.format(*m.groups(), **m.groupdict())

    def describe(self) -> str:
        return f"'{self.name}' (lq /{self.pattern.pattern}/ -> gt '{self.gt_template}')"


BUILTIN_RULES = {
    'same': (r'(?P<name>.+)', '{name}'),
    'rain': (r'rain-(?P<id>.+)', 'norain-{id}'),
    'reside': (r'(?P<id>[^_]+)_.+', '{id}'),
}
RULE_ALIASES = {'haze': 'reside', 'rain100l': 'rain', 'rain200': 'rain', 'ots': 'reside', 'sots': 'reside'}


def make_rule(spec: Union[None, str, dict]) -> PairingRule:
    """Build a :class:`PairingRule` from the ``pairing`` option.

    Args:
        spec: None / 'same'; a built-in name ('rain', 'reside' or its alias 'haze');
            ``{pattern: REGEX, gt: TEMPLATE}`` where REGEX must match the whole lq
            stem and TEMPLATE is a ``str.format`` string over its groups (named
            ``{id}`` or positional ``{0}``); or ``{filename_tmpl: '{}x2'}``, BasicSR's
            convention (lq stem = template filled with the gt stem).
    """
    if spec is None:
        spec = 'same'
    if isinstance(spec, str):
        key = RULE_ALIASES.get(spec.lower(), spec.lower())
        if key not in BUILTIN_RULES:
            raise DataLayoutError(f"unknown pairing rule {spec!r}: use one of {sorted(BUILTIN_RULES)} "
                                  f"(aliases {sorted(RULE_ALIASES)}), or a dict {{pattern: REGEX, gt: TEMPLATE}}.")
        pattern, template = BUILTIN_RULES[key]
        return PairingRule(key, re.compile(pattern), template)
    if isinstance(spec, dict):
        if set(spec) == {'filename_tmpl'}:
            tmpl = spec['filename_tmpl']
            if tmpl.count('{}') != 1:
                raise DataLayoutError(f"pairing filename_tmpl {tmpl!r} must contain '{{}}' exactly once, "
                                      "e.g. '{}x2'.")
            before, after = tmpl.split('{}')
            return PairingRule(f'filename_tmpl {tmpl}', re.compile(re.escape(before) + '(?P<name>.+)' +
                                                                   re.escape(after)), '{name}')
        if set(spec) == {'pattern', 'gt'}:
            try:
                pattern = re.compile(spec['pattern'])
            except re.error as e:
                raise DataLayoutError(f"pairing pattern {spec['pattern']!r} is not a valid regex: {e}") from None
            rule = PairingRule('custom', pattern, str(spec['gt']))
            try:  # validate the template against the pattern's groups
                rule.gt_template.format(*(['x'] * pattern.groups), **{k: 'x' for k in pattern.groupindex})
            except (KeyError, IndexError) as e:
                raise DataLayoutError(f"pairing gt template {spec['gt']!r} uses {e}, which is not a group of "
                                      f"pattern {spec['pattern']!r}.") from None
            return rule
    raise DataLayoutError(f'pairing must be a rule name, {{pattern: REGEX, gt: TEMPLATE}} or '
                          f'{{filename_tmpl: TEMPLATE}}; got {spec!r}.')


# --------------------------------------------------------------------------- listing
@dataclass
class Listing:
    """The images of one folder or LMDB.

    Attributes:
        root: the folder or ``.lmdb`` path.
        backend: 'disk' or 'lmdb'.
        names: stem -> file name (disk) or key (lmdb), sorted by stem.
    """
    root: str
    backend: str
    names: Dict[str, str]

    def path(self, stem: str) -> str:
        """What FileClient.get takes: the full file path (disk) or the key (lmdb)."""
        return osp.join(self.root, self.names[stem]) if self.backend == 'disk' else self.names[stem]

    def display(self, stem: str) -> str:
        """How the image is named in messages."""
        return osp.join(self.root, self.names[stem]) if self.backend == 'disk' else f'{self.root} key {stem!r}'


def _check_folder(folder: Optional[str], option: str, where: str) -> str:
    if not folder:
        raise DataLayoutError(f'{where}: option {option} is missing. Set it to the image folder (or .lmdb).')
    folder = osp.expanduser(str(folder))
    if not osp.exists(folder):
        given = f'given to {option}' if option.startswith('-') else 'in the options'  # a flag or an option
        raise DataLayoutError(f'{where}: {option} folder {folder} does not exist. Check the path {given} '
                              '(relative paths are relative to the directory you run from).')
    if not osp.isdir(folder):
        raise DataLayoutError(f'{where}: {option} {folder} is a file, not a folder.')
    return folder


def list_disk(folder: str, option: str = 'dataroot', where: str = 'dataset') -> Listing:
    """List the images (by extension, non-recursive) of a folder; other files are ignored.

    Raises DataLayoutError for a missing/empty folder, two files with the same stem, or image names that are
    broken symbolic links (a missing target or a loop; such images would otherwise silently be left out).
    """
    folder = _check_folder(folder, option, where)
    names: Dict[str, str] = {}
    broken: List[str] = []
    for entry in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(entry)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        full = osp.join(folder, entry)
        if not osp.isfile(full):
            if osp.islink(full) and not osp.exists(full):
                broken.append(entry)
            continue
        if stem in names:
            raise DataLayoutError(f'{where}: {osp.join(folder, names[stem])} and {osp.join(folder, entry)} have the '
                                  'same name (stem); images are matched by name without extension. '
                                  'Remove or rename one of them.')
        names[stem] = entry
    if broken:
        more = f' (and {len(broken) - 5} more)' if len(broken) > 5 else ''
        raise DataLayoutError(f'{where}: {option} folder {folder} has {len(broken)} broken symbolic link(s) (target '
                              f'missing, or a link loop): {", ".join(broken[:5])}{more}. Restore their targets, or '
                              'remove the links.')
    if not names:
        raise DataLayoutError(f'{where}: {option} folder {folder} contains no images ({", ".join(IMAGE_EXTENSIONS)}).')
    return Listing(folder, 'disk', dict(sorted(names.items())))


def parse_meta_info_line(line: str) -> Optional[str]:
    """The image name of one meta_info line, or None for a blank line.

    Accepts BasicSR's ``name.png (h,w,c) compression`` (names may contain dots,
    e.g. ``0001_0.8_0.2.png``) and bare ``name`` lines.
    """
    line = line.strip()
    if not line:
        return None
    tokens = line.split(' ')
    if len(tokens) >= 2 and tokens[-1].lstrip('-').isdigit() and tokens[-2].startswith('('):
        return ' '.join(tokens[:-2])
    if len(tokens) >= 2 and tokens[-1].startswith('('):
        return ' '.join(tokens[:-1])
    return tokens[0]


def read_meta_info(meta_file: str, where: str = 'dataset') -> List[str]:
    """Image names listed in a meta_info file (extension kept as written)."""
    if not osp.isfile(meta_file):
        raise DataLayoutError(f'{where}: meta_info_file {meta_file} does not exist. Fix the path or remove the option.')
    with open(meta_file) as f:
        return [n for n in (parse_meta_info_line(line) for line in f) if n is not None]


def list_lmdb(lmdb_path: str, option: str = 'dataroot', where: str = 'dataset', verify: bool = True) -> Listing:
    """List a BasicSR LMDB from its ``meta_info.txt`` (keys = names without extension).

    Args:
        verify: open the LMDB read-only and check every meta_info key is stored.

    Raises DataLayoutError: not an LMDB, missing meta_info.txt, key missing from the database.
    """
    lmdb_path = _check_folder(lmdb_path, option, where)
    if not lmdb_path.rstrip('/').endswith('.lmdb'):
        raise DataLayoutError(f"{where}: {option} {lmdb_path} must end with '.lmdb' for io_backend lmdb "
                              "(BasicSR's convention). Point it to the .lmdb folder or use io_backend: {type: disk}.")
    if not osp.isfile(osp.join(lmdb_path, 'data.mdb')):
        raise DataLayoutError(f'{where}: {lmdb_path} has no data.mdb, it is not an LMDB. '
                              f'Build it with `ndrsr-make-lmdb FOLDER {lmdb_path}`.')
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise DataLayoutError(f'{where}: {lmdb_path} has no meta_info.txt, so its keys are unknown. Rebuild it with '
                              '`ndrsr-make-lmdb`, or write meta_info.txt with one line per image: '
                              '`KEY.png (h,w,c) 1`.')
    names: Dict[str, str] = {}
    for name in read_meta_info(meta, where):
        key = osp.splitext(name)[0]
        names[key] = key
    if not names:
        raise DataLayoutError(f'{where}: {meta} lists no images. Rebuild the LMDB.')
    if verify:
        stored = stored_lmdb_keys(lmdb_path)
        missing = [k for k in names if k not in stored]
        if missing:
            more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
            raise DataLayoutError(f"{where}: key {missing[0]!r}{more} is listed in {meta} but missing from the LMDB "
                                  f'{lmdb_path}. Rebuild the LMDB with `ndrsr-make-lmdb`, or delete '
                                  'those lines from meta_info.txt.')
    return Listing(lmdb_path, 'lmdb', dict(sorted(names.items())))


def list_images(root: str, backend: str, option: str = 'dataroot', where: str = 'dataset') -> Listing:
    """:func:`list_disk` or :func:`list_lmdb` according to the io backend type."""
    if backend == 'disk':
        return list_disk(root, option, where)
    if backend == 'lmdb':
        return list_lmdb(root, option, where)
    raise DataLayoutError(f"{where}: io_backend type {backend!r} is not supported; use 'disk' or 'lmdb'.")


# --------------------------------------------------------------------------- pairing
@dataclass
class PairingReport:
    """Result of pairing an lq listing with a gt listing.

    Attributes:
        pairs: (lq stem, gt stem), sorted by lq stem.
        lq_no_match: lq stems that do not match the rule's pattern.
        lq_without_gt: (lq stem, expected gt stem) whose gt is absent.
        gt_without_lq: gt stems no lq maps to.
    """
    pairs: List[Tuple[str, str]] = field(default_factory=list)
    lq_no_match: List[str] = field(default_factory=list)
    lq_without_gt: List[Tuple[str, str]] = field(default_factory=list)
    gt_without_lq: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.lq_no_match or self.lq_without_gt or self.gt_without_lq)


def pair_listings(lq: Listing, gt: Listing, rule: PairingRule,
                  keep_gt: Optional[Iterable[str]] = None) -> PairingReport:
    """Pair every lq image with its gt image by ``rule``.

    Args:
        keep_gt: if given, only gt stems in it (and the lq mapping to them) are considered.
    """
    keep = None if keep_gt is None else set(keep_gt)
    report = PairingReport()
    used = set()
    for lq_stem in lq.names:
        gt_stem = rule.gt_stem(lq_stem)
        if gt_stem is None:
            report.lq_no_match.append(lq_stem)
        elif keep is not None and gt_stem not in keep:
            continue
        elif gt_stem in gt.names:
            report.pairs.append((lq_stem, gt_stem))
            used.add(gt_stem)
        else:
            report.lq_without_gt.append((lq_stem, gt_stem))
    report.gt_without_lq = [s for s in gt.names if s not in used and (keep is None or s in keep)]
    return report


def pairing_errors(report: PairingReport, lq: Listing, gt: Listing, rule: PairingRule, where: str,
                   limit: Optional[int] = 5) -> List[str]:
    """Human-readable problems of a report, each naming the file and the fix (empty when complete).

    At most ``limit`` files of each kind are named (None: all), then a count of the rest.
    """
    errors = []
    rule_text = f'pairing rule {rule.describe()}'
    for lq_stem in report.lq_no_match[:limit]:
        errors.append(f'{where}: lq image {lq.display(lq_stem)} does not match the {rule_text}.')
    for lq_stem, gt_stem in report.lq_without_gt[:limit]:
        expected = osp.join(gt.root, gt_stem + '.*') if gt.backend == 'disk' else f'{gt.root} key {gt_stem!r}'
        errors.append(f'{where}: gt image for {lq.display(lq_stem)} not found: expected {expected} ({rule_text}).')
    for gt_stem in report.gt_without_lq[:limit]:
        errors.append(f'{where}: gt image {gt.display(gt_stem)} has no lq image in {lq.root} ({rule_text}).')
    total = len(report.lq_no_match) + len(report.lq_without_gt) + len(report.gt_without_lq)
    if total > len(errors):
        errors.append(f'{where}: ... and {total - len(errors)} more unpaired files '
                      '(ndrsr-check -opt OPTIONS.yml lists them all).')
    if errors:
        errors.append('Fix: check dataroot_lq / dataroot_gt, set pairing (same, rain, reside, '
                      '{pattern: REGEX, gt: TEMPLATE} or {filename_tmpl: ...}), or set unpaired: ignore to skip '
                      'unpaired files.')
    return errors


def filter_by_meta_info(listing: Listing, meta_info_file: Optional[str], where: str) -> Optional[List[str]]:
    """Stems of ``listing`` named in ``meta_info_file`` (None when no file is given).

    Raises DataLayoutError if the file names an image that is not in the listing.
    """
    if not meta_info_file:
        return None
    stems = [osp.splitext(osp.basename(n))[0] for n in read_meta_info(meta_info_file, where)]
    missing = [s for s in stems if s not in listing.names]
    if missing:
        raise DataLayoutError(f'{where}: {missing[0]!r} (and {len(missing) - 1} more) listed in meta_info_file '
                              f'{meta_info_file} is not in {listing.root}. Fix the meta_info_file or the folder.'
                              if len(missing) > 1 else
                              f'{where}: {missing[0]!r} listed in meta_info_file {meta_info_file} is not in '
                              f'{listing.root}. Fix the meta_info_file or the folder.')
    return stems

