"""Every shipped option file: parses, builds its networks, and builds every dataset it
names on a generated `datasets/` tree that has the real data sets' layout and names."""
import glob
import os

import cv2
import numpy as np
import pytest
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from conftest import ROOT

from ndrsr.data.synthesis import parse_synthesis, synthesis_task

import importlib.util

OPTION_FILES = sorted(glob.glob(os.path.join(ROOT, 'options', '*.yml')) +
                      glob.glob(os.path.join(ROOT, 'options', 'ablation', '*.yml')))
TRAIN_FILES = [f for f in OPTION_FILES if os.path.basename(f) != 'test_all_in_one.yml'
               and 'examples' not in f]


def expected_task(spec):
    """The task tag a source's options give it: ``task``, else the one its synthesis implies."""
    return spec.get('task') or synthesis_task(parse_synthesis(spec['synthesize']))


def _write(path, size=(136, 144), seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    cv2.imwrite(path, img)


SHARED_SIZE = (104, 112)  # above the recipes' largest crop (96)


def _write_shared_tree(shared, splits_dir):
    """../shared/data as the project's own recipes see it (options/train_small_all_in_one.yml): the names of the
    split lists, the real pairing conventions, tiny random images."""
    import shutil
    names = []
    for split in sorted(glob.glob(os.path.join(ROOT, 'options', 'splits', '*.txt'))):
        shutil.copy(split, splits_dir)
    with open(os.path.join(ROOT, 'options', 'splits', 'ndrsr_train_clean_train.txt')) as f:
        names += f.read().split()
    with open(os.path.join(ROOT, 'options', 'splits', 'ndrsr_train_clean_val.txt')) as f:
        names += f.read().split()
    t = f'{shared}/data/train'
    for i, name in enumerate(names):
        _write(f'{t}/noise/gt/{name}', size=SHARED_SIZE, seed=i)
    for i in range(1, 10):
        _write(f'{t}/rain/lq/{i:03d}.png', size=SHARED_SIZE, seed=i)
        _write(f'{t}/rain/gt/{i:03d}.png', size=SHARED_SIZE, seed=20 + i)
    splits = os.path.join(ROOT, 'options', 'splits')
    for folder, split, paired in (('real_noise', 'real_noise', True), ('clean_outdoor', 'clean_outdoor', False),
                                  ('clean_urban', 'clean_urban', False), ('clean_bsds_test', 'clean_bsds_test', False)):
        for part in ('train', 'val'):
            with open(os.path.join(splits, f'ndrsr_train_{split}_{part}.txt')) as f:
                for i, name in enumerate(f.read().split()):
                    _write(f'{t}/{folder}/gt/{name}', size=SHARED_SIZE, seed=i)
                    if paired:
                        _write(f'{t}/{folder}/lq/{name}', size=SHARED_SIZE, seed=50 + i)
    for scene in (1, 2):
        _write(f'{t}/haze/gt/{scene}.png', size=SHARED_SIZE, seed=scene)
        _write(f'{t}/haze/lq/{scene}_1_0.9.png', size=SHARED_SIZE, seed=10 + scene)
    _write(f'{shared}/data/kodak24/gt/kodim01.png', size=SHARED_SIZE)
    _write(f'{shared}/data/samples_rain/lq/rain-1.png', size=SHARED_SIZE)
    _write(f'{shared}/data/samples_rain/gt/norain-1.png', size=SHARED_SIZE, seed=1)
    _write(f'{shared}/data/samples_haze/lq/0001_0.8_0.2.jpg', size=SHARED_SIZE)
    _write(f'{shared}/data/samples_haze/gt/0001.png', size=SHARED_SIZE, seed=1)
    _write(f'{shared}/data/real_noise/lq/photo.png', size=SHARED_SIZE)
    _write(f'{shared}/data/real_rain/lq/001.png', size=SHARED_SIZE)


@pytest.fixture(scope='module')
def data_tree(tmp_path_factory):
    """datasets/ with each paper data set's folder layout and file-naming convention (and ../shared/data)."""
    root = tmp_path_factory.mktemp('tree') / 'repo'
    os.makedirs(root / 'options' / 'splits')
    _write_shared_tree(root.parent / 'shared', root / 'options' / 'splits')
    d = root / 'datasets'
    for i in (1, 2):
        _write(f'{d}/BSD400_WED/{i:04d}.jpg', seed=i)
        _write(f'{d}/BSD68/test{i:03d}.png', seed=i)
        _write(f'{d}/DIV2K/DIV2K_train_HR/{i:04d}.png', seed=i)
        for split in ('train', 'test'):
            _write(f'{d}/Rain100L/{split}/rainy/rain-{i}.png', seed=i)
            _write(f'{d}/Rain100L/{split}/norain/norain-{i}.png', seed=10 + i)
        _write(f'{d}/RESIDE/OTS/hazy/{i:04d}_0.8_0.2.jpg', seed=i)
        _write(f'{d}/RESIDE/OTS/clear/{i:04d}.png', seed=10 + i)
        _write(f'{d}/SOTS/outdoor/hazy/{i:04d}_0.9_0.16.jpg', seed=i)
        _write(f'{d}/SOTS/outdoor/gt/{i:04d}.png', seed=10 + i)
        _write(f'{d}/Set5/GTmod2/img{i}.png', size=(64, 80), seed=i)
        _write(f'{d}/Set5/LRbicx2/img{i}.png', size=(32, 40), seed=i)
        _write(f'{d}/demo/train/photo{i}.png', seed=i)
        _write(f'{d}/demo/val/photo{i}.png', size=(40, 56), seed=i)
    return root


def test_ablation_files_are_generated_from_all_in_one():
    spec = importlib.util.spec_from_file_location('make_ablation', os.path.join(ROOT, 'scripts',
                                                                                'make_ablation_options.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = open(os.path.join(ROOT, 'options', 'train_all_in_one.yml')).read()
    for name in mod.VARIANTS:
        with open(os.path.join(ROOT, 'options', 'ablation', f'{name}.yml')) as f:
            assert f.read() == mod.render(name, base), f'{name}.yml is stale: run scripts/make_ablation_options.py'


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_option_file_builds_networks(path):
    with open(path) as f:
        opt = yaml.safe_load(f)
    net_g = build_network(dict(opt['network_g']))
    assert getattr(net_g, 'upscale', 1) == opt.get('scale', 1)
    if opt.get('network_degrad') and (opt.get('train') or {}).get('schedule') != 'restore_only':
        net_d = build_network(dict(opt['network_degrad']))
        assert net_d.upscale == opt.get('scale', 1)


@pytest.mark.parametrize('path', [f for f in OPTION_FILES if 'ablation' not in f],
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_option_file_datasets_build_on_real_layout(path, data_tree, monkeypatch):
    with open(path) as f:
        opt = yaml.safe_load(f)
    monkeypatch.chdir(data_tree)  # relative dataroots resolve against the working directory, as in BasicSR
    scale = opt.get('scale', 1)
    for key, dopt in opt['datasets'].items():
        dopt = dict(dopt, phase='train' if key == 'train' else 'val', scale=scale)
        dataset = build_dataset(dopt)
        assert len(dataset) > 0
        item = dataset[0]
        gt_h, gt_w = item['gt'].shape[-2:]
        assert item['lq'].shape[-2:] == (gt_h // scale, gt_w // scale)
        assert item['lq'].shape[0] == item['gt'].shape[0] == 3
        if key == 'train':
            assert gt_h == dopt['gt_size']
            # every source's samples carry the task the options give it (its first slot, in order)
            offsets = [sum(dataset.counts[:i]) for i in range(len(dopt['sources']))]
            assert [dataset[i]['task'] for i in offsets] == [expected_task(src) for src in dopt['sources']]
        else:
            assert item['task'] == expected_task(dopt)
