"""The page itself: a Gradio ``Blocks`` with three tabs (Restore, What it sees, Transfer) over
:mod:`ndrsr.app.jobs`.

Each press of a button is one request: its outputs go to a new folder and back to the browser tab that
asked (Gradio's per-session events); the only thing requests share is the cache of loaded networks. Errors a
user can fix come back as a message on the page (``gr.Error``), anything else as a short message with the
details in the server's log; the server keeps serving either way.
"""
from __future__ import annotations

import logging
import traceback
from functools import wraps
from os import path as osp
from typing import Callable, Optional

import gradio as gr

from ndrsr.app import jobs
from ndrsr.app.examples import CLEAN, DEGRADED, write_examples

LOG = logging.getLogger('ndrsr.app')
TITLE = 'ndrsr: restore photos, see what the network recognises, transfer degradations'
INTRO = """\
# ndrsr
One network for photos whose degradation is unknown: noise, rain, haze (NDR-Restore, Yao et al., TIP 2024).
**Restore** a photo, see **what it sees** (the degradation it recognises), or **transfer** a degradation
from one photo onto another. Everything runs on this machine; downloads are the full-resolution PNG
that `ndrsr-restore` / `ndrsr-degrade` write for the same photo and settings.
"""
# the three tabs' jobs share one queue: one network job at a time on the whole server
ONE_QUEUE = dict(concurrency_id='networks', concurrency_limit=1)
EXAMPLE_LABELS = {'chelsea_noise25.png': 'noisy cat', 'motorcycle_rain.png': 'rainy street',
                  'coffee_haze.png': 'hazy coffee', 'astronaut_clean.png': 'clean astronaut'}


def on_page(fn: Callable) -> Callable:
    """Run a job for the page: user errors become ``gr.Error`` (a message on the page, no traceback), and so
    does anything unexpected (its traceback goes to the server's log)."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - the page shows a message, the server keeps serving
            from ndrsr.data.image_io import ImageReadError
            from ndrsr.lib.checkpoint import WeightsError
            from ndrsr.lib.model_zoo import ModelUnavailableError
            if not isinstance(err, (ImageReadError, WeightsError, ModelUnavailableError, ValueError, OSError,
                                    MemoryError)):
                LOG.error('unexpected error in %s:\n%s', fn.__name__, traceback.format_exc())
                raise gr.Error(f'unexpected error ({err.__class__.__name__}: {err}); the server log has the '
                               f'details.', print_exception=False) from None
            raise gr.Error(jobs.user_message(err), print_exception=False) from None
    return wrapper


def reporter(progress: gr.Progress) -> jobs.Report:
    return lambda fraction, text: progress(fraction, desc=text)


def first_path(files) -> Optional[str]:
    """The path of a single gr.File value (a path, or a list of them)."""
    if isinstance(files, (list, tuple)):
        return files[0] if files else None
    return files or None


def build_page(out_root: str, networks: Optional[jobs.Networks] = None, device: str = 'auto',
               max_pixels: int = jobs.DEFAULT_MAX_PIXELS) -> gr.Blocks:
    """The page; outputs are written under ``out_root`` (a folder per request), networks kept in ``networks``,
    photos over ``max_pixels`` refused (0: no limit)."""
    networks = networks or jobs.Networks()
    examples = write_examples(osp.join(out_root, 'examples'))
    models = jobs.model_names()

    def runtime(dev: str, precision: str, tile) -> jobs.Runtime:
        return jobs.Runtime(device=dev, precision=precision, tile=int(tile or 0), max_pixels=max_pixels)

    def model_controls(prefix: str):
        model = gr.Dropdown(models, value=models[0], label='Model', elem_id=f'{prefix}-model',
                            info='the shipped models; paper is downloaded on first use; or your own weights')
        with gr.Accordion('Advanced', open=False):
            weights = gr.File(label='Weights (.pth) for "uploaded weights"', file_count='single',
                              elem_id=f'{prefix}-weights')
            with gr.Row():
                tile = gr.Number(0, label='Tile (pixels, 0 = auto)', precision=0, minimum=0, elem_id=f'{prefix}-tile')
                precision = gr.Dropdown(['auto', 'fp32', 'fp16', 'bf16'], value='auto', label='Precision',
                                        elem_id=f'{prefix}-precision')
                dev = gr.Dropdown(['auto', 'cpu', 'cuda'], value=device, label='Device', allow_custom_value=True,
                                  elem_id=f'{prefix}-device')
        return model, weights, tile, precision, dev

    def example_buttons(prefix: str, names, target, multiple: bool):
        gr.Markdown('or a bundled example:')
        with gr.Row():
            for name in names:
                button = gr.Button(EXAMPLE_LABELS[name], size='sm', elem_id=f'{prefix}-example-{osp.splitext(name)[0]}')
                path = examples[name]
                button.click(lambda p=path: [p] if multiple else p, None, target)

    # ------------------------------------------------------------------ the jobs behind the buttons
    @on_page
    def restore(files, model, weights, tile, precision, dev, progress=gr.Progress()):
        paths = [files] if isinstance(files, str) else list(files or [])
        if not paths:
            raise gr.Error('Upload one or several photos first (or pick a bundled example).', print_exception=False)
        weights_file, label = jobs.model_weights(model, first_path(weights))
        result = jobs.restore_photos(paths, weights_file, label, runtime(dev, precision, tile), networks, out_root,
                                     reporter(progress))
        if not result.photos:
            raise gr.Error('; '.join(result.failed()), print_exception=False)
        pairs = [(p.before, p.after) for p in result.photos]
        names = [p.name for p in result.photos]
        return (pairs[0], [p.output for p in result.photos], result.summary(), pairs, names,
                gr.update(choices=names, value=names[0], visible=len(names) > 1))

    def compare(name, pairs, names_state):
        return pairs[names_state.index(name)] if pairs and name in names_state else gr.update()

    @on_page
    def maps(file, model, weights, tile, precision, dev, progress=gr.Progress()):
        path = first_path(file)
        if not path:
            raise gr.Error('Upload a photo first (or pick a bundled example).', print_exception=False)
        weights_file, label = jobs.model_weights(model, first_path(weights))
        result = jobs.degradation_maps(path, weights_file, label, runtime(dev, precision, tile), networks, out_root,
                                       reporter(progress))
        legend = result.legend + (f'\n\nWARNING {result.note}' if result.note else '')
        return result.summary, result.maps, legend + f'\n\n({result.seconds:.1f} s)'

    @on_page
    def transfer(clean, like, fit, model, weights, tile, precision, dev, progress=gr.Progress()):
        clean_path, like_path = first_path(clean), first_path(like)
        if not clean_path or not like_path:
            raise gr.Error('Upload a clean photo and a degraded example (or pick bundled ones).',
                           print_exception=False)
        weights_file, _ = jobs.model_weights(model, first_path(weights))
        result = jobs.transfer_degradation(clean_path, like_path, fit, weights_file,
                                           runtime(dev, precision, tile), networks, out_root, reporter(progress))
        for w in result.warnings:
            gr.Warning(w)
        text = f'Done in {result.seconds:.1f} s (fit {fit}).'
        text += ''.join(f'\n\nWARNING {w}' for w in result.warnings)
        return (result.before, result.after), result.output, text

    # ------------------------------------------------------------------ layout
    from ndrsr.lib.transfer import FIT_MODES
    with gr.Blocks(title=TITLE) as page:
        gr.Markdown(INTRO)
        with gr.Tab('Restore', elem_id='tab-restore'):
            with gr.Row():
                with gr.Column(scale=1):
                    photos = gr.File(label='Photos', file_count='multiple', elem_id='restore-input')
                    example_buttons('restore', DEGRADED + (CLEAN,), photos, multiple=True)
                    controls = model_controls('restore')
                    go = gr.Button('Restore', variant='primary', elem_id='restore-run')
                with gr.Column(scale=2):
                    slider = gr.ImageSlider(label='before / after (drag; full screen to zoom)', type='filepath',
                                            format='png', buttons=['fullscreen'], elem_id='restore-slider')
                    which = gr.Dropdown([], label='Compare', visible=False, elem_id='restore-which')
                    downloads = gr.File(label='Download (full-resolution PNG)', file_count='multiple',
                                        interactive=False, elem_id='restore-output')
                    summary = gr.Markdown(elem_id='restore-summary')
            pairs = gr.State([])
            names = gr.State([])
            go.click(restore, [photos, *controls], [slider, downloads, summary, pairs, names, which], **ONE_QUEUE)
            which.change(compare, [which, pairs, names], slider)
        with gr.Tab('What it sees', elem_id='tab-maps'):
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.File(label='Photo', file_count='single', elem_id='maps-input')
                    example_buttons('maps', DEGRADED + (CLEAN,), photo, multiple=False)
                    map_controls = model_controls('maps')
                    see = gr.Button('Show what it recognises', variant='primary', elem_id='maps-run')
                with gr.Column(scale=2):
                    figure = gr.Image(label='summary: input, restored, then per level atom / confidence / U',
                                      type='filepath', format='png', elem_id='maps-summary')
                    legend = gr.Markdown(elem_id='maps-legend')
                    gallery = gr.Gallery(label='maps per level', columns=3, elem_id='maps-gallery')
            see.click(maps, [photo, *map_controls], [figure, gallery, legend], **ONE_QUEUE)
        with gr.Tab('Transfer', elem_id='tab-transfer'):
            with gr.Row():
                with gr.Column(scale=1):
                    clean = gr.File(label='Clean photo', file_count='single', elem_id='transfer-clean')
                    example_buttons('clean', (CLEAN,), clean, multiple=False)
                    like = gr.File(label='Degraded example (its degradation is transferred)', file_count='single',
                                   elem_id='transfer-like')
                    example_buttons('like', DEGRADED, like, multiple=False)
                    fit = gr.Radio(list(FIT_MODES), value='difference', label='Fit', elem_id='transfer-fit',
                                   info='difference: noise, rain; difference-mean: haze; resize, mirror, mean: '
                                        "the example's representation as it is (its scene can show through)")
                    transfer_controls = model_controls('transfer')
                    run = gr.Button('Transfer', variant='primary', elem_id='transfer-run')
                with gr.Column(scale=2):
                    result_slider = gr.ImageSlider(label='clean / with the degradation', type='filepath',
                                                   format='png', buttons=['fullscreen'], elem_id='transfer-slider')
                    result_file = gr.File(label='Download (full-resolution PNG)', interactive=False,
                                          elem_id='transfer-output')
                    notes = gr.Markdown(elem_id='transfer-summary')
            run.click(transfer, [clean, like, fit, *transfer_controls], [result_slider, result_file, notes],
                      **ONE_QUEUE)
    return page
