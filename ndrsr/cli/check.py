"""python -m ndrsr.data.check: will the datasets of an options file train?

    python -m ndrsr.data.check -opt options/train_all_in_one.yml [--no-read]

Prints, per source, what :func:`ndrsr.data.check.check_options` found. Exit
status 0 when training would run, 1 when it would fail, 2 for unusable options.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Tuple

from ndrsr.data.check import SourceCheck, check_options

def print_report(results: List[SourceCheck], out=None) -> Tuple[int, int]:
    """Print one line per source and one per problem; returns (sources, sources that fail)."""
    out = out or sys.stdout
    bad = 0
    for r in results:
        src = r.source
        if src is not None:
            kind = 'paired' if src.paired else f"clean + synthesize {[s.kind for s in src.steps]}"
            count = f'{len(src.items)} pairs' if src.paired else f'{len(src.items)} images'
            print(f"{'OK  ' if r.ok else 'FAIL'} {r.label}: task {src.task}, {kind}, {src.backend}, {count}", file=out)
        else:
            print(f'FAIL {r.label}', file=out)
        for title, lines in (('error', r.fatal), ('unreadable', r.unreadable), ('size mismatch', r.mismatched),
                             ('smaller than crop', r.too_small), ('warning', r.warnings)):
            for line in lines:
                print(f'    {title}: {line}', file=out)
        bad += not r.ok
    return len(results), bad

def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ndrsr.data.check', description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='options YAML')
    parser.add_argument('--no-read', action='store_true', help='only list and pair files, do not decode images')
    args = parser.parse_args(argv)
    import yaml
    from basicsr.utils.options import ordered_yaml
    try:
        with open(args.opt) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except (OSError, yaml.YAMLError) as e:
        print(f'error: cannot read options {args.opt}: {e}', file=sys.stderr)
        return 2
    results = check_options(opt or {}, read=not args.no_read)
    if not results:
        print(f'error: {args.opt} has no MixedDegradationDataset or TaskValidationDataset under datasets.',
              file=sys.stderr)
        return 2
    total, bad = print_report(results)
    print(f"\n{total - bad}/{total} sources OK" + ('' if bad == 0 else ' - training would fail, fix the above.'))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
