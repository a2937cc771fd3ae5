"""``ndrsr-restore --maps``: the degradation maps of an image written as PNG files (see :mod:`ndrsr.lib.maps`)."""
from __future__ import annotations

import os
from os import path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ndrsr.lib.image_files import write_rgb8
from ndrsr.lib.maps import colour_atoms, colour_confidence, level_maps, summary_figure


def save_maps(out_dir: str, stem: str, image: np.ndarray, restored: Optional[np.ndarray],
              us: Sequence[torch.Tensor], ss: Sequence[torch.Tensor]) -> Dict[str, str]:
    """Write the maps of one image (the files :mod:`ndrsr.lib.maps` lists); returns {name: path}.

    image, restored: (H, W, 3) float RGB in [0, 1] (restored may be up-scaled or None).
    us, ss: [U1..U3] (1, Q, .., ..) / [S1..S3] (1, N, .., ..) at the padded resolution.
    """
    height, width = image.shape[:2]
    maps = level_maps([u[0] for u in us], [s[0] for s in ss], height, width)
    folder = osp.join(out_dir, f'{stem}_maps')
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for i, m in enumerate(maps, start=1):
        for name, rgb in (('atom', colour_atoms(m['atom'], m['atoms'])),
                          ('confidence', colour_confidence(m['confidence'])), ('U', m['u_rgb'])):
            path = osp.join(folder, f'L{i}_{name}.png')
            write_rgb8(path, rgb)
            paths[f'L{i}_{name}'] = path
    paths['summary'] = osp.join(folder, 'summary.png')
    write_rgb8(paths['summary'], summary_figure(image, restored, maps))
    return paths
