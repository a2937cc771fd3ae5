"""``ndrsr-restore --maps``: the degradation maps of an image written as PNG files (see :mod:`ndrsr.lib.maps`).

The maps of an image are one unit: they are written into a temporary folder
``.STEM_maps.tmp-<pid>`` renamed to ``STEM_maps`` once every file is there, so
``STEM_maps`` is either complete (:func:`maps_complete`) or absent.
"""
from __future__ import annotations

import os
import shutil
from os import path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ndrsr.lib.image_files import write_rgb8
from ndrsr.lib.maps import colour_atoms, colour_confidence, level_maps, summary_figure


MAP_FILES = tuple(f'L{i}_{name}.png' for i in (1, 2, 3) for name in ('atom', 'confidence', 'U')) + ('summary.png',)


def maps_folder(out_dir: str, stem: str) -> str:
    """Where the maps of the image written as ``STEM.*`` go."""
    return osp.join(out_dir, f'{stem}_maps')


def maps_complete(folder: str) -> bool:
    """Whether ``folder`` holds every map file (a folder left by an interrupted older version may not)."""
    return all(osp.isfile(osp.join(folder, name)) for name in MAP_FILES)


def save_maps(out_dir: str, stem: str, image: np.ndarray, restored: Optional[np.ndarray],
              us: Sequence[torch.Tensor], ss: Sequence[torch.Tensor], replace: bool = False) -> Dict[str, str]:
    """Write the maps of one image (the files :mod:`ndrsr.lib.maps` lists, :data:`MAP_FILES`); returns {name: path}.

    image, restored: (H, W, 3) float RGB in [0, 1] (restored may be up-scaled or None).
    us, ss: [U1..U3] (1, Q, .., ..) / [S1..S3] (1, N, .., ..) at the padded resolution.
    An existing incomplete maps folder is replaced; a complete one only with ``replace``
    (else FileExistsError).
    """
    height, width = image.shape[:2]
    maps = level_maps([u[0] for u in us], [s[0] for s in ss], height, width)
    final = maps_folder(out_dir, stem)
    if osp.isdir(final) and maps_complete(final) and not replace:
        raise FileExistsError(f'{final} already exists (written meanwhile by another run?); it was not replaced')
    os.makedirs(out_dir, exist_ok=True)
    folder = osp.join(out_dir, f'.{stem}_maps.tmp-{os.getpid()}')
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    paths = {}
    try:
        for i, m in enumerate(maps, start=1):
            for name, rgb in (('atom', colour_atoms(m['atom'], m['atoms'])),
                              ('confidence', colour_confidence(m['confidence'])), ('U', m['u_rgb'])):
                write_rgb8(osp.join(folder, f'L{i}_{name}.png'), rgb)
                paths[f'L{i}_{name}'] = osp.join(final, f'L{i}_{name}.png')
        write_rgb8(osp.join(folder, 'summary.png'), summary_figure(image, restored, maps))
        paths['summary'] = osp.join(final, 'summary.png')
        if osp.isdir(final):
            shutil.rmtree(final)
        os.rename(folder, final)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return paths
