"""Inference API under its first name: weights files -> networks, and tiled runs of them.

Kept so that ``from ndrsr.inference import ...`` keeps working; the code lives in
:mod:`ndrsr.weights` (reading weights, discovering options, building and
loading networks), :mod:`ndrsr.tiling` (device, precision, tile grid,
blending, ``tile_forward`` / ``tile_recognise`` / ``tile_degrade``) and
:mod:`ndrsr.checkpoint` (the state-dict toolkit).
"""
from ndrsr.checkpoint import WeightsError, infer_degrad_options, infer_restore_options
from ndrsr.tiling import (DEFAULT_OVERLAP, DEFAULT_TILE, PRECISIONS, STRIDE, BlendAccumulator, TileGrid,
                          fit_degradations, fits_whole, level_sizes, plan_tiles, ramp_window, resolve_device,
                          resolve_precision, tile_degrade, tile_forward, tile_recognise, tile_starts)
from ndrsr.weights import (LoadedWeights, degrad_weights_next_to, load_degrad_network, load_restore_network,
                           network_options, read_weights)

__all__ = [
    'WeightsError', 'LoadedWeights', 'resolve_device', 'resolve_precision', 'read_weights', 'network_options',
    'infer_restore_options', 'infer_degrad_options', 'load_restore_network', 'load_degrad_network',
    'degrad_weights_next_to', 'TileGrid', 'BlendAccumulator', 'plan_tiles', 'tile_starts', 'ramp_window',
    'tile_forward', 'tile_recognise', 'tile_degrade', 'fit_degradations', 'level_sizes', 'fits_whole',
    'DEFAULT_TILE', 'DEFAULT_OVERLAP', 'STRIDE', 'PRECISIONS',
]
