"""Make basicsr 1.4.2 work on torch 2.14 / torchvision 0.29 / numpy 2 / opencv 5 without forking it.

Two kinds of fixes, each one small function, documented in one line, idempotent,
and covered by tests/glue/test_compat.py or tests/glue/test_pipelines.py (docs/compat.md
lists them):

* what imports need (:func:`apply_import_fixes`, applied when this module is
  imported, i.e. first thing in ``import ndrsr``): aliases for modules that
  ``import basicsr`` needs and newer torchvision / Python removed. They add
  modules, they change no existing function.
* what BasicSR's pipelines need (:func:`apply_pipeline_fixes`, one named call
  made by ndrsr's own entry points): replacements of basicsr's resume, run
  folder, options copy, distributed launch, option parsing and LMDB sizing
  functions. Not applied by ``import ndrsr``: a project that imports ndrsr for
  its networks gets its BasicSR untouched.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import types
from os import path as osp
from typing import Any, Callable, Iterator, List, Optional, Tuple

_PATCHED = '_ndrsr_compat'  # attribute marking a function as ndrsr's replacement (idempotence)


def _restore_functional_tensor() -> None:
    """torchvision 0.17 removed ``transforms.functional_tensor`` that basicsr.data.degradations imports: alias it."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as tf
    module = types.ModuleType(name)
    module.rgb_to_grayscale = tf.rgb_to_grayscale
    sys.modules[name] = module


class LooseVersion:
    """``distutils.version.LooseVersion`` (removed with distutils in Python 3.12): numbers and letters compared
    in order."""

    _component = re.compile(r'(\d+ | [a-z]+ | \.)', re.VERBOSE)

    def __init__(self, vstring: str) -> None:
        self.vstring = str(vstring)
        self.version = [int(c) if c.isdigit() else c for c in self._component.split(self.vstring) if c and c != '.']

    def _other(self, other: Any) -> list:
        return (other if isinstance(other, LooseVersion) else LooseVersion(other)).version

    def __eq__(self, other: Any) -> bool:
        return self.version == self._other(other)

    def __lt__(self, other: Any) -> bool:
        return self.version < self._other(other)

    def __le__(self, other: Any) -> bool:
        return self.version <= self._other(other)

    def __gt__(self, other: Any) -> bool:
        return self.version > self._other(other)

    def __ge__(self, other: Any) -> bool:
        return self.version >= self._other(other)

    def __repr__(self) -> str:
        return f'LooseVersion({self.vstring!r})'


def _restore_distutils_version() -> None:
    """Python 3.12 removed distutils, whose ``version.LooseVersion`` basicsr.archs.arch_util imports: alias it.

    Only when no ``distutils`` can be imported (setuptools usually provides one).
    """
    try:
        from distutils.version import LooseVersion as _  # noqa: F401
        return
    except ImportError:
        pass
    package = sys.modules.get('distutils') or types.ModuleType('distutils')
    package.__path__ = getattr(package, '__path__', [])
    version = types.ModuleType('distutils.version')
    version.LooseVersion = LooseVersion
    package.version = version
    sys.modules['distutils'], sys.modules['distutils.version'] = package, version


def apply_import_fixes() -> None:
    """Fixes that must be in place before ``import basicsr``."""
    _restore_functional_tensor()
    _restore_distutils_version()


def _mark(func: Callable, original: Optional[Callable] = None) -> Callable:
    """Mark ``func`` as ndrsr's replacement; a wrapper records the basicsr function it wraps as ``_ndrsr_original``."""
    setattr(func, _PATCHED, True)
    if original is not None:
        func._ndrsr_original = original
    return func


def _is_patched(func: Any) -> bool:
    return getattr(func, _PATCHED, False)


# --------------------------------------------------------------------- resume and run folders
def _patch_load_resume_state() -> None:
    """Route basicsr.train_pipeline's resume through :func:`ndrsr.glue.resume.load_resume_state`."""
    import basicsr.train

    from ndrsr.glue.resume import load_resume_state
    basicsr.train.load_resume_state = _mark(load_resume_state)


def _patch_make_exp_dirs() -> None:
    """With --auto_resume and no complete state, reuse the existing run folder instead of archiving it."""
    import basicsr.train
    from basicsr.utils.dist_util import master_only
    if _is_patched(basicsr.train.make_exp_dirs):
        return
    original = basicsr.train.make_exp_dirs

    @master_only
    def make_exp_dirs(opt: dict) -> None:
        root = opt['path'].get('experiments_root')
        if not (opt.get('is_train') and opt.get('auto_resume') and root and osp.isdir(root)):
            return original(opt)
        print(f'--auto_resume: no complete training state in {root}; training starts from iteration 0 '
              f'in this folder (nothing archived or deleted).', flush=True)
        for key, path in opt['path'].items():
            if key in ('models', 'training_states', 'log', 'visualization'):
                os.makedirs(path, exist_ok=True)

    basicsr.train.make_exp_dirs = _mark(make_exp_dirs, original)


# ---------------------------------------------------------------- distributed
def _init_dist_pytorch(backend: str = 'nccl', **kwargs: Any) -> None:
    """basicsr hard-codes nccl + torch.cuda.set_device: use gloo without CUDA, and the LOCAL_RANK device with it."""
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    elif backend == 'nccl':
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist_slurm(backend: str = 'nccl', port: Any = None) -> None:
    """basicsr's SLURM start (``--launcher slurm``: the master is the first host of ``$SLURM_NODELIST`` as
    ``scontrol show hostname`` lists it, ``$MASTER_PORT`` or 29500, rank ``$SLURM_PROCID`` of ``$SLURM_NTASKS``)
    without its ``torch.cuda.set_device(rank % device_count)``: the node-local ``$SLURM_LOCALID`` device with
    CUDA, gloo without (basicsr divides by zero there)."""
    import subprocess

    import torch
    import torch.distributed as dist
    proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
    local_id = int(os.environ.get('SLURM_LOCALID', proc_id))
    addr = subprocess.getoutput(f'scontrol show hostname {os.environ["SLURM_NODELIST"]} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.update(MASTER_ADDR=addr, WORLD_SIZE=str(ntasks), RANK=str(proc_id), LOCAL_RANK=str(local_id))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_id % torch.cuda.device_count())
    elif backend == 'nccl':
        backend = 'gloo'
    dist.init_process_group(backend=backend)


def _init_dist(launcher: str, backend: str = 'nccl', **kwargs: Any) -> None:
    """basicsr's init_dist without ``mp.set_start_method('spawn')``: the platform's default (fork on Linux).

    Spawned DataLoader workers are fresh interpreters that unpickle the dataset
    before anything imports ndrsr, so a BasicSR dataset (PairedImageDataset, ...)
    imports basicsr.data without the functional_tensor alias and the worker
    exits 1. Forked workers inherit the fixes (and start faster); they do no
    CUDA work, as usual with torchrun scripts.
    """
    import basicsr.utils.dist_util as dist_util
    if launcher == 'pytorch':
        dist_util._init_dist_pytorch(backend, **kwargs)
    elif launcher == 'slurm':
        dist_util._init_dist_slurm(backend, **kwargs)
    else:
        raise ValueError(f'Invalid launcher type: {launcher}')


def _patch_init_dist() -> None:
    """Replace basicsr.utils.dist_util._init_dist_pytorch (looked up by init_dist at call time) and init_dist."""
    import basicsr.utils.dist_util as dist_util
    import basicsr.utils.options as options
    dist_util._init_dist_pytorch = _mark(_init_dist_pytorch)
    dist_util._init_dist_slurm = _mark(_init_dist_slurm)
    dist_util.init_dist = options.init_dist = _mark(_init_dist)


def _model_to_device(self: Any, net: Any) -> Any:
    """BaseModel.model_to_device passes device_ids=[torch.cuda.current_device()] to DDP: omit them on the CPU."""
    import torch
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids,
                                      find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def _patch_model_to_device() -> None:
    """Replace BaseModel.model_to_device (subclasses such as SRModel and NDRModel inherit it)."""
    from basicsr.models.base_model import BaseModel
    BaseModel.model_to_device = _mark(_model_to_device)


# -------------------------------------------------------------------- options
def normalize_local_rank_argv(argv: List[str]) -> List[str]:
    """torch.distributed.launch passes ``--local-rank=N`` but basicsr's argparse only knows ``--local_rank``."""
    out = []
    for arg in argv:
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            arg = '--local_rank' + arg[len('--local-rank'):]
        out.append(arg)
    return out


def default_val_options(opt: dict) -> dict:
    """basicsr's validation reads ``val['suffix']`` (KeyError when absent) and test_pipeline ``val['save_img']``."""
    if opt.get('val') is None and not opt.get('is_train', True):
        opt['val'] = {}
    if opt.get('val') is not None:
        opt['val'].setdefault('suffix', None)
        opt['val'].setdefault('save_img', False)
    return opt


def _opt_argument(argv: List[str]) -> Optional[str]:
    """The ``-opt`` value of a train/test command line (None when absent: basicsr's argparse reports it)."""
    import argparse
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    try:
        return parser.parse_known_args(argv)[0].opt
    except SystemExit:
        return None


@contextlib.contextmanager
def _safe_ordered_yaml() -> Iterator[None]:
    """While parsing, basicsr.utils.options.ordered_yaml gives ndrsr's safe loader (BasicSR's loader runs
    ``!!python/...`` tags: an options file could execute code)."""
    import basicsr.utils.options as options

    from ndrsr.glue.options_io import SafeOrderedLoader
    original = options.ordered_yaml
    options.ordered_yaml = lambda: (SafeOrderedLoader, original()[1])
    try:
        yield
    finally:
        options.ordered_yaml = original


def _patch_parse_options() -> None:
    """Wrap parse_options where train/test pipelines use it: read the file with the safe loader, accept
    --local-rank, default val.suffix/save_img, and check the options (ndrsr.glue.options_check) before BasicSR
    creates anything."""
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options as options
    if _is_patched(options.parse_options):
        return
    original = options.parse_options

    @functools.wraps(original)
    def parse_options(root_path: str, is_train: bool = True) -> Tuple[dict, Any]:
        from ndrsr.glue.options_check import options_problems, required_problems, validate_options
        from ndrsr.glue.options_io import OptionsError, load_options_file
        argv = sys.argv
        sys.argv = normalize_local_rank_argv(argv)  # only while parsing: the copied yml records the real command
        try:
            opt_path = _opt_argument(sys.argv[1:])
            if opt_path is not None:  # what basicsr's parse_options indexes without asking: clear errors first
                raw = load_options_file(opt_path)
                problems = options_problems(raw, is_train) if required_problems(raw, is_train) else []
                if problems:
                    raise OptionsError(problems, header=f'{opt_path}: {len(problems)} problem(s); nothing was run, '
                                                        'created or changed:')
            with _safe_ordered_yaml():
                opt, args = original(root_path, is_train=is_train)
        finally:
            sys.argv = argv
        opt = default_val_options(opt)
        validate_options(opt, is_train, args.opt)  # before any folder is created (docs/training.md)
        return opt, args

    _mark(parse_options, original)
    for module in (options, basicsr.train, basicsr.test):
        module.parse_options = parse_options


def launch_copy_name(experiments_root: str, opt_file: str) -> str:
    """Where this launch's copy of ``opt_file`` goes: ``<root>/<name>.yml`` for the first launch, then
    ``<root>/<name>_<time>.yml`` (``_2``, ``_3`` ... within one second), never over an existing file."""
    from basicsr.utils import get_time_str
    name = osp.basename(opt_file)
    target = osp.join(experiments_root, name)
    if not osp.exists(target):
        return target
    stem, ext = osp.splitext(name)
    base = osp.join(experiments_root, f'{stem}_{get_time_str()}')
    target, n = base + ext, 2
    while osp.exists(target):
        target, n = f'{base}_{n}{ext}', n + 1
    return target


def _copy_opt_file(opt_file: str, experiments_root: str) -> None:
    """basicsr's copy_opt_file writes over ``<root>/<name>.yml``: on --auto_resume after an edit the run lost the
    options it was trained with. Keep every launch's copy (:func:`launch_copy_name`), same header."""
    import time
    target = launch_copy_name(experiments_root, opt_file)
    with open(opt_file, encoding='utf-8') as f:
        text = f.read()
    header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n\n'
    with open(target, 'x', encoding='utf-8') as f:
        f.write(header + text)


def _patch_copy_opt_file() -> None:
    """Replace basicsr.train.copy_opt_file (rank 0 only, as basicsr's)."""
    import basicsr.train
    from basicsr.utils.dist_util import master_only
    if _is_patched(basicsr.train.copy_opt_file):
        return
    basicsr.train.copy_opt_file = _mark(master_only(_copy_opt_file), basicsr.train.copy_opt_file)


def _patch_resume_training() -> None:
    """Replace BaseModel.resume_training with :func:`ndrsr.glue.resume.resume_training` (scheduler from the options)."""
    from basicsr.models.base_model import BaseModel

    from ndrsr.glue.resume import resume_training
    BaseModel.resume_training = _mark(resume_training)


# ----------------------------------------------------------------------- lmdb
def lmdb_map_size(data_path: str, img_path_list: List[str], compress_level: int = 1) -> int:
    """basicsr sizes the LMDB as 10x the first image's PNG bytes: too small for tiny or mixed-size images."""
    import cv2
    page = 4096
    first = cv2.imread(osp.join(data_path, img_path_list[0]), cv2.IMREAD_UNCHANGED)
    first_bytes = cv2.imencode('.png', first, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])[1].nbytes
    total = 0
    for path in img_path_list:  # a stat per image: files larger than the first one count with their own size
        nbytes = max(first_bytes, osp.getsize(osp.join(data_path, path)))
        total += (math.ceil((nbytes + 64) / page) + 1) * page  # overflow pages + a leaf/branch share
    return 10 * total + 256 * page  # basicsr's safety factor, plus meta and B-tree pages


def _patch_make_lmdb() -> None:
    """Give basicsr.utils.lmdb_util.make_lmdb_from_imgs a map size that fits when the caller gives none."""
    import basicsr.utils.lmdb_util as lmdb_util
    if _is_patched(lmdb_util.make_lmdb_from_imgs):
        return
    original = lmdb_util.make_lmdb_from_imgs

    @functools.wraps(original)
    def make_lmdb_from_imgs(data_path, lmdb_path, img_path_list, keys, *args, **kwargs):  # noqa: ANN001
        if len(args) < 5 and kwargs.get('map_size') is None and img_path_list:  # map_size is the 9th parameter
            level = args[1] if len(args) > 1 else kwargs.get('compress_level', 1)
            kwargs['map_size'] = lmdb_map_size(data_path, img_path_list, level)
        return original(data_path, lmdb_path, img_path_list, keys, *args, **kwargs)

    lmdb_util.make_lmdb_from_imgs = _mark(make_lmdb_from_imgs, original)


# The basicsr functions apply_pipeline_fixes replaces: (module, attribute). A class attribute is 'Class.name'.
PIPELINE_TARGETS = (
    ('basicsr.train', 'load_resume_state'), ('basicsr.train', 'make_exp_dirs'), ('basicsr.train', 'parse_options'),
    ('basicsr.test', 'parse_options'), ('basicsr.utils.options', 'parse_options'),
    ('basicsr.utils.options', 'init_dist'), ('basicsr.utils.dist_util', 'init_dist'),
    ('basicsr.utils.dist_util', '_init_dist_pytorch'), ('basicsr.utils.dist_util', '_init_dist_slurm'),
    ('basicsr.models.base_model', 'BaseModel.model_to_device'), ('basicsr.utils.lmdb_util', 'make_lmdb_from_imgs'),
    ('basicsr.train', 'copy_opt_file'), ('basicsr.models.base_model', 'BaseModel.resume_training'),
)


def pipeline_functions() -> dict:
    """``{'module:attribute': the current object}`` of every basicsr function the pipeline fixes replace."""
    import importlib
    out = {}
    for module, attr in PIPELINE_TARGETS:
        obj = importlib.import_module(module)
        for part in attr.split('.'):
            obj = getattr(obj, part)
        out[f'{module}:{attr}'] = obj
    return out


def pipeline_fixes_applied() -> bool:
    """Whether :func:`apply_pipeline_fixes` has run in this process (every target replaced)."""
    return all(_is_patched(f) for f in pipeline_functions().values())


def apply_pipeline_fixes() -> None:
    """Make BasicSR's train / test pipelines and LMDB builder work on this stack: resume, run folders, options
    copies, distributed launch, option parsing and checking, LMDB map size (docs/compat.md lists them).
    Idempotent.

    ndrsr's entry points call it (``ndrsr/train.py``, ``ndrsr/test.py``, ``ndrsr-make-lmdb``);
    ``import ndrsr`` does not, so a project that imports ndrsr for its networks keeps its BasicSR as it was.
    Call it yourself before ``basicsr.train.train_pipeline`` to get the same fixes in your own script.
    """
    _patch_load_resume_state()
    _patch_make_exp_dirs()
    _patch_init_dist()
    _patch_model_to_device()
    _patch_parse_options()
    _patch_make_lmdb()
    _patch_copy_opt_file()
    _patch_resume_training()


apply_import_fixes()
