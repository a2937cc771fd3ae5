"""Tiling: run a network on an image of any size, tile by tile, on any device and precision.

The command-line tools (``ndrsr-restore``, ``ndrsr-degrade``), the tests and
the model's tiled validation (``NDRModel.test`` with ``val.tile``) run networks
through this module, so an image is restored the same way everywhere.

Device and precision (:func:`resolve_device`, :func:`resolve_precision`)
    'auto' picks CUDA when available; reduced precision (fp16 / bf16) runs
    under ``torch.autocast`` with float32 weights, on CUDA only.
Tiling (:func:`tile_forward`, :func:`tile_recognise`, :func:`tile_degrade`)
    The image is reflect-padded to the multiple the network declares
    (``net.input_needs``, :mod:`ndrsr.archs.descriptor`) exactly as the
    network pads it, cut into ``tile`` x ``tile`` tiles
    (multiples of the stride) that overlap by ``overlap`` pixels, each tile is
    run on the device (as :func:`~ndrsr.archs.fast_path.prepare_for_inference`
    of the network), and the results are blended on the CPU: in each overlap
    the outer quarter next to a tile's border is discarded and the middle half
    is cross-faded with raised-cosine ramps (a partition of unity; see
    :func:`ramp_window`). Memory is bounded by the tile size; the full-size
    output lives in CPU memory. A network that declares
    ``input_needs.tiling_changes_output`` (NDR-Restore and NDR-Degrad: transposed
    attention over all pixels, the CP modulation's pooling) gives tiled output
    close to, not equal to, the whole-image output; docs/inference.md gives
    measured differences.

Shapes: images are (B, 3, H, W) float tensors in [0, 1]; ``s`` is the
network's ``upscale``; Hp = ceil(H / stride) * stride is the padded height.
Errors are ValueErrors with an ``argument`` attribute naming the parameter
(``device``, ``precision``) that the command-line tools turn into their flag.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ndrsr.archs.descriptor import UNDECLARED, input_needs_of
from ndrsr.archs.fast_path import prepare_for_inference
from ndrsr.archs.padding import pad_to_multiple
from ndrsr.lib.cpu_features import cpu_bf16_support

STRIDE = UNDECLARED.multiple_of  # the padding multiple of a network that does not declare its input_needs
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
# tile 0 (auto): the whole image when it fits, else DEFAULT_TILE tiles. On the CPU "fits" means at most
# CPU_WHOLE_PIXELS padded pixels; on CUDA, BYTES_PER_PIXEL (halved in fp16/bf16) times the pixels must be
# under half the free memory. Both follow from the measured peak memory of a released-size forward
# (BENCHMARKS.md, "Restoration CLI").
CPU_WHOLE_PIXELS = 768 * 512
BYTES_PER_PIXEL = 7 * 1024
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')
# what 'auto' means on the CPU: bf16 did not pay off enough on the default model (BENCHMARKS.md, "Deployment paths")
CPU_AUTO_PRECISION = 'fp32'


def argument_error(message: str, argument: str) -> ValueError:
    err = ValueError(message)
    err.argument = argument
    return err


# ----------------------------------------------------------------------------- device and precision
def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise argument_error(f'device must be auto, cpu or cuda[:N], got {device!r}', 'device') from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise argument_error(f'device {device!r}: CUDA is not available on this machine (torch {torch.__version__}, '
                              f'built with CUDA {torch.version.cuda}). Use the CPU or auto.', 'device')
    if dev.type not in ('cpu', 'cuda'):
        raise argument_error(f'device must be auto, cpu or cuda[:N], got {device!r}', 'device')
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype for ``precision`` on ``device``.

    'auto' is float32 on the CPU (:data:`CPU_AUTO_PRECISION`) and float16 on
    CUDA; 'fp16' is refused on the CPU, 'bf16' runs on the CPU only where it has
    native bf16 instructions (:func:`ndrsr.lib.cpu_features.cpu_bf16_support`;
    refused with the reason elsewhere). Reduced precision runs under
    ``torch.autocast`` with float32 weights, so layer norms and softmax stay in
    float32 and the output is returned as float32.
    """
    if precision not in PRECISIONS:
        raise argument_error(f'precision must be one of {PRECISIONS}, got {precision!r}', 'precision')
    if precision == 'auto':
        precision = 'fp16' if device.type == 'cuda' else CPU_AUTO_PRECISION
    dtype = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    if dtype == torch.float16 and device.type != 'cuda':
        raise argument_error('precision fp16 needs a CUDA device; on the CPU use fp32 (or auto), or bf16 where the '
                             'CPU has it.', 'precision')
    if dtype == torch.bfloat16 and device.type == 'cpu':
        supported, reason = cpu_bf16_support()
        if not supported:
            raise argument_error(f'precision bf16 on the CPU: {reason}. Use fp32 (or auto).', 'precision')
    return dtype


def _autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


# ----------------------------------------------------------------------------- tiling
def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least ``overlap`` overlap.

    The last tile is flush with the end (it may overlap its neighbour by more).
    ``size``, ``tile`` and ``overlap`` are multiples of the stride, so every start is too.
    """
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def ramp_window(length: int, overlap: int, left: bool, right: bool) -> torch.Tensor:
    """1-D blending weights (length,) of a tile whose neighbours overlap it by ``overlap`` on the given sides.

    On such a side the first ``overlap // 4`` pixels get weight 0 (the tile's
    own border, computed with the least context: with no global operations
    the result is exact when the receptive radius is at most this margin),
    then a raised-cosine ramp 0.5 - 0.5 cos(pi (i + 0.5) / r) over the middle
    r = overlap - 2 * margin pixels, then 1. Two neighbours overlapping by
    exactly ``overlap`` get weights summing to 1 everywhere.
    """
    w = torch.ones(length)
    overlap = min(overlap, length // 2)
    if overlap <= 0:
        return w
    margin = overlap // 4
    ramp = overlap - 2 * margin
    up = torch.cat([torch.zeros(margin), 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp) + 0.5) / ramp)])
    if left:
        w[:up.numel()] = up
    if right:
        w[length - up.numel():] = up.flip(0)
    return w


@dataclass(frozen=True)
class TileGrid:
    """Tiles of a padded (Hp, Wp) image; all values multiples of the network's stride.

    ``boxes()`` yields (y0, y1, x0, x1) in padded input pixels; ``window(box,
    scale)`` is the (1, 1, h*scale, w*scale) blending weight of a tile for an
    output at ``scale`` times the input resolution (s for restored images,
    1/2^(i-1) for the level-i degradation maps).
    """
    height: int
    width: int
    tile: int
    overlap: int

    def boxes(self) -> List[Tuple[int, int, int, int]]:
        ys = tile_starts(self.height, self.tile, self.overlap)
        xs = tile_starts(self.width, self.tile, self.overlap)
        return [(y, min(y + self.tile, self.height), x, min(x + self.tile, self.width)) for y in ys for x in xs]

    def window(self, box: Tuple[int, int, int, int], scale: float = 1.0) -> torch.Tensor:
        y0, y1, x0, x1 = box
        overlap = int(round(self.overlap * scale))
        wy = ramp_window(int(round((y1 - y0) * scale)), overlap, y0 > 0, y1 < self.height)
        wx = ramp_window(int(round((x1 - x0) * scale)), overlap, x0 > 0, x1 < self.width)
        return (wy[:, None] * wx[None, :])[None, None]


class BlendAccumulator:
    """Weighted sum of tile outputs on the CPU (float32) for an output at ``scale`` x the padded input.

    add(box, tile_output (B, C, h*scale, w*scale)); result() -> (B, C, Hp*scale, Wp*scale).
    """

    def __init__(self, grid: TileGrid, batch: int, channels: int, scale: float = 1.0):
        self.grid, self.scale = grid, scale
        h, w = int(round(grid.height * scale)), int(round(grid.width * scale))
        self.total = torch.zeros(batch, channels, h, w)
        self.weight = torch.zeros(1, 1, h, w)

    def add(self, box: Tuple[int, int, int, int], out: torch.Tensor) -> None:
        s = self.scale
        y0, x0 = int(round(box[0] * s)), int(round(box[2] * s))
        win = self.grid.window(box, s)
        h, w = win.shape[-2:]
        if out.shape[-2:] != (h, w):
            raise RuntimeError(f'tile output {tuple(out.shape)} does not have the expected size {(h, w)}')
        self.total[..., y0:y0 + h, x0:x0 + w] += out.float().cpu() * win
        self.weight[..., y0:y0 + h, x0:x0 + w] += win

    def result(self) -> torch.Tensor:
        return self.total / self.weight


def fits_whole(pixels: int, device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether tile 0 (auto) runs an image of ``pixels`` padded pixels in one piece on ``device``."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        per_pixel = BYTES_PER_PIXEL // (1 if dtype == torch.float32 else 2)
        return pixels * per_pixel <= free // 2
    return pixels <= CPU_WHOLE_PIXELS


def network_stride(net: nn.Module) -> int:
    """What ``net`` pads its input to a multiple of: ``net.input_needs.multiple_of`` (:data:`STRIDE` if it does not
    declare its needs, :func:`ndrsr.archs.descriptor.input_needs_of`)."""
    return input_needs_of(net).multiple_of


def plan_tiles(height: int, width: int, tile: int, overlap: int, device: torch.device | str = 'cpu',
               dtype: torch.dtype = torch.float32, stride: int = STRIDE) -> TileGrid:
    """The tiling of an (H, W) image: ``tile`` > 0 fixed size, 0 = auto (see :func:`fits_whole`).

    ``tile`` is rounded up and ``overlap`` to the nearest multiple of ``stride``;
    overlap is limited to tile / 2 so that tiles advance. A tile at least as
    large as the image means one whole-image tile.
    """
    hp, wp = -(-height // stride) * stride, -(-width // stride) * stride
    if tile < 0 or overlap < 0:
        raise ValueError(f'tile and overlap must be >= 0, got tile={tile}, overlap={overlap}')
    if tile == 0:
        tile = max(hp, wp) if fits_whole(hp * wp, torch.device(device), dtype) else DEFAULT_TILE
    tile, overlap = effective_tiling(tile, overlap, stride)
    return TileGrid(hp, wp, tile, overlap)


def effective_tiling(tile: int, overlap: int, stride: int = STRIDE) -> Tuple[int, int]:
    """(tile, overlap) as used for a fixed ``tile`` > 0: the tile rounded up to a multiple of ``stride``, the
    overlap rounded to the nearest multiple and limited to half the tile (so that tiles advance)."""
    tile = -(-tile // stride) * stride
    return tile, min(int(round(overlap / stride)) * stride, (tile // 2) // stride * stride)


def _run_tiles(grid: TileGrid, fn: Callable[[Tuple[int, int, int, int]], Sequence[torch.Tensor]],
               scales: Sequence[float], progress: Optional[Callable[[int, int], None]]) -> List[torch.Tensor]:
    boxes = grid.boxes()
    accs: Optional[List[BlendAccumulator]] = None
    for i, box in enumerate(boxes):
        outs = fn(box)
        if accs is None:
            accs = [BlendAccumulator(grid, o.shape[0], o.shape[1], s) for o, s in zip(outs, scales)]
        for acc, out in zip(accs, outs):
            acc.add(box, out)
        if progress is not None:
            progress(i + 1, len(boxes))
    return [acc.result() for acc in accs]


def tile_forward(net: nn.Module, img: torch.Tensor, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                 scale: Optional[int] = None, precision: str = 'fp32',
                 progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Restore ``img`` (B, 3, H, W) with ``net`` tile by tile -> (B, 3, sH, sW) float32 on ``img``'s device.

    Args:
        net: NDRRestore, or any module mapping (B, 3, h, w) -> (B, C, s*h, s*w);
            it is run as ``prepare_for_inference(net)`` on its own device.
        img: input in [0, 1], on any device (tiles are moved to the network's; the
            blending happens in CPU memory, so a CPU ``img`` keeps GPU memory to one tile).
        tile: tile size in pixels (rounded up to a multiple of the network's
            stride); 0 = auto (whole image when it fits, see :func:`plan_tiles`).
        overlap: overlap between neighbouring tiles (rounded to a multiple of the stride).
        scale: output/input size ratio; default ``net.upscale`` (or 1).
        precision: 'auto' | 'fp32' | 'fp16' | 'bf16' (see :func:`resolve_precision`).
        progress: called as ``progress(done_tiles, total_tiles)``.

    With one tile covering the image this is exactly ``net(img)``. An output with
    NaN or infinite values (damaged weights, a diverged network) raises
    :class:`ndrsr.lib.integrity.NonFiniteError` instead of being returned.
    """
    device = _module_device(net)
    dtype = resolve_precision(precision, device)
    s = int(scale if scale is not None else getattr(net, 'upscale', 1))
    stride = network_stride(net)
    h, w = img.shape[-2:]
    grid = plan_tiles(h, w, tile, overlap, device, dtype, stride)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        if len(grid.boxes()) == 1:
            with _autocast(device, dtype):
                out = fast(img.to(device)).float()
            if progress is not None:
                progress(1, 1)
            return _finite_output(out).to(img.device)
        padded = pad_to_multiple(img, stride)

        def run(box):
            y0, y1, x0, x1 = box
            with _autocast(device, dtype):
                return [fast(padded[..., y0:y1, x0:x1].to(device))]

        out, = _run_tiles(grid, run, [s], progress)
    return _finite_output(out[..., :h * s, :w * s]).to(img.device)


def _finite_output(out: torch.Tensor) -> torch.Tensor:
    """``out``, unless it has NaN or infinite values (NonFiniteError: they would be written as black or white)."""
    from ndrsr.lib.integrity import check_finite
    check_finite(out, "the network's output")
    return out


def tile_recognise(net: nn.Module, img: torch.Tensor, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                   precision: str = 'fp32', progress: Optional[Callable[[int, int], None]] = None
                   ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """NDRRestore's recognised degradations of ``img`` (B, 3, H, W), tile by tile.

    Returns ([U1, U2, U3], [S1, S2, S3]) on the CPU, float32, at the padded
    resolution Hp / 2^(i-1) (what NDRDegrad expects): U_i (B, Q, .., ..),
    S_i (B, N, .., ..) the per-pixel affinities over the N atoms (blended
    affinities are still distributions: they sum to 1 over N). With one tile
    this is ``net.recognise(img)``.
    """
    device = _module_device(net)
    dtype = resolve_precision(precision, device)
    stride = network_stride(net)
    h, w = img.shape[-2:]
    grid = plan_tiles(h, w, tile, overlap, device, dtype, stride)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        recognise = getattr(fast, 'recognise', None) or net.recognise
        padded = pad_to_multiple(img, stride)

        def run(box):
            y0, y1, x0, x1 = box
            with _autocast(device, dtype):
                us, ss = recognise(padded[..., y0:y1, x0:x1].to(device))
            return [t.float() for t in list(us) + list(ss)]

        outs = _run_tiles(grid, run, [1.0, 0.5, 0.25] * 2, progress)
    return outs[:3], outs[3:]


def level_sizes(height: int, width: int, stride: int = STRIDE) -> List[Tuple[int, int]]:
    """Padded sizes (Hp / 2^(i-1), Wp / 2^(i-1)) of the three encoder levels for an (H, W) image."""
    hp, wp = -(-height // stride) * stride, -(-width // stride) * stride
    return [(hp >> i, wp >> i) for i in range(3)]


def tile_degrade(net: nn.Module, clean: torch.Tensor, degradations: Sequence[torch.Tensor], tile: int = 0,
                 overlap: int = DEFAULT_OVERLAP, precision: str = 'fp32',
                 progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """NDRDegrad(clean, U's) tile by tile -> degraded (B, 3, H, W) float32 on the CPU.

    ``clean`` is (B, 3, sH, sW) and the U_i are at the padded level sizes of
    (H, W) (use :func:`fit_degradations` first for another image's U's). An output with NaN or infinite
    values raises :class:`ndrsr.lib.integrity.NonFiniteError` instead of being returned.
    """
    device = _module_device(net)
    dtype = resolve_precision(precision, device)
    s = int(getattr(net, 'upscale', 1))
    stride = network_stride(net)
    h, w = clean.shape[-2] // s, clean.shape[-1] // s
    expected = level_sizes(h, w, stride)
    for i, (u, size) in enumerate(zip(degradations, expected)):
        if tuple(u.shape[-2:]) != size:
            raise ValueError(f'U{i + 1} is {tuple(u.shape[-2:])}, the clean image needs {size}; '
                             f'use fit_degradations() first')
    grid = plan_tiles(h, w, tile, overlap, device, dtype, stride)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        padded = pad_to_multiple(clean, stride * s)

        def run(box):
            y0, y1, x0, x1 = box
            us = [u[..., y0 >> i:y1 >> i, x0 >> i:x1 >> i].to(device) for i, u in enumerate(degradations)]
            with _autocast(device, dtype):
                return [fast(padded[..., y0 * s:y1 * s, x0 * s:x1 * s].to(device), us)]

        out, = _run_tiles(grid, run, [1.0], progress)
    return _finite_output(out[..., :h, :w])


def _module_device(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    return torch.device('cpu')


__all__ = [
    'resolve_device', 'resolve_precision', 'TileGrid', 'BlendAccumulator', 'plan_tiles', 'tile_starts', 'ramp_window',
    'tile_forward', 'tile_recognise', 'tile_degrade', 'level_sizes', 'fits_whole', 'network_stride',
    'DEFAULT_TILE', 'DEFAULT_OVERLAP', 'STRIDE', 'PRECISIONS',
]
