"""BasicSR glue: what ndrsr's entry points add to BasicSR's pipelines.

:mod:`~ndrsr.glue.compat` (import aliases and pipeline fixes for this stack),
:mod:`~ndrsr.glue.resume` (resuming runs), :mod:`~ndrsr.glue.options_check` and
:mod:`~ndrsr.glue.options_io` (options checked before anything is created, read
safely), :mod:`~ndrsr.glue.allocator` (freed memory reused),
:mod:`~ndrsr.glue.entry` (the start shared by ``ndrsr/train.py`` and
``ndrsr/test.py``: project root, user errors).
"""
