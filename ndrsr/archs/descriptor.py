"""What a network says about itself to the code that runs it (as spandrel's model descriptors do).

:class:`InputNeeds` is a class attribute of :class:`~ndrsr.archs.NDRRestore` and
:class:`~ndrsr.archs.NDRDegrad` (``net.input_needs``): the multiple the network
pads its input to, and whether running it tile by tile changes its output. The
tiler (:mod:`ndrsr.lib.tiling`) reads it through :func:`input_needs_of`, which
also answers for networks that do not say (:data:`UNDECLARED`).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class InputNeeds:
    """What a network needs of its input (B, C, H, W), and what tiling does to its output.

    Attributes:
        multiple_of: the network pads H and W (reflect) to a multiple of this and crops the
            output back; tiles and overlaps are multiples of it, so that every tile is padded
            as the whole image is.
        tiling_changes_output: True when the network has global operations (attention or
            pooling over all pixels), so a tiled run is close to, not equal to, the
            whole-image run; False when every output pixel depends on a bounded neighbourhood
            (tiles that overlap by more than it reproduce the whole-image output).
    """
    multiple_of: int
    tiling_changes_output: bool

    def __post_init__(self):
        if int(self.multiple_of) != self.multiple_of or self.multiple_of < 1:
            raise ValueError(f'multiple_of must be a whole number >= 1, got {self.multiple_of!r}')


# a network that does not say: padded to 8 (what every ndrsr network needs; harmless for others, whose
# output is cropped back), and assumed to have global operations (no claim that tiling is exact)
UNDECLARED = InputNeeds(multiple_of=8, tiling_changes_output=True)


def input_needs_of(net: nn.Module) -> InputNeeds:
    """``net.input_needs`` when the network declares it, else :data:`UNDECLARED`."""
    needs = getattr(net, 'input_needs', None)
    if needs is None:
        return UNDECLARED
    if not isinstance(needs, InputNeeds):
        raise TypeError(f'{type(net).__name__}.input_needs must be an InputNeeds, got {type(needs).__name__}')
    return needs


__all__ = ['InputNeeds', 'UNDECLARED', 'input_needs_of']
