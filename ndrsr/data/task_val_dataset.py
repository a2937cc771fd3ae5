"""TaskValidationDataset: whole-image validation/test sets, one task each.

Two kinds (options documented in docs/datasets.md)::

    val_rain:  {type: TaskValidationDataset, task: rain, dataroot_lq: .../rainy, dataroot_gt: .../norain,
                pairing: rain, io_backend: {type: disk}}
    val_bsd68_25: {type: TaskValidationDataset, task: noise25, dataroot_gt: .../BSD68,
                   synthesize: [noise25], io_backend: {type: disk}}

Synthesised degradations are seeded per image by ``zlib.crc32`` of the image
name (without extension) and the ``seed`` option, so they are bit-identical on
every run, machine, backend and DataLoader worker count (for a given numpy).

No crop, no flip. With ``scale: s`` the gt is cropped to a multiple of s (clean
sources: before down-scaling; paired sources: to exactly s x the lq size).
Each item: ``{'lq': (3, H/s, W/s), 'gt': (3, H, W), 'lq_path', 'gt_path', 'task'}``.
"""
from __future__ import annotations

import zlib

import numpy as np
from basicsr.data.transforms import mod_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .synthesis import synthesis_scale, synthesize_pair
from .image_io import GRAY_MODES, read_image
from .pairing import DataLayoutError
from .sources import SOURCE_KEYS, check_choice, check_pair_sizes, open_file_clients, parse_source
from .validate import validation_dataset_problems


def image_seed(name: str, seed: int = 0) -> np.random.Generator:
    """A Generator seeded by a stable hash (crc32) of the image name and ``seed`` (never Python's hash())."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode('utf-8'))])


@DATASET_REGISTRY.register()
class TaskValidationDataset(data.Dataset):
    """Whole-image paired or synthesised validation set for one task.

    Args:
        opt (dict): task, dataroot_gt, dataroot_lq?, pairing?, synthesize?,
            io_backend, meta_info_file?, scale, seed (0), gray, unpaired.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        where = f"datasets {opt.get('name', 'val')}"
        self.scale = int(opt.get('scale', 1))
        self.seed = int(opt.get('seed', 0))
        self.gray = check_choice(opt.get('gray', 'convert'), GRAY_MODES, 'gray', where)
        problems = validation_dataset_problems(opt, where)  # the same checks as training and the check
        if problems:
            raise DataLayoutError('\n'.join(problems))
        spec = {k: v for k, v in opt.items() if k in SOURCE_KEYS}
        spec.setdefault('io_backend', {'type': 'disk'})
        self.source = parse_source(spec, self.scale, None, where, opt.get('unpaired', 'error'))
        self.task = self.source.task
        self._client = None

    def __len__(self) -> int:
        return len(self.source.items)

    def __getitem__(self, index: int) -> dict:
        src = self.source
        if self._client is None:
            self._client = open_file_clients([src])[src.backend]
        lq_stem, gt_stem = src.items[index]
        gt_path = src.gt.path(gt_stem)
        gt = read_image(self._client, gt_path, src.key('gt'), self.gray, src.gt.display(gt_stem))
        if src.paired:
            lq_path = src.lq.path(lq_stem)
            lq = read_image(self._client, lq_path, src.key('lq'), self.gray, src.lq.display(lq_stem))
            gt = check_pair_sizes(gt, lq, src.pair_scale, src.gt.display(gt_stem), src.lq.display(lq_stem))
            if src.steps:  # synthesis shrinks lq further: crop both to a multiple first
                lq = mod_crop(lq, synthesis_scale(src.steps))
                gt = gt[:lq.shape[0] * src.pair_scale, :lq.shape[1] * src.pair_scale]
            name = lq_stem
        else:
            lq_path = gt_path
            gt = mod_crop(gt, self.scale)
            lq, name = None, gt_stem
        if src.steps:
            gt, lq = synthesize_pair(np.ascontiguousarray(gt), lq, src.steps, image_seed(name, self.seed))
        lq = gt if lq is None else lq
        gt, lq = img2tensor([np.ascontiguousarray(gt), np.ascontiguousarray(lq)], bgr2rgb=True, float32=True)
        return {'lq': lq, 'gt': gt, 'lq_path': lq_path, 'gt_path': gt_path, 'task': src.task}
