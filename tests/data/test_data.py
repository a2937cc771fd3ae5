"""Data layer: pairing rules, image reading, synthesis, training/validation datasets, LMDB builder, layout check.

Every test builds its own small folders of generated images under tmp_path.
"""
import os
import random
import subprocess
import zlib
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler

from ndrsr.cli import check as check_mod
from ndrsr.data.degradations import add_gaussian_noise, add_haze, add_rain, bicubic_down, depth_proxy
from ndrsr.data.synthesis import apply_synthesis, parse_synthesis, synthesis_scale, synthesis_task
from ndrsr.data.image_io import ImageReadError, decode_image
from ndrsr.cli.make_lmdb import main as make_lmdb_main
from ndrsr.data.make_lmdb import make_lmdb
from ndrsr.data.pairing import DataLayoutError, make_rule, parse_meta_info_line
from ndrsr.data.task_val_dataset import TaskValidationDataset

from conftest import BIN, ROOT  # noqa: E402


# --------------------------------------------------------------------------- helpers
def smooth_image(h, w, seed, channels=3):
    """A deterministic natural-ish uint8 image (H, W, C): smooth colour blobs plus fine texture."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((4, 4, channels)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)
    img = np.clip(img + 0.05 * rng.standard_normal((h, w, channels)), 0, 1)
    return (img * 255).round().astype(np.uint8)


def write(path, img):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return str(path)


def make_rain(root, n=3, h=40, w=48):
    """Rain100L naming: lq/rain-N.png <-> gt/norain-N.png."""
    for i in range(1, n + 1):
        gt = smooth_image(h, w, i)
        write(osp.join(root, 'gt', f'norain-{i}.png'), gt)
        write(osp.join(root, 'lq', f'rain-{i}.png'), np.clip(gt.astype(int) + 40, 0, 255).astype(np.uint8))
    return osp.join(root, 'lq'), osp.join(root, 'gt')


def make_haze(root, h=40, w=52):
    """RESIDE naming: lq/NNNN_A_B.jpg <-> gt/NNNN.png (two hazy versions of 0001)."""
    names = {'0001_0.8_0.2': 1, '0001_0.9_0.12': 1, '0002_0.85_0.08': 2}
    for stem, gid in names.items():
        write(osp.join(root, 'lq', f'{stem}.jpg'), smooth_image(h, w, 100 + len(stem) + gid))
    for gid in (1, 2):
        write(osp.join(root, 'gt', f'{gid:04d}.png'), smooth_image(h, w, 200 + gid))
    return osp.join(root, 'lq'), osp.join(root, 'gt')


def make_sr(root, n=2, h=40, w=48):
    """Same names, lq is gt / 2."""
    for i in range(n):
        gt = smooth_image(h, w, 300 + i)
        write(osp.join(root, 'gt', f'img{i}.png'), gt)
        write(osp.join(root, 'lq', f'img{i}.png'), cv2.resize(gt, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return osp.join(root, 'lq'), osp.join(root, 'gt')


def make_clean(root, n=3, h=40, w=44):
    for i in range(n):
        write(osp.join(root, f'photo{i}.png'), smooth_image(h, w, 400 + i))
    return str(root)


def train_opt(sources, gt_size=32, scale=1, **kw):
    opt = dict(name='train', type='MixedDegradationDataset', phase='train', scale=scale, gt_size=gt_size,
               use_hflip=True, use_rot=True, io_backend={'type': 'disk'}, sources=sources,
               batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt.update(kw)
    return opt


def samples(ds, n=None, seed=0):
    np.random.seed(seed)
    random.seed(seed)
    return [ds[i] for i in range(len(ds) if n is None else n)]


def assert_same_samples(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x['task'] == y['task']
        assert torch.equal(x['lq'], y['lq']) and torch.equal(x['gt'], y['gt'])


def to_lmdb(folder, tmp_path, name):
    out = str(tmp_path / 'lmdb' / f'{name}.lmdb')
    make_lmdb(folder, out, verbose=False)
    return out


# --------------------------------------------------------------------------- pairing and reading
def test_pairing_rules_cover_real_conventions():
    assert make_rule('rain').gt_stem('rain-12') == 'norain-12'
    assert make_rule('rain').gt_stem('norain-12') is None
    assert make_rule('reside').gt_stem('0001_0.8_0.2') == '0001'
    assert make_rule('haze').gt_stem('1400_10_0.74') == '1400'
    assert make_rule(None).gt_stem('baby') == 'baby'
    assert make_rule({'pattern': r'(?P<id>\d+)_rainy', 'gt': '{id}_clean'}).gt_stem('07_rainy') == '07_clean'
    assert make_rule({'pattern': r'img(\d+)-lr', 'gt': 'img{0}'}).gt_stem('img3-lr') == 'img3'
    assert make_rule({'filename_tmpl': '{}x2'}).gt_stem('babyx2') == 'baby'
    with pytest.raises(DataLayoutError, match='unknown pairing rule'):
        make_rule('rainy')
    with pytest.raises(DataLayoutError, match='not a group'):
        make_rule({'pattern': r'(?P<id>\d+)', 'gt': '{name}'})
    # BasicSR's meta_info lines, names with dots (RESIDE) included
    assert parse_meta_info_line('0001_0.8_0.2.png (413,550,3) 1') == '0001_0.8_0.2.png'
    assert parse_meta_info_line('baby.png (256,256,3)') == 'baby.png'
    assert parse_meta_info_line('  ') is None


def test_decode_formats_and_corrupt_files(tmp_path):
    gray = smooth_image(20, 24, 1, channels=1)[:, :, 0]
    out = decode_image(cv2.imencode('.png', gray)[1].tobytes(), 'g.png')
    assert out.shape == (20, 24, 3) and out.dtype == np.float32
    assert np.array_equal(out[..., 0], out[..., 2]) and np.allclose(out[..., 0], gray / 255.)
    with pytest.raises(ImageReadError, match=r'g\.png: grayscale.*gray: convert'):
        decode_image(cv2.imencode('.png', gray)[1].tobytes(), 'g.png', gray='error')
    rgba = np.dstack([smooth_image(20, 24, 2), np.zeros((20, 24), np.uint8)])
    out = decode_image(cv2.imencode('.png', rgba)[1].tobytes(), 'a.png')
    assert out.shape == (20, 24, 3) and np.allclose(out, rgba[..., :3] / 255.)  # alpha dropped, not composited
    deep = (np.arange(20 * 24 * 3, dtype=np.uint16).reshape(20, 24, 3) * 37)
    out = decode_image(cv2.imencode('.png', deep)[1].tobytes(), 'd.png')
    assert np.allclose(out, deep / 65535., atol=1e-7)  # 16-bit precision kept
    png = cv2.imencode('.png', smooth_image(20, 24, 3))[1].tobytes()
    jpg = cv2.imencode('.jpg', smooth_image(20, 24, 3))[1].tobytes()
    for content, what in ((png[:len(png) // 2], 'truncated'), (jpg[:len(jpg) // 2], 'truncated'),
                          (b'not an image at all', 'cannot be decoded'), (b'', 'empty')):
        with pytest.raises(ImageReadError, match=f'bad.png.*{what}'):
            decode_image(content, 'bad.png')
    with pytest.raises(ImageReadError, match='no data'):
        decode_image(None, 'x.lmdb key a')


# --------------------------------------------------------------------------- synthesis
def test_synthesis_is_seeded_pure_and_plausible():
    img = smooth_image(64, 64, 5).astype(np.float32) / 255.
    original = img.copy()
    steps = parse_synthesis(['noise', 'rain', 'haze', 'down2'])
    a = apply_synthesis(img, steps, np.random.default_rng(1))
    b = apply_synthesis(img, steps, np.random.default_rng(1))
    c = apply_synthesis(img, steps, np.random.default_rng(2))
    assert a.shape == (32, 32, 3) and a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert synthesis_scale(steps) == 2 and synthesis_task(steps) == 'noise+rain+haze+sr'
    assert np.array_equal(img, original)  # input untouched (the steps write to copies)
    # noise: the requested sigma (on a mid-grey image, no clipping)
    grey = np.full((128, 128, 3), 0.5, np.float32)
    assert abs((add_gaussian_noise(grey, 25, np.random.default_rng(0)) - grey).std() * 255 - 25) < 0.5
    # bicubic down of a constant image is the constant, MATLAB imresize shape rule
    assert np.allclose(bicubic_down(grey, 2), 0.5, atol=1e-6) and bicubic_down(grey, 2).shape == (64, 64, 3)
    with pytest.raises(ValueError, match='multiple of scale'):
        bicubic_down(grey[:63], 2)
    # rain only brightens, in a minority of pixels
    rainy = add_rain(img, np.random.default_rng(0), 0.004, 20, 10, 0.8)
    assert (rainy >= img - 1e-6).all() and 0.01 < (rainy > img + 0.02).mean() < 0.5
    # haze: I = J t + A (1 - t) moves every pixel towards A, far (top) more than near (bottom)
    depth = depth_proxy(img, np.random.default_rng(0))
    assert depth.shape == (64, 64) and 0 <= depth.min() and depth.max() <= 1
    assert depth[:8].mean() > depth[-8:].mean()
    hazy = add_haze(img, 1.5, 0.9, depth)
    assert (np.abs(hazy - 0.9) <= np.abs(img - 0.9) + 1e-6).all()
    assert np.abs(hazy - img)[:8].mean() > np.abs(hazy - img)[-8:].mean()
    for bad, msg in ((['blur'], 'unknown synthesis step'), ([{'type': 'noise', 'sigmas': 3}], 'unknown keys'),
                     (['down'], 'needs a scale'), ([{'type': 'rain', 'length': [30, 10]}], 'range')):
        with pytest.raises(ValueError, match=msg):
            parse_synthesis(bad)


# --------------------------------------------------------------------------- training dataset
def test_real_naming_conventions_through_options(tmp_path):
    rain_lq, rain_gt = make_rain(tmp_path / 'rain')
    haze_lq, haze_gt = make_haze(tmp_path / 'haze')
    clean = make_clean(tmp_path / 'clean')
    ds = build_dataset(train_opt([
        dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain'),
        dict(name='haze', task='haze', dataroot_lq=haze_lq, dataroot_gt=haze_gt, pairing='reside'),
        dict(name='noise', dataroot_gt=clean, synthesize=['noise']),
    ]))
    assert len(ds) == 3 + 3 + 3
    got = samples(ds)
    pairs = {(osp.basename(s['lq_path']), osp.basename(s['gt_path'])) for s in got[:6]}
    assert pairs == {('rain-1.png', 'norain-1.png'), ('rain-2.png', 'norain-2.png'), ('rain-3.png', 'norain-3.png'),
                     ('0001_0.8_0.2.jpg', '0001.png'), ('0001_0.9_0.12.jpg', '0001.png'),
                     ('0002_0.85_0.08.jpg', '0002.png')}
    assert [s['task'] for s in got] == ['rain'] * 3 + ['haze'] * 3 + ['noise'] * 3
    for s in got:
        assert set(s) == {'lq', 'gt', 'lq_path', 'gt_path', 'task'}
        assert s['lq'].shape == s['gt'].shape == (3, 32, 32) and s['lq'].dtype == torch.float32
        assert 0 <= s['lq'].min() and s['lq'].max() <= 1
    # paired samples keep their pixel correspondence through crop + flips: rain lq = gt + 40/255 (unclipped pixels)
    lq, gt = got[0]['lq'], got[0]['gt']
    mask = gt < (255 - 40) / 255.
    assert torch.allclose((lq - gt)[mask], torch.full_like(lq[mask], 40 / 255.), atol=1e-6)


def test_clean_folder_trains_every_task(tmp_path):
    """The demo: one folder of clean photos, every task synthesised on the fly, lq sizes matching per scale."""
    clean = make_clean(tmp_path / 'photos')
    ds1 = build_dataset(train_opt([dict(name=t, dataroot_gt=clean, synthesize=[t]) for t in
                                   ('noise', 'rain', 'haze', 'downup2')]))
    tasks = {}
    for s in samples(ds1):
        tasks.setdefault(s['task'], []).append(s)
        assert s['lq'].shape == s['gt'].shape == (3, 32, 32)
        assert not torch.equal(s['lq'], s['gt'])
    assert sorted(tasks) == ['haze', 'noise', 'rain', 'sr']
    ds2 = build_dataset(train_opt([dict(name='sr', dataroot_gt=clean, synthesize=['down2']),
                                   dict(name='noisy_sr', task='noise+sr', dataroot_gt=clean,
                                        synthesize=[{'type': 'noise', 'sigma': [15, 25, 50]}, 'down2'])], scale=2))
    for s in samples(ds2):
        assert s['gt'].shape == (3, 32, 32) and s['lq'].shape == (3, 16, 16)
    assert {s['task'] for s in samples(ds2)} == {'sr', 'noise+sr'}
    with pytest.raises(DataLayoutError, match='shrinks lq by 1 but the dataset scale is 2'):
        build_dataset(train_opt([dict(name='noise', dataroot_gt=clean, synthesize=['noise'])], scale=2))


def test_disk_and_lmdb_give_identical_samples(tmp_path):
    rain_lq, rain_gt = make_rain(tmp_path / 'rain')
    haze_lq, haze_gt = make_haze(tmp_path / 'haze')
    clean = make_clean(tmp_path / 'clean')
    disk = [dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain'),
            dict(name='haze', task='haze', dataroot_lq=haze_lq, dataroot_gt=haze_gt, pairing='reside', repeat=2),
            dict(name='synth', dataroot_gt=clean, synthesize=['noise', 'rain', 'haze']),
            dict(name='haze_gt_noise', dataroot_gt=haze_gt, synthesize=['noise'])]  # shares the haze gt LMDB
    lmdbs = {f: to_lmdb(f, tmp_path, n) for n, f in (('rain_lq', rain_lq), ('rain_gt', rain_gt), ('haze_lq', haze_lq),
                                                    ('haze_gt', haze_gt), ('clean', clean))}
    lm = [{**s, **{k: lmdbs[s[k]] for k in ('dataroot_lq', 'dataroot_gt') if k in s}} for s in disk]
    a = build_dataset(train_opt(disk))
    b = build_dataset(train_opt(lm, io_backend={'type': 'lmdb'}))
    assert len(a) == len(b) == 3 + 6 + 3 + 2
    assert_same_samples(samples(a, seed=11), samples(b, seed=11))
    assert samples(b, 1)[0]['lq_path'] == 'rain-1' and samples(b, 1)[0]['gt_path'] == 'norain-1'  # BasicSR keys
    # scale 2: paired x2 folders and clean [noise, down2]
    sr_lq, sr_gt = make_sr(tmp_path / 'sr')
    disk2 = [dict(name='sr', task='sr', dataroot_lq=sr_lq, dataroot_gt=sr_gt),
             dict(name='nsr', dataroot_gt=clean, synthesize=['noise', 'down2'])]
    lm2 = [dict(disk2[0], dataroot_lq=to_lmdb(sr_lq, tmp_path, 'sr_lq'), dataroot_gt=to_lmdb(sr_gt, tmp_path, 'sr_gt')),
           dict(disk2[1], dataroot_gt=lmdbs[clean])]
    a2 = build_dataset(train_opt(disk2, scale=2))
    b2 = build_dataset(train_opt(lm2, scale=2, io_backend={'type': 'lmdb'}))
    assert_same_samples(samples(a2, seed=5), samples(b2, seed=5))
    # a different seed gives different samples (the comparison above can fail)
    assert not torch.equal(samples(a2, seed=6)[-1]['lq'], samples(a2, seed=5)[-1]['lq'])


def test_lmdb_made_by_basicsr_is_readable(tmp_path):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    rain_lq, rain_gt = make_rain(tmp_path / 'rain')
    haze_lq, haze_gt = make_haze(tmp_path / 'haze')
    out = {}
    for name, folder in (('rain_lq', rain_lq), ('rain_gt', rain_gt), ('haze_lq', haze_lq), ('haze_gt', haze_gt)):
        files = sorted(os.listdir(folder))
        out[name] = str(tmp_path / f'{name}.lmdb')
        make_lmdb_from_imgs(folder, out[name], files, [osp.splitext(f)[0] for f in files])
    disk = [dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain'),
            dict(name='haze', task='haze', dataroot_lq=haze_lq, dataroot_gt=haze_gt, pairing='reside')]
    lm = [dict(disk[0], dataroot_lq=out['rain_lq'], dataroot_gt=out['rain_gt']),
          dict(disk[1], dataroot_lq=out['haze_lq'], dataroot_gt=out['haze_gt'])]
    assert_same_samples(samples(build_dataset(train_opt(disk)), seed=3),
                        samples(build_dataset(train_opt(lm, io_backend={'type': 'lmdb'})), seed=3))


def test_task_proportions_match_ratios_and_repeats(tmp_path):
    a = make_clean(tmp_path / 'a', n=2)
    b = make_clean(tmp_path / 'b', n=5)
    c = make_clean(tmp_path / 'c', n=1)
    ratio = {'noise': 0.5, 'rain': 0.3, 'haze': 0.2}
    ds = build_dataset(train_opt([dict(name='noise', dataroot_gt=a, synthesize=['noise'], ratio=5),
                                  dict(name='rain', dataroot_gt=b, synthesize=['rain'], ratio=3),
                                  dict(name='haze', dataroot_gt=c, synthesize=['haze'], ratio=2)]))
    # every image is in the epoch at least once, proportions as configured
    assert ds.counts == [round(0.5 * 17), round(0.3 * 17), round(0.2 * 17)] and min(ds.counts[1], 5) == 5
    sampler = EnlargedSampler(ds, num_replicas=1, rank=0, ratio=40)
    counts = dict.fromkeys(ratio, 0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for i in sampler:
            counts[ds.locate(i)[0].task] += 1
    total = sum(counts.values())
    for task, p in ratio.items():
        assert abs(counts[task] / total - p) < 0.02, (counts, ratio)
    # the tasks the sampler draws are the tasks the samples carry
    np.random.seed(0)
    random.seed(0)
    for i in list(iter(sampler))[:12]:
        assert ds[i]['task'] == ds.locate(i)[0].task
    # repeat counts (the released setting: haze x1, rain x120, noise x3)
    ds = build_dataset(train_opt([dict(name='haze', dataroot_gt=c, synthesize=['haze']),
                                  dict(name='rain', dataroot_gt=a, synthesize=['rain'], repeat=120),
                                  dict(name='noise', dataroot_gt=b, synthesize=['noise'], repeat=3)]))
    assert ds.counts == [1, 240, 15] and len(ds) == 256
    assert ds.proportions() == pytest.approx({'haze': 1 / 256, 'rain': 240 / 256, 'noise': 15 / 256})
    with pytest.raises(DataLayoutError, match='either give every source a ratio'):
        build_dataset(train_opt([dict(name='a', dataroot_gt=a, synthesize=['haze'], ratio=1),
                                 dict(name='b', dataroot_gt=b, synthesize=['rain'])]))


def test_multiworker_dataloader_is_seeded_and_backend_independent(tmp_path):
    rain_lq, rain_gt = make_rain(tmp_path / 'rain', n=2)
    clean = make_clean(tmp_path / 'clean', n=2)
    disk = [dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain', repeat=2),
            dict(name='noise', dataroot_gt=clean, synthesize=['noise', 'haze'], repeat=2)]
    lm = [dict(disk[0], dataroot_lq=to_lmdb(rain_lq, tmp_path, 'rl'), dataroot_gt=to_lmdb(rain_gt, tmp_path, 'rg')),
          dict(disk[1], dataroot_gt=to_lmdb(clean, tmp_path, 'c'))]

    def run(sources, **kw):
        opt = train_opt(sources, num_worker_per_gpu=2, **kw)
        ds = build_dataset(opt)
        loader = build_dataloader(ds, opt, num_gpu=0, dist=False, sampler=EnlargedSampler(ds, 1, 0, 1), seed=7)
        return [b for b in loader]

    first, again, on_lmdb = run(disk), run(disk), run(lm, io_backend={'type': 'lmdb'})
    assert len(first) == 4 and first[0]['lq'].shape == (2, 3, 32, 32) and len(first[0]['task']) == 2
    for x, y, z in zip(first, again, on_lmdb):
        assert x['task'] == y['task'] == z['task']
        assert torch.equal(x['lq'], y['lq']) and torch.equal(x['lq'], z['lq']) and torch.equal(x['gt'], z['gt'])


# --------------------------------------------------------------------------- validation datasets
def test_validation_noise_is_fixed_per_image_across_runs_and_workers(tmp_path):
    clean = make_clean(tmp_path / 'bsd', n=3, h=37, w=45)
    opt = dict(name='bsd_25', type='TaskValidationDataset', phase='val', dataroot_gt=clean, synthesize=['noise25'],
               io_backend={'type': 'disk'}, scale=1)

    def run(o, workers):
        ds = build_dataset(o)
        loader = torch.utils.data.DataLoader(ds, batch_size=1, shuffle=False, num_workers=workers)
        return [b for b in loader]

    np.random.seed(1)
    a = run(opt, 0)
    np.random.seed(2)  # global state must not matter
    b = run(opt, 2)
    lm = run(dict(opt, dataroot_gt=to_lmdb(clean, tmp_path, 'bsd'), io_backend={'type': 'lmdb'}), 2)
    assert [x['task'][0] for x in a] == ['noise'] * 3
    for x, y, z in zip(a, b, lm):
        assert x['lq'].shape == x['gt'].shape == (1, 3, 37, 45)  # whole image, no crop
        assert torch.equal(x['lq'], y['lq']) and torch.equal(x['lq'], z['lq'])
    # the noise is the documented function of the file name: crc32(stem) seeds the generator
    gt = cv2.imread(osp.join(clean, 'photo1.png')).astype(np.float32) / 255.
    rng = np.random.default_rng([0, zlib.crc32(b'photo1')])
    expect = add_gaussian_noise(gt, 25, rng)[:, :, ::-1].transpose(2, 0, 1)
    assert np.array_equal(a[1]['lq'][0].numpy(), expect)
    assert abs(float((a[1]['lq'] - a[1]['gt']).std()) * 255 - 25) < 3
    # another seed option gives another (still fixed) set; distinct images get distinct noise
    c = run(dict(opt, seed=1), 0)
    assert not torch.equal(c[0]['lq'], a[0]['lq'])
    n0, n2 = a[0]['lq'] - a[0]['gt'], a[2]['lq'] - a[2]['gt']
    assert not torch.equal(n0, n2)


def test_validation_paired_and_scale2(tmp_path):
    haze_lq, haze_gt = make_haze(tmp_path / 'haze')
    ds = TaskValidationDataset(dict(name='sots', task='haze', dataroot_lq=haze_lq, dataroot_gt=haze_gt,
                                    pairing='reside', io_backend={'type': 'disk'}))
    assert len(ds) == 3 and ds[0]['lq'].shape == ds[0]['gt'].shape == (3, 40, 52) and ds[0]['task'] == 'haze'
    clean = make_clean(tmp_path / 'odd', n=1, h=33, w=41)
    ds = TaskValidationDataset(dict(name='x2', dataroot_gt=clean, synthesize=['down2'], scale=2))
    s = ds[0]
    assert s['gt'].shape == (3, 32, 40) and s['lq'].shape == (3, 16, 20) and s['task'] == 'sr'
    # paired x2 whose gt has an extra row/column is cropped like BasicSR does
    write(tmp_path / 'p' / 'gt' / 'a.png', smooth_image(41, 45, 1))
    write(tmp_path / 'p' / 'lq' / 'a.png', smooth_image(20, 22, 2))
    s = TaskValidationDataset(dict(name='p', task='sr', dataroot_lq=str(tmp_path / 'p' / 'lq'),
                                   dataroot_gt=str(tmp_path / 'p' / 'gt'), scale=2))[0]
    assert s['gt'].shape == (3, 40, 44) and s['lq'].shape == (3, 20, 22)


# --------------------------------------------------------------------------- bad input
def test_bad_layouts_raise_errors_naming_file_and_fix(tmp_path):
    rain_lq, rain_gt = make_rain(tmp_path / 'rain')
    src = dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain')
    missing = str(tmp_path / 'nope')
    with pytest.raises(DataLayoutError, match=f'dataroot_gt folder {missing} does not exist. Check the path'):
        build_dataset(train_opt([dict(src, dataroot_gt=missing)]))
    write(osp.join(rain_lq, 'rain-9.png'), smooth_image(40, 48, 9))  # lq without gt
    with pytest.raises(DataLayoutError, match=r'gt image for .*rain-9\.png not found: expected .*norain-9\.\*.*'
                                              r"pairing rule 'rain'[\s\S]*Fix: .*unpaired: ignore"):
        build_dataset(train_opt([src]))
    ds = build_dataset(train_opt([dict(src, unpaired='ignore')]))  # skipping is opt-in
    assert len(ds) == 3 and osp.exists(osp.join(rain_lq, 'rain-9.png'))  # nothing deleted
    os.remove(osp.join(rain_lq, 'rain-9.png'))
    write(osp.join(rain_gt, 'norain-8.png'), smooth_image(40, 48, 8))  # gt without lq
    with pytest.raises(DataLayoutError, match=r'gt image .*norain-8\.png has no lq image'):
        build_dataset(train_opt([src]))
    os.remove(osp.join(rain_gt, 'norain-8.png'))
    with pytest.raises(DataLayoutError, match=r"unknown option 'dataroot_hq' \(did you mean 'dataroot_(lq|gt)'\?\)"):
        build_dataset(train_opt([dict(src, dataroot_hq='x')]))
    with pytest.raises(DataLayoutError, match='needs synthesize'):
        build_dataset(train_opt([dict(name='c', dataroot_gt=rain_gt)]))


def test_bad_images_raise_errors_naming_file_and_fix(tmp_path):
    def first_sample(sources, **kw):
        return samples(build_dataset(train_opt(sources, **kw)), 1)[0]

    # mismatched sizes, scale 1 and scale 2
    write(tmp_path / 'm' / 'lq' / 'a.png', smooth_image(40, 48, 1))
    write(tmp_path / 'm' / 'gt' / 'a.png', smooth_image(40, 50, 1))
    m = dict(name='m', task='x', dataroot_lq=str(tmp_path / 'm' / 'lq'), dataroot_gt=str(tmp_path / 'm' / 'gt'))
    with pytest.raises(DataLayoutError, match=r'size mismatch: lq .*lq/a\.png is 40x48 .* gt .*gt/a\.png is 40x50'):
        first_sample([m])
    with pytest.raises(DataLayoutError, match='with scale 2 the gt should be 80x96'):
        first_sample([m], scale=2)
    # corrupt and truncated files
    for name, content in (('corrupt.png', b'\x89PNG\r\n\x1a\n garbage IEND....'),
                          ('cut.jpg', cv2.imencode('.jpg', smooth_image(40, 48, 1))[1].tobytes()[:500])):
        folder = tmp_path / name
        write(folder / 'ok.png', smooth_image(40, 48, 1))
        (folder / name).write_bytes(content)
        ds = build_dataset(train_opt([dict(name='c', dataroot_gt=str(folder), synthesize=['noise'])]))
        with pytest.raises(ImageReadError, match=rf'{name}: .*(Re-export|remove it)'):
            samples(ds)
    # grayscale / RGBA / 16-bit are converted (documented), grayscale rejected on request
    odd = tmp_path / 'odd'
    write(odd / 'g.png', smooth_image(40, 48, 1, channels=1))
    write(odd / 'a.png', np.dstack([smooth_image(40, 48, 2), np.full((40, 48), 7, np.uint8)]))
    write(odd / 'd.png', smooth_image(40, 48, 3).astype(np.uint16) * 257)
    for s in samples(build_dataset(train_opt([dict(name='o', dataroot_gt=str(odd), synthesize=['noise'])]))):
        assert s['gt'].shape == (3, 32, 32)
    with pytest.raises(ImageReadError, match=r'g\.png: grayscale'):
        samples(build_dataset(train_opt([dict(name='o', dataroot_gt=str(odd), synthesize=['noise'])], gray='error')))
    # smaller than gt_size: error naming the file and the options, or padded on request
    small = make_clean(tmp_path / 'small', n=1, h=20, w=44)
    with pytest.raises(DataLayoutError,
                       match=r'photo0\.png is 20x44, smaller than the gt crop 32x32.*small_images: pad'):
        first_sample([dict(name='s', dataroot_gt=small, synthesize=['noise'])])
    s = first_sample([dict(name='s', dataroot_gt=small, synthesize=['noise'])], small_images='pad')
    assert s['gt'].shape == (3, 32, 32)


def test_bad_lmdbs_raise_errors_naming_file_and_fix(tmp_path):
    clean = make_clean(tmp_path / 'clean')
    lm = to_lmdb(clean, tmp_path, 'clean')
    src = dict(name='n', dataroot_gt=lm, synthesize=['noise'])
    opt = train_opt([src], io_backend={'type': 'lmdb'})
    meta = osp.join(lm, 'meta_info.txt')
    lines = open(meta).read()
    with open(meta, 'a') as f:
        f.write('ghost.png (40,44,3) 1\n')
    with pytest.raises(DataLayoutError, match=rf"key 'ghost' is listed in {meta} but missing from the LMDB"):
        build_dataset(opt)
    os.remove(meta)
    with pytest.raises(DataLayoutError, match=rf'{lm} has no meta_info.txt.*make-lmdb'):
        build_dataset(opt)
    with open(meta, 'w') as f:
        f.write(lines)
    with pytest.raises(DataLayoutError, match=r"must end with '\.lmdb'"):
        build_dataset(train_opt([dict(src, dataroot_gt=clean)], io_backend={'type': 'lmdb'}))
    assert len(build_dataset(opt)) == 3


# --------------------------------------------------------------------------- tools
def test_make_lmdb_is_safe_and_sizes_its_map(tmp_path):
    folder = tmp_path / 'imgs'
    write(folder / 'a_tiny.png', smooth_image(4, 4, 1))  # BasicSR would size the map from this one
    rng = np.random.default_rng(0)
    for i in range(3):  # incompressible, much larger than the first
        write(folder / f'b{i}.png', rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    out = str(tmp_path / 'out' / 'set.lmdb')
    assert make_lmdb(str(folder), out, initial_map_size=64 * 1024, verbose=False) == 4  # grows the map on demand
    assert open(osp.join(out, 'meta_info.txt')).read().splitlines() == [
        'a_tiny.png (4,4,3) 1', 'b0.png (96,96,3) 1', 'b1.png (96,96,3) 1', 'b2.png (96,96,3) 1']
    before = sorted(os.listdir(out)), open(osp.join(out, 'data.mdb'), 'rb').read()
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        make_lmdb(str(folder), out, verbose=False)
    assert make_lmdb_main([str(folder), out]) == 2
    assert (sorted(os.listdir(out)), open(osp.join(out, 'data.mdb'), 'rb').read()) == before  # untouched
    # a corrupt image aborts the build: no LMDB, no temporary folder, the source folder intact
    (folder / 'c_bad.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
    out2 = str(tmp_path / 'out' / 'bad.lmdb')
    with pytest.raises(ImageReadError, match=r'c_bad\.jpg'):
        make_lmdb(str(folder), out2, verbose=False)
    assert sorted(os.listdir(tmp_path / 'out')) == ['set.lmdb']
    assert sorted(os.listdir(folder)) == ['a_tiny.png', 'b0.png', 'b1.png', 'b2.png', 'c_bad.jpg']


@pytest.mark.slow
def test_check_reports_every_problem_and_exit_status(tmp_path, capsys):
    import yaml
    rain_lq, rain_gt = make_rain(tmp_path / 'rain')
    haze_lq, haze_gt = make_haze(tmp_path / 'haze')
    clean = make_clean(tmp_path / 'clean')
    opt = {'scale': 1, 'datasets': {
        'train': train_opt([dict(name='rain', task='rain', dataroot_lq=rain_lq, dataroot_gt=rain_gt, pairing='rain'),
                            dict(name='haze', task='haze', dataroot_lq=haze_lq, dataroot_gt=haze_gt, pairing='reside'),
                            dict(name='noise', dataroot_gt=clean, synthesize=['noise'])]),
        'val_25': dict(name='v', type='TaskValidationDataset', dataroot_gt=clean, synthesize=['noise25'])}}
    good = tmp_path / 'good.yml'
    good.write_text(yaml.safe_dump(opt))
    assert check_mod.main(['-opt', str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK   datasets.train source 1 'haze': task haze, paired, disk, 3 pairs" in out and '4/4 sources OK' in out
    write(osp.join(rain_lq, 'rain-7.png'), smooth_image(40, 48, 7))  # unpaired
    write(osp.join(rain_lq, 'rain-6.png'), smooth_image(40, 48, 6))  # unpaired
    (tmp_path / 'clean' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nbroken')  # unreadable
    write(tmp_path / 'clean' / 'tiny.png', smooth_image(16, 60, 1))  # smaller than the crop
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(opt))
    assert check_mod.main(['-opt', str(bad)]) == 1
    out = capsys.readouterr().out
    assert 'rain-6.png not found' in out and 'rain-7.png not found' in out
    assert "FAIL datasets.train source 0 'rain': task rain, paired, disk, 3 pairs" in out
    assert 'unreadable: ' in out and 'broken.png' in out
    assert 'smaller than crop: ' in out and 'tiny.png is 16x60' in out
    # the console script, as users run it
    proc = subprocess.run([osp.join(BIN, 'ndrsr-check'), '-opt', str(bad), '--no-read'], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and 'broken.png' not in proc.stdout and 'rain-7.png not found' in proc.stdout


# --------------------------------------------------------------------------- synthesis additions
def test_clean_step_is_identity_and_tagged_clean():
    from ndrsr.data.synthesis import apply_synthesis, parse_synthesis, synthesis_task
    steps = parse_synthesis(['clean'])
    img = np.random.default_rng(0).random((16, 20, 3), dtype=np.float32)
    out = apply_synthesis(img, steps, np.random.default_rng(1))
    assert np.array_equal(out, img) and synthesis_task(steps) == 'clean'
    with pytest.raises(ValueError, match='unknown keys'):
        parse_synthesis([{'type': 'clean', 'sigma': 3}])


def test_rain_defaults_reproduce_the_original_streaks():
    """width/blur at their defaults draw nothing extra from the generator: old options give the same samples."""
    from ndrsr.data.degradations import add_rain
    from ndrsr.data.synthesis import parse_synthesis
    img = np.full((48, 48, 3), 0.3, np.float32)
    step = parse_synthesis(['rain'])[0]
    a = step.apply(img, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    d, ln, ang, it = (rng.uniform(*r) for r in ((0.002, 0.006), (10, 30), (-25, 25), (0.5, 0.9)))
    b = add_rain(img, rng, d, ln, ang, it)
    assert np.array_equal(a, b)


def test_rain_width_and_blur_widen_the_streaks():
    from ndrsr.data.degradations import rain_layer
    thin = rain_layer(96, 96, np.random.default_rng(0), 0.003, 20, 0)
    wide = rain_layer(96, 96, np.random.default_rng(0), 0.003, 20, 0, width=3.0)
    blurred = rain_layer(96, 96, np.random.default_rng(0), 0.003, 20, 0, blur=1.0)
    assert (wide > 0.05).mean() > 2 * (thin > 0.05).mean()
    assert (blurred > 0.01).mean() > (thin > 0.01).mean()


def test_haze_tint_gives_a_coloured_airlight():
    from ndrsr.data.synthesis import parse_synthesis
    img = np.zeros((32, 32, 3), np.float32)
    grey = parse_synthesis([{'type': 'haze', 'beta': 3.0, 'airlight': 0.8}])[0].apply(img, np.random.default_rng(2))
    tinted = parse_synthesis([{'type': 'haze', 'beta': 3.0, 'airlight': 0.8, 'tint': 0.1}])[0].apply(
        img, np.random.default_rng(2))
    assert np.ptp(grey.mean(axis=(0, 1))) < 1e-6  # grey airlight: channels equal
    assert np.ptp(tinted.mean(axis=(0, 1))) > 0.01


TONE = {'type': 'tone', 'contrast': [0.6, 0.8], 'brightness': [0.1, 0.2], 'gamma': [0.7, 0.9],
        'saturation': [0.5, 0.7], 'gain': 0.08}


def test_tone_changes_the_photo_itself_gt_and_lq_alike(tmp_path):
    """[tone, clean]: a flatter, brighter photo that is its own target; [tone, noise]: noise on that photo."""
    from ndrsr.data.degradations import adjust_tone
    img = smooth_image(40, 44, 3).astype(np.float32) / 255.
    flat = adjust_tone(img, contrast=0.6, brightness=0.15)
    assert flat.std() < 0.7 * img.std() and flat.mean() > img.mean() + 0.1
    assert np.array_equal(adjust_tone(img), img)  # the defaults change nothing
    grey = adjust_tone(img, saturation=0.0)
    assert np.abs(grey - grey.mean(axis=2, keepdims=True)).max() < 1e-6
    clean = make_clean(tmp_path / 'bsd', n=2, h=40, w=44)
    ds = build_dataset(train_opt([{'name': 'toned', 'task': 'clean', 'dataroot_gt': clean,
                                   'synthesize': [TONE, 'clean']}]))
    plain = build_dataset(train_opt([{'name': 'plain', 'task': 'clean', 'dataroot_gt': clean,
                                      'synthesize': ['clean']}]))
    for toned, ref in zip(samples(ds, seed=3), samples(plain, seed=3)):
        assert torch.equal(toned['lq'], toned['gt']) and toned['task'] == 'clean'
        assert toned['gt'].std() < 0.85 * ref['gt'].std() and toned['gt'].mean() > ref['gt'].mean() + 0.05
    noisy = build_dataset(train_opt([{'name': 'n', 'task': 'noise', 'dataroot_gt': clean,
                                      'synthesize': [TONE, 'noise25']}]))
    s = samples(noisy, 1, seed=4)[0]
    assert abs(float((s['lq'] - s['gt']).std()) * 255 - 25) < 5  # the noise is added to the toned gt
    # validation: fixed per image, gt toned too
    val = dict(name='v', type='TaskValidationDataset', phase='val', dataroot_gt=clean, synthesize=[TONE, 'clean'],
               io_backend={'type': 'disk'}, scale=1)
    a, b = build_dataset(val)[0], build_dataset(val)[0]
    assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], a['gt'])
    assert not torch.equal(a['gt'], build_dataset(dict(val, synthesize=['clean']))[0]['gt'])


def test_tone_on_a_real_pair_changes_both_images_the_same_way():
    from ndrsr.data.degradations import adjust_tone
    from ndrsr.data.synthesis import synthesize_pair
    gt = smooth_image(32, 32, 1).astype(np.float32) / 255.
    lq = smooth_image(32, 32, 2).astype(np.float32) / 255.
    steps = parse_synthesis([TONE, 'clean'])
    new_gt, new_lq = synthesize_pair(gt, lq, steps, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    c, br, g, s = (rng.uniform(*TONE[k]) for k in ('contrast', 'brightness', 'gamma', 'saturation'))
    gains = rng.uniform(-0.08, 0.08, size=3)
    assert np.allclose(new_gt, adjust_tone(gt, c, br, g, s, gains), atol=1e-6)
    assert np.allclose(new_lq, adjust_tone(lq, c, br, g, s, gains), atol=1e-6)


def test_tone_must_lead_and_needs_a_degradation():
    with pytest.raises(ValueError, match='before every degradation'):
        parse_synthesis(['noise', TONE])
    with pytest.raises(ValueError, match='degrades nothing'):
        parse_synthesis([TONE])
    with pytest.raises(ValueError, match='unknown keys'):
        parse_synthesis([{'type': 'tone', 'sigma': 3}, 'clean'])
    assert synthesis_task(parse_synthesis(['tone', 'haze'])) == 'haze'


def test_sources_without_tone_give_the_samples_they_gave_before(tmp_path):
    """The pair-aware synthesis applies degradations to the gt crop exactly as apply_synthesis did."""
    from ndrsr.data.synthesis import synthesize_pair
    img = smooth_image(40, 44, 5).astype(np.float32) / 255.
    steps = parse_synthesis(['noise', 'rain', 'haze'])
    gt, lq = synthesize_pair(img, None, steps, np.random.default_rng(11))
    assert gt is img and np.array_equal(lq, apply_synthesis(img, steps, np.random.default_rng(11)))


def test_synthesis_scope_image_hazes_the_scene_before_the_crop(tmp_path):
    """Haze on a uniform grey photo 3 crops tall: with ``synthesis_scope: image`` the depth is the whole scene's,
    so a crop spans a third of the depth range; on the crop (the default) every crop spans all of it."""
    write(tmp_path / 'photos' / 'grey.png', np.full((288, 96, 3), 51, np.uint8))
    beta, airlight, grey = 2.0, 0.9, 51 / 255

    def depth_spans(scope):
        source = {'name': 'haze', 'task': 'haze', 'dataroot_gt': str(tmp_path / 'photos'), 'repeat': 12,
                  'synthesize': [{'type': 'haze', 'depth': 'row', 'beta': beta, 'airlight': airlight}]}
        if scope:
            source['synthesis_scope'] = scope
        ds = build_dataset(train_opt([source], gt_size=96, use_hflip=False, use_rot=False))
        spans = []
        for s in samples(ds):
            lq = s['lq'].numpy().mean(axis=(0, 2))  # per-row mean, (96,)
            t = np.clip((airlight - lq) / (airlight - grey), 1e-4, 1)
            depth = -np.log(t) / beta
            spans.append(depth.max() - depth.min())
        return np.array(spans)

    whole, crop = depth_spans('image'), depth_spans(None)
    assert crop.min() > 0.9
    assert whole.max() < 0.5
    with pytest.raises(DataLayoutError, match='synthesis_scope'):
        bad = {'name': 'haze', 'dataroot_gt': str(tmp_path / 'photos'), 'synthesize': ['haze'],
               'synthesis_scope': 'scene'}
        build_dataset(train_opt([bad], gt_size=96))
