"""The inference library: weights files -> networks, and runs of them on images of any size.

:mod:`~ndrsr.lib.weights` (read weights, find their options, build and load
networks), :mod:`~ndrsr.lib.checkpoint` (the state-dict toolkit),
:mod:`~ndrsr.lib.convert` (the released checkpoint -> BasicSR checkpoints),
:mod:`~ndrsr.lib.model_zoo` (named models), :mod:`~ndrsr.lib.tiling` (device,
precision, tiled runs), :mod:`~ndrsr.lib.transfer` (a recognised degradation
fitted to another image), :mod:`~ndrsr.lib.maps` (degradation maps and their
figure), :mod:`~ndrsr.lib.image_files` (image files read and written: 8/16-bit,
alpha, gray). The library never imports the tools (:mod:`ndrsr.cli`).
"""
