"""ndrsr-check: will the datasets of an options file train?

    ndrsr-check -opt options/train_all_in_one.yml [--no-read]

Prints the option problems training would refuse, then, per source, what
:func:`ndrsr.data.check.check_options` found. Exit status 0 when training would
run, 1 when it would fail; an options file that cannot be read (missing, not
YAML, python tags: it is read with the safe loader, so it never runs code) is one
``ndrsr-check: error: ...`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Tuple

from ndrsr.cli.errors import USAGE
from ndrsr.data.check import SourceCheck, check_options

PROG = 'ndrsr-check'


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
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='options YAML')
    parser.add_argument('--no-read', action='store_true', help='only list and pair files, do not decode images')
    args = parser.parse_args(argv)
    from ndrsr.glue.options_io import OptionsFileError, load_options_file
    try:
        opt = load_options_file(args.opt)  # the safe loader: a downloaded options file cannot run code
    except OptionsFileError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return USAGE
    results = check_options(opt, read=not args.no_read)
    if not results:
        print(f'{PROG}: error: {args.opt} has no MixedDegradationDataset or TaskValidationDataset under datasets.',
              file=sys.stderr)
        return USAGE
    total, bad = print_report(results)
    print(f"\n{total - bad}/{total} sources OK" + ('' if bad == 0 else ' - training would fail, fix the above.'))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
