"""ndrsr-export: write an NDR-Restore model as ONNX or safetensors, for apps outside PyTorch training code.

    ndrsr-export [--model NAME | --weights FILE] --format onnx|safetensors -o OUT
    python -m ndrsr.cli.export ...

Without --model or --weights the default named model is exported.
onnx: NDR-Restore's forward (float32; dynamic batch, height and width; opset
20; --exporter torchscript or dynamo), checked with onnx's checker, then compared with PyTorch through
onnxruntime on several sizes, odd ones included (max difference at most 1e-4,
else nothing is written). safetensors: NDR-Restore's weights, NDR-Degrad's
beside them when the model has them (for ndrsr-degrade), and both networks'
options in the file's metadata; read back and compared with the source
network. Either file runs with ndrsr-restore --weights OUT; docs/inference.md
("Deploying") says which apps read which format.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from ndrsr.cli.arguments import add_model_arguments, model_weights
from ndrsr.cli.errors import WEIGHTS_FLAGS, UsageError, cli_main

EXPORT_FLAGS = {**WEIGHTS_FLAGS, 'format': '--format', 'output': '-o/--output', 'exporter': '--exporter'}


def build_parser() -> argparse.ArgumentParser:
    from ndrsr.lib.export import EXPORTERS, FORMATS, ONNX_OPSET
    parser = argparse.ArgumentParser(prog='ndrsr-export', description=__doc__.split('\n\n')[0],
                                     epilog='Examples: ndrsr-export --format onnx -o ndr_small.onnx (the default '
                                            'model); ndrsr-export --weights net_g.pth --format safetensors '
                                            '-o net.safetensors')
    add_model_arguments(parser, 'NDR-Restore weights to export: BasicSR checkpoint (net_degrad*.pth beside it is '
                                'exported too), ndrsr safetensors, or the released checkpoint')
    parser.add_argument('--opt', help='BasicSR options YAML with network_g / network_degrad (default: '
                                      'network_options.yml next to the weights, else sizes from the weights)')
    parser.add_argument('--format', required=True, choices=list(FORMATS), help='what to write')
    parser.add_argument('-o', '--output', required=True, help='the file to write (.onnx / .safetensors)')
    parser.add_argument('--opset', type=int, default=ONNX_OPSET, help=f'ONNX opset (default {ONNX_OPSET})')
    parser.add_argument('--exporter', choices=list(EXPORTERS), default='torchscript',
                        help="PyTorch's ONNX exporter: torchscript (tracing; seconds) or dynamo (torch.export; "
                             'needs onnxscript, minutes on a small CPU); the same graph up to 1e-6 (default '
                             'torchscript)')
    parser.add_argument('--overwrite', action='store_true', help='replace OUT if it exists')
    parser.add_argument('-q', '--quiet', action='store_true', help='no download progress')
    return parser


def _check_output(args) -> None:
    from ndrsr.lib.onnx_runtime import EXTENSION as ONNX_EXT
    from ndrsr.lib.safetensors_file import EXTENSION as ST_EXT
    wanted = {'onnx': ONNX_EXT, 'safetensors': ST_EXT}[args.format]
    if not args.output.lower().endswith(wanted):
        raise UsageError(f'the output {args.output} of --format {args.format} must end in {wanted} (ndrsr-restore '
                         f'tells the formats apart by the extension).')
    if os.path.exists(args.output) and not args.overwrite:
        raise UsageError(f'{args.output} exists; add --overwrite to replace it, or choose another -o.')
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise UsageError(f'the folder of {args.output} does not exist; create it first.')


def _export_onnx(spec, args) -> str:
    from ndrsr.lib.export import PARITY_TOLERANCE, export_onnx, onnx_parity
    net = spec.restore_network()
    export_onnx(net, args.output, opset=args.opset, source=spec.source, options=spec.restore_options,
                exporter=args.exporter)
    diffs = onnx_parity(net, args.output)
    worst = max(diffs.values())
    if worst > PARITY_TOLERANCE:
        os.remove(args.output)
        raise RuntimeError(f'the ONNX export differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE:g}) on '
                           f'{diffs}; nothing was written. Please report this.')
    sizes = ', '.join(f'{h}x{w}' for h, w in diffs)
    return f'onnxruntime vs PyTorch on {sizes}: max difference {worst:.1e}'


def _export_safetensors(spec, args) -> str:
    import torch

    from ndrsr.lib.export import export_safetensors
    from ndrsr.lib.weights import load_restore_network
    export_safetensors(spec, args.output)
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((load_restore_network(args.output)(x) - spec.restore_network()(x)).abs().max())
    if diff != 0:
        os.remove(args.output)
        raise RuntimeError(f'the safetensors file does not rebuild the network (difference {diff:.2e}); nothing '
                           f'was written. Please report this.')
    degrad = 'and NDR-Degrad' if spec.degrad is not None else '(no NDR-Degrad weights were found beside it)'
    return f'NDR-Restore {degrad}; read back: same output'


def run(args) -> int:
    from ndrsr.lib.export import network_spec
    from ndrsr.lib.onnx_runtime import is_onnx_path

    _check_output(args)
    weights = model_weights(args)
    if is_onnx_path(weights):
        raise UsageError(f'{weights} is already ONNX; export from the PyTorch weights (.pth or .safetensors).')
    start = time.time()
    spec = network_spec(weights, args.opt)
    check = _export_onnx(spec, args) if args.format == 'onnx' else _export_safetensors(spec, args)
    size = os.path.getsize(args.output) / 2**20
    print(f'wrote {args.output} ({args.format}, {size:.1f} MiB) from {weights} in {time.time() - start:.1f} s; '
          f'{check}.')
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point of ``ndrsr-export``."""
    return cli_main('ndrsr-export', build_parser(), run, argv, EXPORT_FLAGS)


if __name__ == '__main__':
    sys.exit(main())
