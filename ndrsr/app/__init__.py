"""ndrsr-app: a local web page to restore photos, see what the NDR recognises in them and transfer
degradations (docs/app.md).

:mod:`ndrsr.app.jobs` does the work of each tab with the library (no web code), :mod:`ndrsr.app.page` lays
out the page with Gradio, :mod:`ndrsr.app.main` starts the server (``ndrsr-app``). Gradio is the optional
extra ``ndrsr[app]``: nothing else in the package imports this one.
"""
