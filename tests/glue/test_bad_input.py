"""Bad input to training and the data tools: clear messages, exit codes, nothing created or executed.

Options that cannot train are refused before anything is created, with every problem
at once (missing data folders, unknown keys with the nearest valid name, mismatched
network sizes, inconsistent dataset options), by ``ndrsr/train.py`` and
``ndrsr-check`` alike; options files never run code; truncated or
empty LMDBs and broken symbolic links are errors naming the file; a killed LMDB
build's temporary folder is cleaned up; resuming refuses a changed network, keeps
every launch's options copy, and follows a changed schedule.

Runs of ndrsr/train.py are real subprocesses under a temporary $NDRSR_ROOT; nothing is
written to the repository.
"""
import os
import re
import subprocess
import sys
from copy import deepcopy
from os import path as osp

import cv2
import numpy as np
import pytest
import yaml
from basicsr.data import build_dataset

from helpers_pipeline import SMALL_DEGRAD, SMALL_RESTORE, TEST, TRAIN, env, sha256, write_yaml
from ndrsr.cli import check as check_mod
from ndrsr.cli.make_lmdb import main as make_lmdb_main
from ndrsr.data.make_lmdb import make_lmdb
from ndrsr.data.pairing import DataLayoutError


def options_problems(*args, **kwargs):
    from ndrsr.glue.options_check import options_problems
    return options_problems(*args, **kwargs)


def validate_options(*args, **kwargs):
    from ndrsr.glue.options_check import validate_options
    return validate_options(*args, **kwargs)


def options_error():
    from ndrsr.glue.options_io import OptionsError
    return OptionsError


# ------------------------------------------------------------------ helpers
def images(folder, n=3, size=24, seed=0, prefix='img'):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(osp.join(str(folder), f'{prefix}{i}.png'), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return str(folder)


def ndr_options(clean, name='run', total_iter=2, save_freq=2, val=True):
    """A complete NDRModel training YAML (as a dict) on a folder of clean images, degraded on the fly."""
    datasets = {'train': {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16, 'use_hflip': True,
                          'use_rot': True, 'io_backend': {'type': 'disk'},
                          'sources': [{'name': 'noise', 'task': 'noise', 'dataroot_gt': clean,
                                       'synthesize': ['noise']},
                                      {'name': 'haze', 'task': 'haze', 'dataroot_gt': clean,
                                       'synthesize': ['haze']}],
                          'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1}}
    if val:
        datasets['val_noise'] = {'name': 'val_noise', 'type': 'TaskValidationDataset', 'task': 'noise',
                                 'dataroot_gt': clean, 'synthesize': ['noise25'], 'io_backend': {'type': 'disk'}}
    return {'name': name, 'model_type': 'NDRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
            'datasets': datasets,
            'network_g': {'type': 'NDRRestore', **deepcopy(SMALL_RESTORE), 'query_dim': 8, 'global_residual': True},
            'network_degrad': {'type': 'NDRDegrad', **deepcopy(SMALL_DEGRAD), 'query_dim': 8},
            'path': {'pretrain_network_g': None, 'resume_state': None},
            'train': {'schedule': 'joint', 'ema_decay': 0, 'grad_clip': 10,
                      'optim_g': {'type': 'Adam', 'lr': 1e-3},
                      'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter],
                                    'restart_weights': [1], 'eta_min': 1e-5},
                      'total_iter': total_iter, 'warmup_iter': -1,
                      'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                      'degrad_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': True}}


def run_py(args, root, cwd, timeout=240):
    """Run ``python ARGS`` (the repository importable, $NDRSR_ROOT=root); returns (exit status, stdout + stderr)."""
    os.makedirs(cwd, exist_ok=True)
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env(root), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return proc.returncode, proc.stdout


def assert_clean_error(rc, out, code=2):
    """Exit status ``code`` (2: what every ndrsr program returns for an error the user can fix), one
    ``train.py: error: ...`` / ``test.py: error: ...`` line as the tools write theirs, no Python traceback."""
    assert rc == code, out[-4000:]
    assert len(re.findall(r'^(train|test)\.py: error: ', out, re.M)) == 1 and 'Traceback' not in out, out[-4000:]


# ------------------------------------------------- training without its data
@pytest.mark.slow
def test_train_without_data_lists_every_missing_root_and_creates_nothing(tmp_path):
    root, cwd = str(tmp_path / 'root'), str(tmp_path / 'cwd')
    opt = ndr_options(str(tmp_path / 'no' / 'clean'))
    opt['datasets']['train']['sources'].append({'name': 'rain', 'task': 'rain', 'pairing': 'rain',
                                                'dataroot_lq': str(tmp_path / 'no' / 'rainy'),
                                                'dataroot_gt': str(tmp_path / 'no' / 'norain')})
    yml = write_yaml(opt, str(tmp_path / 'nodata.yml'))
    rc, out = run_py([TRAIN, '-opt', yml], root, cwd)
    assert_clean_error(rc, out, 2)
    for missing in ('clean', 'rainy', 'norain'):
        assert f"{tmp_path / 'no' / missing} does not exist" in out
    assert 'docs/datasets.md' in out and f'ndrsr-check -opt {yml}' in out
    assert len(out.splitlines()) < 12  # no banner, no options dump
    assert not osp.exists(root) and os.listdir(cwd) == []  # no experiments/, tb_logger/, _archived_ copies


@pytest.mark.slow
def test_data_error_after_the_start_is_a_message_without_traceback(tmp_path):
    """A layout problem only the dataset finds (an unpaired file) ends training with its message alone."""
    root = str(tmp_path / 'root')
    clean = images(tmp_path / 'clean')
    lq = images(tmp_path / 'rainy', n=2, prefix='rain-')
    gt = images(tmp_path / 'norain', n=1, prefix='norain-')
    opt = ndr_options(clean, val=False)
    opt['datasets']['train']['sources'].append({'name': 'rain', 'task': 'rain', 'pairing': 'rain',
                                                'dataroot_lq': lq, 'dataroot_gt': gt})
    rc, out = run_py([TRAIN, '-opt', write_yaml(opt, str(tmp_path / 'unpaired.yml'))], root, str(tmp_path / 'cwd'))
    assert_clean_error(rc, out, 2)
    assert 'rain-1.png not found: expected' in out


@pytest.mark.slow
def test_test_py_without_data_is_a_message_and_creates_nothing(tmp_path):
    root = str(tmp_path / 'root')
    opt = {'name': 'eval', 'model_type': 'NDRModel', 'scale': 1, 'num_gpu': 0,
           'datasets': {'test_1': {'name': 't', 'type': 'TaskValidationDataset', 'task': 'noise',
                                   'dataroot_gt': str(tmp_path / 'missing'), 'synthesize': ['noise25']}},
           'network_g': {'type': 'NDRRestore', **SMALL_RESTORE}, 'path': {'pretrain_network_g': None}}
    rc, out = run_py([TEST, '-opt', write_yaml(opt, str(tmp_path / 'test.yml'))], root, str(tmp_path / 'cwd'))
    assert_clean_error(rc, out, 2)
    assert f"{tmp_path / 'missing'} does not exist" in out and not osp.exists(root)


# ------------------------------------------------- options files never run code
PAYLOAD = 'name: x\nnum_gpu: 0\nmanual_seed: !!python/object/apply:os.system ["touch {sentinel}"]\n'


@pytest.mark.slow
def test_options_files_cannot_run_code_in_check_make_lmdb_and_train(tmp_path, capsys):
    sentinel = tmp_path / 'PWNED'
    yml = tmp_path / 'evil.yml'
    yml.write_text(PAYLOAD.format(sentinel=sentinel) + 'datasets: {}\npath: {}\n')
    assert check_mod.main(['-opt', str(yml)]) == 2
    assert 'python tags are refused' in capsys.readouterr().err
    assert make_lmdb_main(['-opt', str(yml)]) == 2
    assert 'python tags are refused' in capsys.readouterr().err
    root = str(tmp_path / 'root')
    rc, out = run_py([TRAIN, '-opt', str(yml)], root, str(tmp_path / 'cwd'))
    assert_clean_error(rc, out, 2)
    assert 'python tags are refused' in out
    assert not sentinel.exists() and not osp.exists(root)
    # plain options still read, !!float and ordered mappings included
    from ndrsr.glue.options_io import load_options_file
    (tmp_path / 'ok.yml').write_text('b: 1\na: !!float 1e-4\n')
    assert list(load_options_file(str(tmp_path / 'ok.yml')).items()) == [('b', 1), ('a', 1e-4)]


@pytest.mark.slow
def test_yaml_syntax_error_in_options_is_a_message_in_check_and_train(tmp_path, capsys):
    yml = tmp_path / 'broken.yml'
    yml.write_text('name: x\ndatasets:\n  train: {type: [\n')
    assert check_mod.main(['-opt', str(yml)]) == 2
    assert 'is not valid YAML' in capsys.readouterr().err
    assert check_mod.main(['-opt', str(tmp_path / 'absent.yml')]) == 2
    assert 'cannot read options file' in capsys.readouterr().err
    root = str(tmp_path / 'root')
    rc, out = run_py([TRAIN, '-opt', str(yml)], root, str(tmp_path / 'cwd'))
    assert_clean_error(rc, out, 2)
    assert 'is not valid YAML' in out and not osp.exists(root)


# ------------------------------------------------- one validation, every problem
def test_unknown_keys_are_reported_with_the_nearest_valid_name(tmp_path, capsys):
    clean = images(tmp_path / 'clean')
    opt = ndr_options(clean)
    opt['datasets']['train']['use_flip'] = False
    opt['train']['schedul'] = 'alternating'
    opt['train'].pop('schedule')
    opt['network_g']['query_dims'] = 8
    opt['datasets']['val_noise']['synthesise'] = ['noise15']
    problems = options_problems(opt)
    assert "datasets.train: unknown option 'use_flip' (did you mean 'use_hflip'?)" in problems
    assert "train: unknown option 'schedul' (did you mean 'schedule'?)" in problems
    assert "network_g: unknown option 'query_dims' (did you mean 'query_dim'?)" in problems
    assert "datasets.val_noise: unknown option 'synthesise' (did you mean 'synthesize'?)" in problems
    assert len(problems) == 4
    yml = write_yaml(opt, str(tmp_path / 'typos.yml'))
    assert check_mod.main(['-opt', yml]) == 1
    out = capsys.readouterr().out
    assert "unknown option 'use_flip' (did you mean 'use_hflip'?)" in out and 'FAIL options' in out
    # the datasets themselves refuse the same keys
    with pytest.raises(DataLayoutError, match="unknown option 'use_flip'"):
        build_dataset(dict(opt['datasets']['train'], phase='train', scale=1))
    with pytest.raises(DataLayoutError, match="unknown option 'synthesise'"):
        build_dataset(dict(opt['datasets']['val_noise'], phase='val', scale=1))


def test_every_shipped_options_file_validates():
    import glob
    from conftest import ROOT
    files = glob.glob(osp.join(ROOT, 'options', '**', '*.yml'), recursive=True)
    files = [f for f in files if 'splits' not in f]
    assert len(files) > 15
    for path in files:
        with open(path) as f:
            opt = yaml.safe_load(f)
        assert options_problems(opt, is_train='train' in opt['datasets'], data=False) == [], path


def test_network_mismatches_are_one_line_each(tmp_path):
    clean = images(tmp_path / 'clean')
    opt = ndr_options(clean)
    opt['scale'] = 2
    opt['datasets']['train']['gt_size'] = 16
    opt['datasets']['train']['sources'] = [{'name': 'sr', 'dataroot_gt': clean, 'synthesize': ['down2']}]
    opt['datasets'].pop('val_noise')
    opt['network_degrad']['upscale'] = 2
    opt['network_degrad']['query_dim'] = 16
    problems = options_problems(opt)
    assert problems == [
        'network_g.upscale is 1 but scale is 2: they must be equal (set network_g.upscale: 2)',
        'network_degrad.query_dim is 16 but network_g.query_dim is 8: NDR-Degrad reads the degradations '
        'NDR-Restore recognises, so they must be equal']
    opt['train']['schedule'] = 'restore_only'  # no NDR-Degrad is built: its query_dim does not matter
    assert len(options_problems(opt)) == 1
    with pytest.raises(options_error()) as err:
        validate_options(opt, opt_path='x.yml')
    assert str(err.value).splitlines() == ['x.yml: 1 problem(s); nothing was run, created or changed:',
                                           '  - ' + problems[0]]


@pytest.mark.parametrize('case', ['gt_size', 'names', 'ratio'])
def test_check_and_training_refuse_the_same_dataset_options(tmp_path, capsys, case):
    """gt_size not a multiple of scale, duplicate source names, ratio on some sources only: the check used to pass
    them and training refused them."""
    clean = images(tmp_path / 'clean', size=32)
    opt = ndr_options(clean)
    train = opt['datasets']['train']
    expected = {'gt_size': 'gt_size 15 must be a multiple of scale 1',
                'names': "source names must be unique, ['noise'] appear more than once",
                'ratio': "some sources set ratio and others do not (['haze'])"}[case]
    if case == 'gt_size':
        opt['scale'] = 2
        train['gt_size'] = 15
        train['sources'] = [{'name': 'sr', 'dataroot_gt': clean, 'synthesize': ['down2']}]
        opt['network_g']['upscale'] = opt['network_degrad']['upscale'] = 2
        opt['datasets'].pop('val_noise')
        expected = expected.replace('scale 1', 'scale 2')
    elif case == 'names':
        train['sources'][1]['name'] = 'noise'
    else:
        train['sources'][0]['ratio'] = 0.5
    yml = write_yaml(opt, str(tmp_path / f'{case}.yml'))
    assert check_mod.main(['-opt', yml, '--no-read']) == 1
    assert expected in capsys.readouterr().out
    with pytest.raises(options_error(), match=re.escape(expected)):
        validate_options(opt)
    with pytest.raises(DataLayoutError, match=re.escape(expected)):
        build_dataset(dict(train, phase='train', scale=opt['scale']))


def test_scheduler_shorter_than_training_is_refused(tmp_path):
    opt = ndr_options(images(tmp_path / 'clean'), total_iter=10)
    opt['train']['scheduler']['periods'] = [6]
    assert options_problems(opt) == [
        'train.scheduler.periods [6] add up to 6 but train.total_iter is 10: the cosine schedule would end before '
        'training does. Make the periods add up to 10 (e.g. add a period of 4 with its restart weight)']


# ------------------------------------------------- LMDBs
SIGBUS_SAFE_READ = r'''
import sys
import ndrsr
from basicsr.data import build_dataset
from ndrsr.data.pairing import DataLayoutError
import yaml
opt = yaml.safe_load(open(sys.argv[1]))['datasets']['train']
try:
    ds = build_dataset(dict(opt, phase='train', scale=1))
    for i in range(len(ds)):
        ds[i]
    print('READ ALL')
except DataLayoutError as e:
    print('REFUSED', e)
'''


@pytest.mark.slow
@pytest.mark.parametrize('cut', ['half', 'last_page'])
def test_truncated_lmdb_is_refused_by_the_check_and_the_dataset(tmp_path, cut):
    """LMDB maps data.mdb into memory: reading a page beyond a truncated file killed the process with SIGBUS."""
    clean = images(tmp_path / 'clean', n=6, size=64, seed=1)
    lm = str(tmp_path / 'clean.lmdb')
    make_lmdb(clean, lm, verbose=False)
    data = osp.join(lm, 'data.mdb')
    size = osp.getsize(data)
    os.truncate(data, size // 2 if cut == 'half' else size - 4096)
    opt = ndr_options(lm, val=False)
    opt['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    yml = write_yaml(opt, str(tmp_path / 'lmdb.yml'))
    root = str(tmp_path / 'root')
    rc, out = run_py(['-m', 'ndrsr.cli.check', '-opt', yml, '--no-read'], root, str(tmp_path))
    assert rc == 1, out
    assert f'{data} is truncated' in out and 'ndrsr-make-lmdb' in out
    rc, out = run_py(['-c', SIGBUS_SAFE_READ, yml], root, str(tmp_path))
    assert rc == 0, f'exit {rc} (SIGBUS is -7):\n{out[-3000:]}'
    assert 'REFUSED' in out and f'{data} is truncated' in out
    with pytest.raises(options_error(), match=re.escape(f'{data} is truncated')):
        validate_options(opt)  # training refuses it before creating anything


def test_empty_data_mdb_is_a_clear_error(tmp_path):
    clean = images(tmp_path / 'clean')
    lm = str(tmp_path / 'clean.lmdb')
    make_lmdb(clean, lm, verbose=False)
    os.truncate(osp.join(lm, 'data.mdb'), 0)
    opt = ndr_options(lm, val=False)['datasets']['train']
    with pytest.raises(DataLayoutError, match=r'data\.mdb is empty \(0 bytes\).*make-lmdb'):
        build_dataset(dict(opt, io_backend={'type': 'lmdb'}, phase='train', scale=1))


@pytest.mark.slow
def test_interrupted_lmdb_builds_are_cleaned_up(tmp_path, capsys):
    from ndrsr.data.make_lmdb import OWNER_FILE, clear_interrupted_builds
    clean = images(tmp_path / 'clean')
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    killed = out / '.set.lmdb.abc123.tmp'  # what a SIGKILL during a build leaves
    killed.mkdir()
    (killed / 'data.mdb').write_bytes(b'\0' * 4096)
    (killed / OWNER_FILE).write_text(f'{os.uname().nodename} {dead.pid}\n')
    unknown = out / '.set.lmdb.old999.tmp'  # no owner file: cannot tell, left alone
    unknown.mkdir()
    other = out / '.other.lmdb.x.tmp'  # another output's build: not ours to touch
    other.mkdir()
    assert make_lmdb(clean, str(out / 'set.lmdb'), verbose=False) == 3
    assert sorted(os.listdir(out)) == ['.other.lmdb.x.tmp', '.set.lmdb.old999.tmp', 'set.lmdb']
    assert OWNER_FILE not in os.listdir(out / 'set.lmdb')
    assert 'delete it yourself if no build of it is running' in capsys.readouterr().err
    running = out / '.next.lmdb.r.tmp'
    running.mkdir()
    (running / OWNER_FILE).write_text(f'{os.uname().nodename} {os.getpid()}\n')
    with pytest.raises(FileExistsError, match='another build of .*next.lmdb is running'):
        clear_interrupted_builds(str(out / 'next.lmdb'))
    assert running.is_dir()


# ------------------------------------------------- data folders
def test_broken_symlinks_in_a_data_folder_are_reported(tmp_path, capsys):
    clean = images(tmp_path / 'clean')
    os.symlink(str(tmp_path / 'gone.png'), osp.join(clean, 'dangling.png'))
    os.symlink(osp.join(clean, 'loop_b.png'), osp.join(clean, 'loop_a.png'))
    os.symlink(osp.join(clean, 'loop_a.png'), osp.join(clean, 'loop_b.png'))
    os.symlink(osp.join(clean, 'img0.png'), osp.join(clean, 'fine.png'))  # a working link is an image
    opt = ndr_options(clean, val=False)
    with pytest.raises(DataLayoutError, match=r'3 broken symbolic link\(s\).*dangling\.png, loop_a\.png, loop_b\.png'):
        build_dataset(dict(opt['datasets']['train'], phase='train', scale=1))
    assert check_mod.main(['-opt', write_yaml(opt, str(tmp_path / 'o.yml')), '--no-read']) == 1
    assert 'dangling.png' in capsys.readouterr().out
    os.remove(osp.join(clean, 'dangling.png'))
    os.remove(osp.join(clean, 'loop_a.png'))
    os.remove(osp.join(clean, 'loop_b.png'))
    assert len(build_dataset(dict(opt['datasets']['train'], phase='train', scale=1)).sources[0].items) == 4


# ------------------------------------------------- resuming a run
def _experiment(root, name='run'):
    return osp.join(root, 'experiments', name)


@pytest.mark.slow
def test_auto_resume_refuses_a_changed_network_keeps_every_options_copy_and_extends_the_schedule(tmp_path):
    root, cwd = str(tmp_path / 'root'), str(tmp_path / 'cwd')
    clean = images(tmp_path / 'clean')
    opt = ndr_options(clean, total_iter=2, save_freq=2, val=False)
    yml = str(tmp_path / 'run.yml')
    rc, out = run_py([TRAIN, '-opt', write_yaml(opt, yml)], root, cwd)
    assert rc == 0, out[-4000:]
    exp = _experiment(root)
    copy = osp.join(exp, 'run.yml')
    saved = sha256(copy)
    before = sorted(os.listdir(exp))

    changed = deepcopy(opt)
    changed['network_g']['dim'] = 16
    rc, out = run_py([TRAIN, '-opt', write_yaml(changed, yml), '--auto_resume'], root, cwd)
    assert_clean_error(rc, out, 2)
    assert f"network_g.dim: 8 in the run's saved options {copy}, 16 now" in out
    assert sorted(os.listdir(exp)) == before and sha256(copy) == saved  # nothing touched
    assert sorted(os.listdir(osp.join(root, 'tb_logger'))) == ['run']
    from ndrsr.lib.weights import network_options
    assert network_options('network_g', osp.join(exp, 'models', 'net_g_2.pth'))[0]['dim'] == 8

    # extending the finished run: more iterations and a longer cosine period (BasicSR: TypeError at iteration 3)
    longer = deepcopy(opt)
    longer['train']['total_iter'] = 4
    longer['train']['scheduler']['periods'] = [4]
    rc, out = run_py([TRAIN, '-opt', write_yaml(longer, yml), '--auto_resume'], root, cwd)
    assert rc == 0, out[-4000:]
    assert 'Resuming training from epoch: 0, iter: 2.' in out, out[-4000:]
    assert re.search(r'scheduler 0 \(CosineAnnealingRestartLR\) follows the options file from iteration 2 on, '
                     r'not the saved schedule \(periods \[2\] -> \[4\]', out), out[-4000:]
    assert osp.isfile(osp.join(exp, 'models', 'net_g_4.pth'))
    copies = sorted(n for n in os.listdir(exp) if n.endswith('.yml'))
    assert len(copies) == 2 and copies[0] == 'run.yml' and sha256(copy) == saved  # each launch's copy kept
    with open(osp.join(exp, copies[1])) as f:
        assert yaml.safe_load(f)['train']['total_iter'] == 4


def test_errors_from_dataloader_workers_are_reported_without_their_traceback():
    from ndrsr.data.image_io import ImageReadError
    from ndrsr.glue.entry import user_message
    wrapped = ImageReadError('Caught ImageReadError in DataLoader worker process 0.\n'
                             'Original Traceback (most recent call last):\n'
                             '  File "x.py", line 1, in <module>\n'
                             'ndrsr.data.image_io.ImageReadError: /d/a.png: PNG stream has no IEND chunk (file '
                             'truncated). Re-export it.\n')
    assert user_message(wrapped) == '/d/a.png: PNG stream has no IEND chunk (file truncated). Re-export it.'
    assert user_message(DataLayoutError('plain\nmessage')) == 'plain\nmessage'
