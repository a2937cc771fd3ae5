"""ndrsr-make-lmdb: build BasicSR-format LMDBs from image folders.

    ndrsr-make-lmdb FOLDER OUT.lmdb [--compress-level 1]
    ndrsr-make-lmdb -opt options/train_all_in_one.yml [--out-dir DIR] [--skip-existing]

The work is :func:`ndrsr.data.make_lmdb.make_lmdb` (safety, map size and format
are described there). What the user can fix (a build that fails on its images,
an output that exists, an options file that cannot be read: it is read with the
safe loader, so it never runs code; two folders that would go to the same LMDB)
is one ``ndrsr-make-lmdb: error: ...`` line and exit status 2; Ctrl-C ends with
status 130 and no partial LMDB.
"""
from __future__ import annotations

import argparse
import sys
from os import path as osp
from typing import Dict, List, Optional, Tuple

from ndrsr.cli.errors import INTERRUPTED, USAGE


PROG = 'ndrsr-make-lmdb'


def build_parser() -> argparse.ArgumentParser:
    from ndrsr.data import make_lmdb as lib
    parser = argparse.ArgumentParser(prog=PROG, description=lib.__doc__.split('\n\n')[0])
    parser.add_argument('folder', nargs='?', help='image folder')
    parser.add_argument('lmdb_path', nargs='?', help='output .lmdb folder (must not exist)')
    parser.add_argument('-opt', help='options YAML: build one LMDB per disk folder of its datasets')
    parser.add_argument('--out-dir', help='with -opt: where to put the LMDBs (default: next to each folder)')
    parser.add_argument('--skip-existing', action='store_true', help='with -opt: skip outputs that already exist')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default 1)')
    return parser


LOW_SPACE = 16 << 20  # less free space than this after a failed LMDB write: the disk filled up


def lmdb_failure(err: Exception, out: str) -> str:
    """One line for an LMDB that could not be written; a full disk (LMDB says ``Input/output error``) named."""
    import shutil
    parent = osp.dirname(osp.abspath(out))
    free = shutil.disk_usage(parent).free
    if free < LOW_SPACE and ('Input/output error' in str(err) or 'No space' in str(err)):
        return (f'no space left on the device writing {out} (lmdb: {err}; {free / 2 ** 20:.1f} MiB free in '
                f'{parent}; nothing was left behind). Free space, or write the LMDB to another disk.')
    return f'writing {out} failed (lmdb: {err}); nothing was left behind.'


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import lmdb

    from ndrsr.glue.compat import apply_pipeline_fixes
    from ndrsr.data.make_lmdb import folders_in_options, make_lmdb
    from ndrsr.data.pairing import DataLayoutError
    apply_pipeline_fixes()  # ndrsr's entry points run BasicSR with its fixes (basicsr's own LMDB map size too)
    jobs: List[Tuple[str, str]] = []
    if args.opt:
        from ndrsr.glue.options_io import OptionsFileError, load_options_file
        try:
            opt = load_options_file(args.opt)  # the safe loader: a downloaded options file cannot run code
        except OptionsFileError as e:
            print(f'{PROG}: error: {e}', file=sys.stderr)
            return USAGE
        for folder in folders_in_options(opt):
            base = osp.basename(osp.normpath(folder)) + '.lmdb'
            out = osp.join(args.out_dir, base) if args.out_dir else osp.normpath(folder) + '.lmdb'
            jobs.append((folder, out))
        outs: Dict[str, str] = {}
        for folder, out in jobs:
            if out in outs:
                print(f'{PROG}: error: {folder} and {outs[out]} would both go to {out}; build them one by one '
                      'with FOLDER OUT.lmdb.', file=sys.stderr)
                return USAGE
            outs[out] = folder
    elif args.folder and args.lmdb_path:
        jobs.append((args.folder, args.lmdb_path))
    else:
        parser.error('give FOLDER OUT.lmdb, or -opt OPTIONS.yml')
    existing = [out for _, out in jobs if osp.exists(out)]
    if existing and not args.skip_existing:
        for out in existing:
            print(f'{PROG}: error: {out} already exists; refusing to overwrite (use --skip-existing with -opt, or '
                  'delete it yourself).', file=sys.stderr)
        return USAGE
    for folder, out in jobs:
        if osp.exists(out):
            print(f'skip {out} (exists)')
            continue
        try:
            make_lmdb(folder, out, args.compress_level)
        except lmdb.Error as e:  # LMDB reports a full disk as an I/O error: say what it most likely is
            print(f'{PROG}: error: {lmdb_failure(e, out)}', file=sys.stderr)
            return USAGE
        except (DataLayoutError, FileExistsError, ValueError, OSError) as e:
            print(f'{PROG}: error: {e}', file=sys.stderr)
            return USAGE
        except KeyboardInterrupt:  # the build cleans up its temporary folder on the way out
            print(f'\n{PROG}: interrupted', file=sys.stderr)
            return INTERRUPTED
    if args.opt:
        print('Now set io_backend: {type: lmdb} and point dataroot_lq / dataroot_gt to the .lmdb folders.')
    return 0



if __name__ == '__main__':
    sys.exit(main())
