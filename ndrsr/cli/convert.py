"""ndrsr-convert: the released NDR-Restore checkpoint -> BasicSR checkpoints.

    ndrsr-convert RELEASED.pth OUT_DIR [--overwrite]

Writes OUT_DIR/net_g.pth, OUT_DIR/net_degrad.pth and OUT_DIR/network_options.yml
(:func:`ndrsr.lib.convert.convert_file`). Exit status 2 when the file cannot be
converted, an output exists or OUT_DIR cannot be written (one line, no traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from ndrsr.cli.errors import INTERRUPTED, USAGE, error_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-convert', description=__doc__.split('\n\n')[0])
    parser.add_argument('released', help='released checkpoint (e.g. model_L.pth)')
    parser.add_argument('out_dir', help='folder for net_g.pth, net_degrad.pth and network_options.yml')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files in OUT_DIR')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ndrsr.lib.convert import convert_file
    try:
        g, d = convert_file(args.released, args.out_dir, args.overwrite)
    except (ValueError, OSError) as err:  # not a checkpoint, missing, exists, OUT_DIR not writable: one line
        print(error_line('ndrsr-convert', err, {'overwrite': '--overwrite'}), file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print('\nndrsr-convert: interrupted', file=sys.stderr)
        return INTERRUPTED
    print(f'wrote {g}\nwrote {d}\nwrote {os.path.join(args.out_dir, "network_options.yml")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
