"""MixedDegradationDataset: the training mix of paired and clean-only sources.

Options (``datasets.train``; every key is documented in docs/datasets.md)::

    type: MixedDegradationDataset
    scale: 1                 # set by BasicSR from the top-level scale
    gt_size: 128
    use_hflip: true
    use_rot: true
    io_backend: {type: disk} # default for the sources
    sources:
      - {name: rain, task: rain, dataroot_lq: .../rainy, dataroot_gt: .../norain, pairing: rain, repeat: 120}
      - {name: haze, task: haze, dataroot_lq: .../hazy, dataroot_gt: .../clear, pairing: reside}
      - {name: noise, dataroot_gt: .../BSD400, synthesize: [noise], repeat: 3}

Each sample: ``lq`` (3, gt_size / scale, gt_size / scale) and ``gt`` (3, gt_size, gt_size)
float32 RGB tensors in [0, 1], ``lq_path``, ``gt_path`` (file paths, or LMDB keys)
and ``task``.

Randomness: crops and flips use Python's ``random`` (BasicSR's transforms), the
synthesis uses a per-sample ``numpy.random.Generator`` seeded from numpy's
global state; BasicSR's ``worker_init_fn`` seeds both per worker, so the same
seed gives the same samples on disk and on LMDB.

The sources' options are parsed, listed and paired by :mod:`ndrsr.data.sources`.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from basicsr.data.transforms import augment, mod_crop, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .synthesis import synthesis_scale, synthesize_pair
from .image_io import GRAY_MODES, read_image
from .pairing import DataLayoutError
from .sources import Source, check_choice, check_pair_sizes, open_file_clients, parse_source, sampling_counts
from .validate import SMALL_MODES, mixed_dataset_problems


def pad_to(img: np.ndarray, size: int) -> np.ndarray:
    """Symmetric-pad (H, W, C) at the bottom/right so both sides are at least ``size``."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    return np.pad(img, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode='symmetric')


@DATASET_REGISTRY.register()
class MixedDegradationDataset(data.Dataset):
    """A mix of paired and clean-only (synthesised) sources for all-in-one training.

    Args:
        opt (dict): ``datasets.train`` options: sources, gt_size, scale, use_hflip,
            use_rot, io_backend, gray, small_images, unpaired (docs/datasets.md).

    ``__getitem__`` returns ``{'lq': (3, gt_size/scale, gt_size/scale), 'gt': (3, gt_size, gt_size),
    'lq_path', 'gt_path', 'task'}``; tensors float32 RGB in [0, 1].
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        where = f"datasets {opt.get('name', 'train')}"
        problems = mixed_dataset_problems(opt, where, sources=False)  # the same checks as training and the check
        if problems:
            raise DataLayoutError('\n'.join(problems))
        self.scale = int(opt.get('scale', 1))
        self.gt_size = int(opt['gt_size'])
        self.use_hflip = bool(opt.get('use_hflip', True))
        self.use_rot = bool(opt.get('use_rot', True))
        self.gray = check_choice(opt.get('gray', 'convert'), GRAY_MODES, 'gray', where)
        self.small_images = check_choice(opt.get('small_images', 'error'), SMALL_MODES, 'small_images', where)
        specs = opt['sources']
        self.sources = [
            parse_source(spec, self.scale, opt.get('io_backend'),
                         f"{where} source {i} '{spec.get('name', '?') if isinstance(spec, dict) else '?'}'",
                         opt.get('unpaired', 'error')) for i, spec in enumerate(specs)
        ]
        self.counts = sampling_counts(self.sources, where)
        self._slot_source = np.repeat(np.arange(len(self.sources)), self.counts)
        self._slot_offset = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self._clients: Dict[int, FileClient] = {}

    def __len__(self) -> int:
        return int(self._slot_source.size)

    def proportions(self) -> Dict[str, float]:
        """Share of samples per task over an epoch (what the sampler draws)."""
        out: Dict[str, float] = {}
        for s, c in zip(self.sources, self.counts):
            out[s.task] = out.get(s.task, 0.0) + c / len(self)
        return out

    def locate(self, index: int) -> Tuple[Source, Tuple[Optional[str], str]]:
        """The source and (lq stem, gt stem) at a dataset index."""
        si = int(self._slot_source[index])
        source = self.sources[si]
        return source, source.items[(index - int(self._slot_offset[si])) % len(source.items)]

    def _client(self, source: Source) -> FileClient:
        if not self._clients:
            self._clients = open_file_clients(self.sources)
        return self._clients[source.backend]

    def _too_small(self, name: str, h: int, w: int, need: int, what: str) -> None:
        raise DataLayoutError(f'{name} is {h}x{w}, smaller than the {what} crop {need}x{need} (gt_size '
                              f'{self.gt_size}, scale {self.scale}). Remove it, lower gt_size, or set '
                              'small_images: pad.')

    def __getitem__(self, index: int) -> dict:
        source, (lq_stem, gt_stem) = self.locate(index)
        client = self._client(source)
        gt = read_image(client, source.gt.path(gt_stem), source.key('gt'), self.gray, source.gt.display(gt_stem))
        gt_path = source.gt.path(gt_stem)
        whole_image = source.steps and source.synthesis_scope == 'image'
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1)) if source.steps else None  # BasicSR's seeding
        if source.paired:
            lq_path = source.lq.path(lq_stem)
            lq = read_image(client, lq_path, source.key('lq'), self.gray, source.lq.display(lq_stem))
            gt = check_pair_sizes(gt, lq, source.pair_scale, source.gt.display(gt_stem), source.lq.display(lq_stem))
            scale = source.pair_scale
            if whole_image:
                gt, lq = synthesize_pair(np.ascontiguousarray(gt), lq, source.steps, rng)
                scale *= synthesis_scale(source.steps)
            need = self.gt_size // scale
            if min(lq.shape[:2]) < need:
                if self.small_images == 'error':
                    self._too_small(source.lq.display(lq_stem), *lq.shape[:2], need, 'lq')
                lq = pad_to(lq, need)
                gt = pad_to(gt, need * scale)[:lq.shape[0] * scale, :lq.shape[1] * scale]
            gt, lq = paired_random_crop(gt, lq, self.gt_size, scale, gt_path)
        else:
            lq_path = gt_path
            if min(gt.shape[:2]) < self.gt_size:
                if self.small_images == 'error':
                    self._too_small(source.gt.display(gt_stem), *gt.shape[:2], self.gt_size, 'gt')
                gt = pad_to(gt, self.gt_size)
            if whole_image:
                scale = synthesis_scale(source.steps)
                gt = mod_crop(gt, scale)
                gt, lq = synthesize_pair(np.ascontiguousarray(gt), None, source.steps, rng)
                gt, lq = paired_random_crop(gt, lq, self.gt_size, scale, gt_path)
            else:
                gt, lq = paired_random_crop(gt, gt, self.gt_size, 1, gt_path)
        if source.steps and not whole_image:
            gt, lq = synthesize_pair(np.ascontiguousarray(gt), lq if source.paired else None, source.steps, rng)
        gt, lq = augment([np.ascontiguousarray(gt), np.ascontiguousarray(lq)], self.use_hflip, self.use_rot)
        gt, lq = img2tensor([gt, lq], bgr2rgb=True, float32=True)
        return {'lq': lq, 'gt': gt, 'lq_path': lq_path, 'gt_path': gt_path, 'task': source.task}


__all__ = ['MixedDegradationDataset', 'SMALL_MODES', 'pad_to']
