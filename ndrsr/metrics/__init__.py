"""Metrics ndrsr adds to BasicSR's registry (use them in the options' ``val.metrics``).

Importing this package registers them: :func:`~ndrsr.metrics.colour.calculate_colour_shift` and
:func:`~ndrsr.metrics.colour.calculate_colour_cast` (:mod:`ndrsr.metrics.colour`).
"""
from .colour import calculate_colour_cast, calculate_colour_shift

__all__ = ['calculate_colour_cast', 'calculate_colour_shift']
