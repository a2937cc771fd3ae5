"""The tools: command-line programs built on the library (never imported by it).

===================  =====================================  ==========================================
command              module                                 what
===================  =====================================  ==========================================
``ndrsr-restore``    :mod:`ndrsr.cli.restore`               restore images of any size (tiled, 8/16-bit, alpha)
``ndrsr-degrade``    :mod:`ndrsr.cli.degrade`               transfer a recognised degradation to clean images
``ndrsr-eval``       :mod:`ndrsr.cli.evaluate`              PSNR / SSIM (or NIQE) of a folder
``ndrsr-convert``    :mod:`ndrsr.cli.convert`               the released checkpoint -> BasicSR checkpoints
``ndrsr-make-lmdb``  :mod:`ndrsr.cli.make_lmdb`             image folders -> BasicSR LMDBs
``ndrsr-check``      :mod:`ndrsr.cli.check`                 will the datasets of an options file train
``demo.sh``          :mod:`ndrsr.cli.demo`                  the embedded demo
===================  =====================================  ==========================================

Each also runs as ``python -m ndrsr.cli.<module>``. Helpers of the tools only:
:mod:`ndrsr.cli.paths` (inputs, output checks, the output policy),
:mod:`ndrsr.cli.progress` (progress bars, failures of single images),
:mod:`ndrsr.cli.errors` (the main wrapper that turns library errors into
``prog: error: ...`` lines naming the flag), :mod:`ndrsr.cli.arguments` (the
shared argument groups), :mod:`ndrsr.cli.maps` (writing the degradation maps).
Images are read and written with :mod:`ndrsr.lib.image_files` (8/16-bit, alpha, gray).
"""
