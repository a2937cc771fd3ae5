"""Reading options YAML files safely, and the shared wording of option problems.

BasicSR's ``ordered_yaml()`` loader is PyYAML's full ``Loader``: a downloaded
options file with ``!!python/object/apply:os.system [...]`` runs that command
when it is read. ndrsr reads every options file with :class:`SafeOrderedLoader`
instead: PyYAML's ``SafeLoader`` (plain data only; ``!!float 1e-4`` and the
other standard tags still work) building ``OrderedDict`` mappings as BasicSR's
loader does.

:class:`OptionsError` carries the problems found in options that read fine
but cannot train (unknown keys, mismatched sizes, missing data folders; see
:mod:`ndrsr.glue.options_check`); :func:`unknown_key_problems` words an unknown key
with the nearest valid name.
"""
from __future__ import annotations

import difflib
from collections import OrderedDict
from typing import Any, Iterable, List, Sequence

import yaml

try:
    _SafeBase = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _SafeBase = yaml.SafeLoader


class OptionsFileError(ValueError):
    """An options file that cannot be read: missing, not YAML, or not a mapping."""


class OptionsError(ValueError):
    """Options that read fine but cannot be used; ``problems`` lists each one (one line each)."""

    def __init__(self, problems: Sequence[str], header: str = 'the options cannot be used:', footer: str = ''):
        self.problems = list(problems)
        lines = [header] + [f'  - {p}' for p in self.problems] + ([footer] if footer else [])
        super().__init__('\n'.join(lines))


def unknown_key_problems(given: Iterable[Any], known: Iterable[str], where: str) -> List[str]:
    """One line per key of ``given`` that is not in ``known``, naming the nearest valid key when there is one.

    Example: ``datasets.train: unknown option 'use_flip' (did you mean 'use_hflip'?)``.
    """
    known = list(known)
    out = []
    for key in given:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f' (known: {", ".join(sorted(known))})'
        out.append(f"{where}: unknown option '{key}'{hint}")
    return out


class SafeOrderedLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader with ordered mappings (BasicSR's ``ordered_yaml()[0]``, minus arbitrary objects)."""


def _construct_ordered(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered)


def safe_ordered_yaml():
    """(Loader, Dumper) like ``basicsr.utils.options.ordered_yaml()``, with the safe loader."""
    from basicsr.utils.options import ordered_yaml
    return SafeOrderedLoader, ordered_yaml()[1]


def load_options_text(text: str, source: str = '<options>') -> Any:
    """Parse options YAML text safely. Raises :class:`OptionsFileError` naming ``source``."""
    try:
        return yaml.load(text, Loader=SafeOrderedLoader)
    except yaml.constructor.ConstructorError as e:
        raise OptionsFileError(f'{source}: {e.problem} {e.problem_mark or ""}. Options files may hold plain data '
                               'only (numbers, strings, lists, mappings, !!float); python tags are refused.') from None
    except yaml.YAMLError as e:
        raise OptionsFileError(f'{source} is not valid YAML: {e}. Fix the file (indentation, colons, '
                               'quotes).') from None


def load_options_file(path: str) -> dict:
    """Read an options YAML file safely into an ordered mapping.

    Raises:
        OptionsFileError: the file is missing or unreadable, is not valid YAML,
            uses a python tag, or is not a mapping.
    """
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise OptionsFileError(f'cannot read options file {path}: {e.strerror}. Check the path given to '
                               '-opt.') from None
    except UnicodeDecodeError:
        raise OptionsFileError(f'options file {path} is not UTF-8 text. Pass a YAML options file.') from None
    data = load_options_text(text, path)
    if not isinstance(data, dict):
        raise OptionsFileError(f'options file {path} must hold a mapping of options (name: ..., datasets: ...), '
                               f'got {type(data).__name__}.')
    return data


__all__ = ['OptionsFileError', 'OptionsError', 'SafeOrderedLoader', 'safe_ordered_yaml', 'load_options_text',
           'load_options_file', 'unknown_key_problems']
