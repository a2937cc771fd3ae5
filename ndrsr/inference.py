"""Inference in one place: weights, network options, device, precision and tiling.

The command-line tools (``ndrsr-restore``, ``ndrsr-degrade``), the tests and
the model's validation (``NDRModel.test``) all run networks through this
module, so an image is restored the same way everywhere.

Weights (:func:`load_restore_network`, :func:`load_degrad_network`)
    A BasicSR checkpoint ``{'params_ema': sd}`` / ``{'params': sd}``
    (``params_ema`` preferred), a plain state dict, or the released
    NDR-Restore checkpoint (converted on the fly by :mod:`ndrsr.convert`).
    Always loaded with ``weights_only=True``. The network options come from,
    in order: ``--opt`` (a BasicSR options YAML, its ``network_g`` /
    ``network_degrad``), ``network_options.yml`` next to the weights, the
    options YAML BasicSR copies into the experiment folder (``../*.yml`` of
    ``experiments/<name>/models/``), the released checkpoint's own shapes,
    and finally the shapes of the state dict itself (:func:`infer_restore_options`).

Tiling (:func:`tile_forward`, :func:`tile_recognise`, :func:`tile_degrade`)
    The image is reflect-padded to a multiple of 8 exactly as the network pads
    it, cut into ``tile`` x ``tile`` tiles (multiples of 8) that overlap by
    ``overlap`` pixels, each tile is run on the device, and the results are
    blended on the CPU: in each overlap the outer quarter next to a tile's
    border is discarded and the middle half is cross-faded with raised-cosine
    ramps (a partition of unity; see :func:`ramp_window`). Memory is
    bounded by the tile size; the full-size output lives in CPU memory.
    NDR-Restore has global operations (transposed attention over all pixels,
    the CP modulation's pooling), so tiled output is close to, not equal to,
    the whole-image output; see docs/inference.md for measured differences.

Shapes: images are (B, 3, H, W) float tensors in [0, 1]; ``s`` is the
network's ``upscale``; Hp = ceil(H / 8) * 8 is the padded height.
"""
from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, field
from os import path as osp
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ndrsr.archs.fast_path import prepare_for_inference
from ndrsr.archs.padding import pad_to_multiple

STRIDE = 8  # NDR-Restore / NDR-Degrad pad their input to a multiple of 8
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
# --tile 0 (auto): the whole image when it fits, else DEFAULT_TILE tiles. On the CPU "fits" means at most
# CPU_WHOLE_PIXELS padded pixels: the released-size network needs about 7 KB per pixel in float32
# (bench/bench_restore.py: a 512x512 tile peaks 1.8 GB above the baseline), so 768x512 stays near 4 GB in all.
# On CUDA: BYTES_PER_PIXEL (halved in fp16/bf16) times the pixels must be under half the free memory.
CPU_WHOLE_PIXELS = 768 * 512
BYTES_PER_PIXEL = 7 * 1024
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')

RELEASED_PREFIXES = ('restoration_net.', 'degradation_net.', 'module.restoration_net.', 'module.degradation_net.')


class WeightsError(ValueError):
    """Weights that cannot be used: the message names the file and the fix."""


# ----------------------------------------------------------------------------- device and precision
def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: CUDA is not available on this machine (torch {torch.__version__}, '
                         f'built with CUDA {torch.version.cuda}). Use --device cpu or auto.')
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f'--device must be auto, cpu or cuda[:N], got {device!r}')
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype for ``precision`` on ``device``.

    'auto' is float32 on the CPU and float16 on CUDA; 'fp16'/'bf16' are refused
    on the CPU (slow and pointless there). Reduced precision runs under
    ``torch.autocast`` with float32 weights, so layer norms and softmax stay in
    float32 and the output is returned as float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    dtype = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    if dtype != torch.float32 and device.type != 'cuda':
        raise ValueError(f'--precision {precision} needs a CUDA device; on the CPU use fp32 (or auto).')
    return dtype


def _autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


# ----------------------------------------------------------------------------- weights and options
@dataclass
class LoadedWeights:
    """What a weights file provides.

    restore / degrad: state dicts of NDRRestore / NDRDegrad (None if absent).
    options: ``{'network_g': {...}, 'network_degrad': {...}}`` known from the
        file itself (the released checkpoint), else empty.
    source: a description for messages, e.g. ``"x.pth [params_ema]"``.
    """
    restore: Optional[Dict[str, torch.Tensor]]
    degrad: Optional[Dict[str, torch.Tensor]]
    options: dict = field(default_factory=dict)
    source: str = ''


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def _strip_module(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {(k[7:] if k.startswith('module.') else k): v for k, v in sd.items()}


def _looks_released(obj) -> bool:
    """Whether a loaded checkpoint holds the released combined network (possibly nested one or two levels)."""
    from ndrsr.convert import NESTING_KEYS
    for _ in range(3):
        if not isinstance(obj, Mapping):
            return False
        if any(str(k).startswith(RELEASED_PREFIXES) for k in obj):
            return True
        obj = next((obj[k] for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
    return False


def _which_network(sd: Mapping[str, torch.Tensor]) -> str:
    """'restore' or 'degrad' for a bare state dict (NDRDegrad's encoders are conv pairs)."""
    if any(k.startswith('encoder1.conv1.') for k in sd):
        return 'degrad'
    if any(k.startswith('encoder1.0.') for k in sd):
        return 'restore'
    raise WeightsError('unknown')


def read_weights(path: str) -> LoadedWeights:
    """Load ``path`` (weights_only=True) and sort out what it holds; see :class:`LoadedWeights`.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: not a checkpoint of NDR-Restore / NDR-Degrad.
    """
    from ndrsr.checkpoint import load_checkpoint
    from ndrsr.convert import convert_released

    obj = load_checkpoint(path)
    if _looks_released(obj):
        try:
            restore, degrad, options = convert_released(obj)
        except ValueError as err:
            raise WeightsError(f'{path}: looks like the released NDR-Restore checkpoint but cannot be converted: '
                               f'{err}') from None
        return LoadedWeights(restore, degrad, options, f'{path} [released, converted on the fly]')
    key = None
    if isinstance(obj, Mapping):
        for key in ('params_ema', 'params', 'state_dict'):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            key = None
    if not _is_state_dict(obj):
        raise WeightsError(f'{path}: not a network checkpoint (expected a BasicSR checkpoint with "params_ema" or '
                           f'"params", a state dict, or the released NDR-Restore .pth).')
    sd = _strip_module(obj)
    source = f'{path} [{key}]' if key else path
    try:
        kind = _which_network(sd)
    except WeightsError:
        raise WeightsError(f'{path}: the state dict is neither NDRRestore nor NDRDegrad (first keys: '
                           f'{list(sd)[:5]}).') from None
    if kind == 'restore':
        return LoadedWeights(sd, None, {}, source)
    return LoadedWeights(None, sd, {}, source)


def degrad_weights_next_to(restore_weights: str) -> Optional[str]:
    """The NDR-Degrad checkpoint saved beside an NDR-Restore one, if any.

    ``net_g_latest.pth`` -> ``net_degrad_latest.pth``, ``net_g_5000.pth`` ->
    ``net_degrad_5000.pth``, ``net_g.pth`` -> ``net_degrad.pth``.
    """
    folder, name = osp.split(restore_weights)
    if name.startswith('net_g'):
        candidate = osp.join(folder, 'net_degrad' + name[len('net_g'):])
        if osp.isfile(candidate):
            return candidate
    return None


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix):].split('.')[0] for k in sd if k.startswith(prefix)})


def infer_restore_options(sd: Mapping[str, torch.Tensor]) -> dict:
    """NDRRestore keyword arguments implied by the shapes of its state dict."""
    try:
        dim = sd['embed.weight'].shape[0]
        hidden = sd['encoder1.0.ffn.project_out.weight'].shape[1]
        opt = dict(
            dim=dim,
            num_blocks=[_count(sd, f'{n}.') for n in ('encoder1', 'encoder2', 'encoder3', 'latent')],
            num_refinement_blocks=_count(sd, 'refinement.'),
            heads=[sd[f'{n}.0.attn.temperature'].shape[0] for n in ('encoder1', 'encoder2', 'encoder3', 'latent')],
            ffn_expansion_factor=2.66 if int(dim * 2.66) == hidden else (hidden + 0.5) / dim)
        if 'ndr.atoms' in sd:
            opt.update(query_mode='ndr', ndr_atoms=sd['ndr.atoms'].shape[1], ndr_dim=sd['ndr.atoms'].shape[2],
                       query_dim=sd['query.0.project.weight'].shape[0])
        elif 'query.0.to_query.weight' in sd:
            opt.update(query_mode='no_ndr', ndr_dim=sd['query.0.to_query.weight'].shape[0],
                       query_dim=sd['query.0.project.weight'].shape[0])
        else:
            opt.update(query_mode='conv', query_dim=sd['query.0.conv.weight'].shape[0])
        opt.update(_infer_injection(sd))
        if 'upsampler.0.weight' in sd:
            opt['upscale'] = int(round(math.sqrt(sd['upsampler.0.weight'].shape[0] / (2 * dim))))
        return opt
    except KeyError as err:
        raise WeightsError(f'cannot infer the NDRRestore sizes from the state dict (key {err} missing); '
                           f'pass --opt with the training options') from None


def _infer_injection(sd: Mapping[str, torch.Tensor]) -> dict:
    if 'inject.0.cp_degradation.height_proj.weight' in sd:
        return dict(injection_mode='cp', cp_rank=sd['inject.0.cp_degradation.height_proj.weight'].shape[0])
    if 'inject.0.fuse.weight' in sd:
        return dict(injection_mode='concat')
    return dict(injection_mode='conv')


def infer_degrad_options(sd: Mapping[str, torch.Tensor]) -> dict:
    """NDRDegrad keyword arguments implied by the shapes of its state dict."""
    try:
        opt = dict(dim=sd['embed.weight'].shape[0],
                   upscale=int(round(math.sqrt(sd['embed.weight'].shape[1] / 3))),
                   ca_reduction=sd['refinement.conv1.weight'].shape[0] // sd['refinement.attention.squeeze.weight'].shape[0])
        opt.update(_infer_injection(sd))
        if 'inject.0.embed.weight' in sd:
            opt['query_dim'] = sd['inject.0.embed.weight'].shape[1]
        return opt
    except KeyError as err:
        raise WeightsError(f'cannot infer the NDRDegrad sizes from the state dict (key {err} missing); '
                           f'pass --opt with the training options') from None


def _yaml_section(path: str, section: str) -> Optional[dict]:
    import yaml
    with open(path) as f:
        data = yaml.safe_load(f)
    if isinstance(data, Mapping) and isinstance(data.get(section), Mapping):
        return dict(data[section])
    return None


def network_options(section: str, weights_path: str, opt_path: Optional[str] = None,
                    loaded: Optional[LoadedWeights] = None) -> Tuple[dict, str]:
    """The options of ``section`` ('network_g' or 'network_degrad') for ``weights_path``.

    Returns (options without 'type', where they came from). Order: ``opt_path``,
    ``network_options.yml`` next to the weights, the BasicSR experiment's
    options YAML (``<weights dir>/../*.yml``), the released checkpoint's
    shapes, the state dict's shapes.
    """
    if opt_path:
        if not osp.isfile(opt_path):
            raise FileNotFoundError(f'--opt {opt_path}: no such file')
        opt = _yaml_section(opt_path, section)
        if opt is None:
            raise WeightsError(f'--opt {opt_path} has no {section!r} section; give the options YAML the '
                               f'network was trained with.')
        return opt, opt_path
    folder = osp.dirname(osp.abspath(weights_path))
    candidates = [osp.join(folder, 'network_options.yml')]
    if osp.basename(folder) == 'models':  # experiments/<name>/models/net_g_*.pth
        candidates += sorted(glob.glob(osp.join(osp.dirname(folder), '*.yml')))
    for cand in candidates:
        if osp.isfile(cand):
            opt = _yaml_section(cand, section)
            if opt is not None:
                return opt, cand
    if loaded is not None and section in loaded.options:
        return dict(loaded.options[section]), f'{weights_path} (released checkpoint shapes)'
    if loaded is not None:
        sd = loaded.restore if section == 'network_g' else loaded.degrad
        if sd is not None:
            infer = infer_restore_options if section == 'network_g' else infer_degrad_options
            return infer(sd), f'{weights_path} (inferred from the tensor shapes)'
    return {}, 'defaults (the released network size)'


def _build(net_cls: type, opt: dict, sd: Mapping[str, torch.Tensor], source: str, opt_source: str) -> nn.Module:
    opt = {k: v for k, v in opt.items() if k != 'type'}
    try:
        net = net_cls(**opt)
    except TypeError as err:
        raise WeightsError(f'the {net_cls.__name__} options from {opt_source} are not valid: {err}') from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f'{len(missing)} missing keys (e.g. {missing[:3]})')
        if unexpected:
            details.append(f'{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})')
        if wrong:
            details.append('shape mismatch: ' + ', '.join(f'{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}'
                                                           for k in wrong[:3]))
        raise WeightsError(f'{source} does not fit {net_cls.__name__}({opt}) (options from {opt_source}): '
                           + '; '.join(details) + '. Pass --opt with the options the network was trained with.')
    net.load_state_dict(sd, strict=True)
    return net


def load_restore_network(weights: str, opt_path: Optional[str] = None, device: str | torch.device = 'cpu',
                         upscale: Optional[int] = None) -> nn.Module:
    """Build NDRRestore from ``weights`` and return it in eval mode on ``device``.

    Args:
        weights: BasicSR checkpoint (params_ema preferred), plain state dict or
            the released checkpoint.
        opt_path: optional BasicSR options YAML (its ``network_g``).
        device: where to put the network.
        upscale: if given, the network must have this ``upscale`` (a clear
            error otherwise).

    The returned module is the plain network; wrap it with
    :func:`prepare_for_inference` under ``torch.inference_mode()`` to run it
    (the functions of this module do that).
    """
    from ndrsr.archs import NDRRestore

    loaded = read_weights(weights)
    if loaded.restore is None:
        raise WeightsError(f'{weights} holds NDR-Degrad weights; --weights needs the NDR-Restore checkpoint '
                           f'(net_g_*.pth).')
    opt, opt_source = network_options('network_g', weights, opt_path, loaded)
    net = _build(NDRRestore, opt, loaded.restore, loaded.source, opt_source)
    if upscale is not None and int(upscale) != net.upscale:
        raise WeightsError(f'--upscale {upscale}: the network in {weights} restores at upscale {net.upscale}. '
                           f'Use weights trained for {upscale}x, or leave --upscale out.')
    return net.eval().to(device)


def load_degrad_network(weights: str, opt_path: Optional[str] = None,
                        device: str | torch.device = 'cpu') -> nn.Module:
    """Build NDRDegrad and return it in eval mode on ``device``.

    ``weights`` may be the NDR-Degrad checkpoint itself, the released
    checkpoint (both networks inside), or the NDR-Restore checkpoint
    ``net_g*.pth`` with its ``net_degrad*.pth`` beside it.
    """
    from ndrsr.archs import NDRDegrad

    loaded = read_weights(weights)
    path = weights
    if loaded.degrad is None:
        sibling = degrad_weights_next_to(weights)
        if sibling is None:
            raise WeightsError(f'{weights} holds no NDR-Degrad weights and no net_degrad*.pth lies beside it. '
                               f'Pass --degrad-weights net_degrad_*.pth (saved with the training run) or the '
                               f'released checkpoint.')
        path, loaded = sibling, read_weights(sibling)
        if loaded.degrad is None:
            raise WeightsError(f'{sibling} does not hold NDR-Degrad weights.')
    opt, opt_source = network_options('network_degrad', path, opt_path, loaded)
    return _build(NDRDegrad, opt, loaded.degrad, loaded.source, opt_source).eval().to(device)


# ----------------------------------------------------------------------------- tiling
def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least ``overlap`` overlap.

    The last tile is flush with the end (it may overlap its neighbour by more).
    ``size``, ``tile`` and ``overlap`` are multiples of 8, so every start is too.
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
    """Tiles of a padded (Hp, Wp) image; all values multiples of 8.

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
    """Whether --tile 0 (auto) runs an image of ``pixels`` padded pixels in one piece on ``device``."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        per_pixel = BYTES_PER_PIXEL // (1 if dtype == torch.float32 else 2)
        return pixels * per_pixel <= free // 2
    return pixels <= CPU_WHOLE_PIXELS


def plan_tiles(height: int, width: int, tile: int, overlap: int, device: torch.device | str = 'cpu',
               dtype: torch.dtype = torch.float32) -> TileGrid:
    """The tiling of an (H, W) image: ``tile`` > 0 fixed size, 0 = auto (see :func:`fits_whole`).

    ``tile`` is rounded up and ``overlap`` to the nearest multiple of 8;
    overlap is limited to tile / 2 so that tiles advance. A tile at least as
    large as the image means one whole-image tile.
    """
    hp, wp = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    if tile < 0 or overlap < 0:
        raise ValueError(f'tile and overlap must be >= 0, got tile={tile}, overlap={overlap}')
    if tile == 0:
        tile = max(hp, wp) if fits_whole(hp * wp, torch.device(device), dtype) else DEFAULT_TILE
    tile = -(-tile // STRIDE) * STRIDE
    overlap = min(int(round(overlap / STRIDE)) * STRIDE, (tile // 2) // STRIDE * STRIDE)
    return TileGrid(hp, wp, tile, overlap)


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
        tile: tile size in pixels (rounded up to a multiple of 8); 0 = auto
            (whole image when it fits, see :func:`plan_tiles`).
        overlap: overlap between neighbouring tiles (multiple of 8).
        scale: output/input size ratio; default ``net.upscale`` (or 1).
        precision: 'auto' | 'fp32' | 'fp16' | 'bf16' (see :func:`resolve_precision`).
        progress: called as ``progress(done_tiles, total_tiles)``.

    With one tile covering the image this is exactly ``net(img)``.
    """
    device = _module_device(net)
    dtype = resolve_precision(precision, device)
    s = int(scale if scale is not None else getattr(net, 'upscale', 1))
    h, w = img.shape[-2:]
    grid = plan_tiles(h, w, tile, overlap, device, dtype)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        if len(grid.boxes()) == 1:
            with _autocast(device, dtype):
                out = fast(img.to(device)).float()
            if progress is not None:
                progress(1, 1)
            return out.to(img.device)
        padded = pad_to_multiple(img, STRIDE)

        def run(box):
            y0, y1, x0, x1 = box
            with _autocast(device, dtype):
                return [fast(padded[..., y0:y1, x0:x1].to(device))]

        out, = _run_tiles(grid, run, [s], progress)
    return out[..., :h * s, :w * s].to(img.device)


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
    h, w = img.shape[-2:]
    grid = plan_tiles(h, w, tile, overlap, device, dtype)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        recognise = getattr(fast, 'recognise', None) or net.recognise
        padded = pad_to_multiple(img, STRIDE)

        def run(box):
            y0, y1, x0, x1 = box
            with _autocast(device, dtype):
                us, ss = recognise(padded[..., y0:y1, x0:x1].to(device))
            return [t.float() for t in list(us) + list(ss)]

        outs = _run_tiles(grid, run, [1.0, 0.5, 0.25] * 2, progress)
    return outs[:3], outs[3:]


def level_sizes(height: int, width: int) -> List[Tuple[int, int]]:
    """Padded sizes (Hp / 2^(i-1), Wp / 2^(i-1)) of the three encoder levels for an (H, W) image."""
    hp, wp = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    return [(hp >> i, wp >> i) for i in range(3)]


def fit_degradations(us: Sequence[torch.Tensor], height: int, width: int, mode: str = 'resize') -> List[torch.Tensor]:
    """Fit recognised degradations [U1..U3] to an image of another size (H, W).

    'resize': bilinear interpolation of each U_i to the target's level size
    (the spatial layout is stretched: right for spatially uniform noise/haze,
    and for rain the streaks are stretched with the image).
    'mirror': the U_i are mirror-tiled (and cropped) to the target size, so
    the degradation keeps its scale (streak length, grain size) on a larger
    image. Already matching sizes are returned unchanged.
    """
    if mode not in ('resize', 'mirror'):
        raise ValueError(f"fit mode must be 'resize' or 'mirror', got {mode!r}")
    out = []
    for u, size in zip(us, level_sizes(height, width)):
        if tuple(u.shape[-2:]) == size:
            out.append(u)
        elif mode == 'resize':
            out.append(F.interpolate(u, size=size, mode='bilinear', align_corners=False))
        else:
            out.append(_mirror_tile(u, size))
    return out


def _mirror_tile(u: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    for dim, target in ((-2, size[0]), (-1, size[1])):
        parts, n, flip = [], 0, False
        while n < target:
            parts.append(u.flip(dim) if flip else u)
            n += u.shape[dim]
            flip = not flip
        u = torch.cat(parts, dim=dim).narrow(dim, 0, target)
    return u


def tile_degrade(net: nn.Module, clean: torch.Tensor, degradations: Sequence[torch.Tensor], tile: int = 0,
                 overlap: int = DEFAULT_OVERLAP, precision: str = 'fp32',
                 progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """NDRDegrad(clean, U's) tile by tile -> degraded (B, 3, H, W) float32 on the CPU.

    ``clean`` is (B, 3, sH, sW) and the U_i are at the padded level sizes of
    (H, W) (use :func:`fit_degradations` first for another image's U's).
    """
    device = _module_device(net)
    dtype = resolve_precision(precision, device)
    s = int(getattr(net, 'upscale', 1))
    h, w = clean.shape[-2] // s, clean.shape[-1] // s
    expected = level_sizes(h, w)
    for i, (u, size) in enumerate(zip(degradations, expected)):
        if tuple(u.shape[-2:]) != size:
            raise ValueError(f'U{i + 1} is {tuple(u.shape[-2:])}, the clean image needs {size}; '
                             f'use fit_degradations() first')
    grid = plan_tiles(h, w, tile, overlap, device, dtype)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        padded = pad_to_multiple(clean, STRIDE * s)

        def run(box):
            y0, y1, x0, x1 = box
            us = [u[..., y0 >> i:y1 >> i, x0 >> i:x1 >> i].to(device) for i, u in enumerate(degradations)]
            with _autocast(device, dtype):
                return [fast(padded[..., y0 * s:y1 * s, x0 * s:x1 * s].to(device), us)]

        out, = _run_tiles(grid, run, [1.0], progress)
    return out[..., :h, :w]


def _module_device(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    return torch.device('cpu')


__all__ = [
    'WeightsError', 'LoadedWeights', 'resolve_device', 'resolve_precision', 'read_weights', 'network_options',
    'infer_restore_options', 'infer_degrad_options', 'load_restore_network', 'load_degrad_network',
    'degrad_weights_next_to', 'TileGrid', 'BlendAccumulator', 'plan_tiles', 'tile_starts', 'ramp_window',
    'tile_forward', 'tile_recognise', 'tile_degrade', 'fit_degradations', 'level_sizes', 'fits_whole',
    'DEFAULT_TILE', 'DEFAULT_OVERLAP', 'STRIDE',
]
