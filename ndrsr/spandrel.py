"""NDR-Restore in spandrel (chaiNNer, ComfyUI and other apps load models through it).

    import ndrsr.spandrel
    ndrsr.spandrel.install()          # once, as spandrel_extra_arches.install() does
    import spandrel
    model = spandrel.ModelLoader().load_from_file('net_g.pth')   # or .safetensors, or model_L.pth
    restored = model(image)           # image (1, 3, H, W) float in [0, 1]; any H, W

:func:`install` adds :class:`NDRRestoreArch` to spandrel's ``MAIN_REGISTRY``. It
recognises, from the state dict's keys:

* ndrsr's checkpoints: BasicSR's ``{'params_ema': ...}`` / ``{'params': ...}``
  (spandrel unwraps them), plain state dicts, and the safetensors files of
  ``ndrsr-export`` (NDR-Degrad's ``degrad.*`` tensors beside are ignored);
* the authors' released checkpoint (``restoration_net.*`` keys), renamed on the
  fly with :mod:`ndrsr.lib.convert`.

The sizes come from the tensor shapes (:func:`ndrsr.lib.checkpoint.infer_restore_options`).
The one option the shapes do not tell, ``global_residual``, is read from the
``ndrsr.global_residual`` flag of an ``ndrsr-export`` safetensors file; the
released checkpoint has none; for a bare ndrsr checkpoint it is recognised from
the network itself (:func:`guess_global_residual`). Prefer the exported
safetensors file for other apps. The descriptor says: purpose ``Restoration``
(``SR`` for the 2x model), scale = the network's ``upscale``, input sizes padded
to a multiple of 8 (spandrel pads and crops), tiling supported.
"""
from __future__ import annotations

from typing import Dict, Mapping

import torch

ARCH_ID = 'NDRRestore'
RESTORE_KEYS = ('embed.weight', 'encoder1.0.attn.temperature', 'latent.0.attn.temperature', 'reduce1.weight',
                'decoder1.0.attn.temperature', 'output.weight')
RELEASED_KEYS = ('restoration_net.extractor.weight', 'restoration_net.block1.0.attn.temperature')
IGNORED_PREFIXES = ('degrad.', 'ndrsr.')  # NDR-Degrad and flags beside NDR-Restore in an ndrsr-export file
GLOBAL_RESIDUAL_KEY = 'ndrsr.global_residual'


def _strip_module(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}


def is_released_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` is the released combined checkpoint's state dict."""
    keys = set(_strip_module(state))
    return all(k in keys for k in RELEASED_KEYS)


def detect(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` (a canonicalised state dict) holds NDR-Restore, in ndrsr's or the released key names."""
    if is_released_state(state):
        return True
    keys = set(state)
    return (all(k in keys for k in RESTORE_KEYS) and any(k.startswith('query.0.') for k in keys)
            and any(k.startswith('inject.0.') for k in keys))


def guess_global_residual(net: torch.nn.Module) -> bool:
    """Whether trained NDRRestore weights were trained with ``global_residual=True``.

    ``net`` is built with ``global_residual=False``. On a flat mid-grey image a network trained without
    the residual outputs an image near that grey; one trained with it outputs a correction, nearer zero
    than the grey (not necessarily near zero: a model that dehazes may take flat grey for dense haze).
    So the answer is whichever of the two readings the output is closer to. Meaningless for untrained weights.
    """
    flat = torch.full((1, net.in_channels, 32, 32), 0.5)
    with torch.no_grad():
        out = net.eval()(flat)
    return float(out.abs().mean()) < float((out - flat).abs().mean())


def restore_state(state: Mapping[str, torch.Tensor]):
    """(NDRRestore state dict, global_residual or None if unknown) from a detected state dict."""
    from ndrsr.lib.convert import rename_released

    if is_released_state(state):
        restore, _, _ = rename_released(state)
        return restore, False  # the released network has no global residual
    restore = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    flag = state.get(GLOBAL_RESIDUAL_KEY)
    return restore, (bool(flag.item()) if flag is not None else None)


def _architecture_class():
    from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements

    class NDRRestoreArch(Architecture):
        """spandrel architecture of NDR-Restore (see the module docstring)."""

        def __init__(self) -> None:
            super().__init__(id=ARCH_ID, name='NDR-Restore', detect=detect)

        def load(self, state_dict):
            from ndrsr.archs import NDRRestore
            from ndrsr.lib.checkpoint import infer_restore_options

            restore, global_residual = restore_state(state_dict)
            options = infer_restore_options(restore)
            net = NDRRestore(**options)
            net.load_state_dict(restore, strict=True)
            if global_residual is None:
                global_residual = guess_global_residual(net)
            net.global_residual = global_residual
            scale = net.upscale
            tags = [f"{options['dim']}dim", f"{sum(options['num_blocks'])}blocks"]
            if global_residual:
                tags.append('global-residual')
            return ImageModelDescriptor(
                net, restore, architecture=self, purpose='Restoration' if scale == 1 else 'SR', tags=tags,
                supports_half=False, supports_bfloat16=True, scale=scale, input_channels=3, output_channels=3,
                size_requirements=SizeRequirements(multiple_of=net.stride), tiling=ModelTiling.SUPPORTED)

    return NDRRestoreArch


def install(registry=None) -> list:
    """Add NDR-Restore to spandrel's registry (``MAIN_REGISTRY`` by default); returns what was added.

    Calling it again adds nothing. Needs spandrel (``pip install "ndrsr[spandrel]"``).
    """
    try:
        import spandrel
    except ImportError:
        raise ImportError('ndrsr.spandrel.install() needs spandrel: pip install "ndrsr[spandrel]"') from None
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    support = spandrel.ArchSupport.from_architecture(_architecture_class()())
    return registry.add(support, ignore_duplicates=True)


__all__ = ['ARCH_ID', 'detect', 'guess_global_residual', 'install', 'is_released_state', 'restore_state']
