"""The tools: command-line programs built on the library (never imported by it).

==================  =====================================  ==========================================
command             module                                 what
==================  =====================================  ==========================================
``ndrsr-restore``   :mod:`ndrsr.cli.restore`               restore images of any size (tiled, 8/16-bit, alpha)
``ndrsr-degrade``   :mod:`ndrsr.cli.degrade`               transfer a recognised degradation to clean images
``ndrsr-eval``      :mod:`ndrsr.cli.evaluate`              PSNR / SSIM (or NIQE) of a folder
python -m ...       :mod:`ndrsr.cli.convert`               ``python -m ndrsr.convert``: the released checkpoint
python -m ...       :mod:`ndrsr.cli.make_lmdb`             ``python -m ndrsr.data.make_lmdb``: folders -> LMDB
python -m ...       :mod:`ndrsr.cli.check`                 ``python -m ndrsr.data.check``: will a data layout train
``demo.sh``         :mod:`ndrsr.cli.demo`                  the embedded demo
==================  =====================================  ==========================================

Helpers of the tools only: :mod:`ndrsr.cli.common` (inputs, output checks,
progress, failure reports, the main wrapper that turns library errors into
``prog: error: ...`` lines naming the flag), :mod:`ndrsr.cli.image_files`
(reading/writing 8/16-bit, alpha, gray), :mod:`ndrsr.cli.maps` (degradation
maps and their summary figure).
"""
