"""ndrsr-app: start the local web page (restore, what it sees, transfer).

    ndrsr-app [--host 127.0.0.1] [--port 7860] [--device auto]

The page listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, and stays up until
Ctrl-C. It needs the optional extra: ``pip install 'ndrsr[app]'`` (Gradio). See docs/app.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Optional, Sequence

INTERRUPTED = 130  # the shell's status for a process stopped by Ctrl-C (128 + SIGINT), as the other tools
MAX_FILE_SIZE = '200mb'  # larger uploads are refused by the server before they reach the reader


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ndrsr-app', description=__doc__.split('\n\n')[0],
                                     epilog='Then open the address it prints in a browser. docs/app.md describes '
                                            'the tabs.')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens the page '
                             'to the network, without any login)')
    parser.add_argument('--port', type=int, default=7860, help='port (default 7860)')
    parser.add_argument('--device', default='auto', help="the page's default device: auto, cpu, cuda[:N]")
    parser.add_argument('--max-megapixels', type=float, default=100.0,
                        help='larger photos are refused from their header, before decoding (default 100; 0 = none)')
    parser.add_argument('--max-file-size', default=MAX_FILE_SIZE,
                        help=f'largest upload the server accepts (default {MAX_FILE_SIZE})')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-app``."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # a local page: no usage reports to Gradio
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("ndrsr-app: error: the page needs Gradio, the optional extra of ndrsr: pip install 'ndrsr[app]'",
              file=sys.stderr)
        return 2
    import ndrsr  # noqa: F401  (registries before the networks are built)
    from ndrsr.app.page import build_page
    from ndrsr.glue.allocator import retain_freed_memory

    retain_freed_memory()
    out_root = tempfile.mkdtemp(prefix='ndrsr-app-')
    try:
        page = build_page(out_root, device=args.device, max_pixels=int(args.max_megapixels * 1e6))
        page.queue(default_concurrency_limit=1, max_size=32)  # one job at a time: a CPU has no room for two
        page.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size,
                    show_error=False, footer_links=[])
    except KeyboardInterrupt:
        print('\nndrsr-app: interrupted', file=sys.stderr)
        return INTERRUPTED
    except OSError as err:  # the port is taken, the address cannot be used
        print(f'ndrsr-app: error: {err} (command-line options: --host, --port)', file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(out_root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
