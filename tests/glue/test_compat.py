"""Each ndrsr.glue.compat fix, exercised through the basicsr code path that broke (in-process, CPU).

The pipeline fixes are applied here as ndrsr's entry points apply them
(``apply_pipeline_fixes``); that ``import ndrsr`` alone leaves basicsr's functions
untouched is checked in a fresh interpreter. The multi-process fixes (gloo
init_dist, DDP without device_ids, --local-rank from torch.distributed.launch,
auto-resume after SIGKILL) are in tests/glue/test_pipelines.py.
"""
import os
import sys
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
import torch

import ndrsr.glue.compat as compat
from helpers_pipeline import assert_same, inference_options, make_pairs, train_options, write_yaml


compat.apply_pipeline_fixes()  # what ndrsr/train.py, ndrsr/test.py and make_lmdb do before using basicsr


@pytest.fixture(autouse=True)
def _one_thread():
    """The machine is shared: one intra-op thread keeps these small runs fast and stable."""
    torch.set_num_threads(1)
    yield


def parsed(tmp_path, opt_dict, *flags, is_train=True):
    """The option dict exactly as basicsr's (patched) parse_options builds it, rooted at tmp_path/root."""
    import basicsr.train
    yml = write_yaml(opt_dict, str(tmp_path / f'{opt_dict["name"]}.yml'))
    argv = sys.argv
    sys.argv = ['train.py', '-opt', yml, *flags]
    try:
        opt, _ = basicsr.train.parse_options(str(tmp_path / 'root'), is_train=is_train)
    finally:
        sys.argv = argv
    return opt


def trained_run(tmp_path, name='run', iters=(2, 4)):
    """A real SRModel run folder: a few optimizer steps, checkpoints saved by stock BaseModel at ``iters``."""
    from basicsr.models import build_model
    from basicsr.utils import make_exp_dirs
    dirs = make_pairs(str(tmp_path / 'data'))
    opt = parsed(tmp_path, train_options(dirs, name=name))
    make_exp_dirs(opt)
    model = build_model(opt)
    gen = torch.Generator().manual_seed(0)
    for it in range(1, max(iters) + 1):
        model.update_learning_rate(it)
        gt = torch.rand(2, 3, 16, 16, generator=gen)
        model.feed_data({'lq': gt + 0.1 * torch.rand(2, 3, 16, 16, generator=gen), 'gt': gt})
        model.optimize_parameters(it)
        if it in iters:
            model.save(0, it)
    return opt, model


# ----------------------------------------------------------------- 1. torchvision
def test_functional_tensor_alias_lets_basicsr_degradations_import():
    from basicsr.data.degradations import random_add_gaussian_noise_pt
    from torchvision.transforms.functional_tensor import rgb_to_grayscale
    img = torch.rand(1, 3, 8, 8)
    assert rgb_to_grayscale(img).shape == (1, 1, 8, 8)
    assert random_add_gaussian_noise_pt(img, sigma_range=(1, 2), gray_prob=1).shape == img.shape


# ------------------------------------------------------------- 1b. Python 3.12
@pytest.mark.slow
def test_basicsr_archs_import_without_distutils():
    """Python 3.12 has no distutils: a fresh interpreter where it cannot be imported still imports ndrsr + basicsr."""
    import subprocess
    from helpers_pipeline import REPO
    code = (
        'import sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "distutils" or name.startswith("distutils.") or name == "_distutils_hack":\n'
        '            raise ImportError("blocked: " + name)\n'
        'sys.meta_path.insert(0, Block())\n'
        'sys.modules.pop("distutils", None)\n'
        'import ndrsr\n'
        'from basicsr.archs.arch_util import LooseVersion\n'
        'from basicsr.archs import build_network\n'
        'assert LooseVersion("0.26.0") >= LooseVersion("0.9.0") and LooseVersion("1.2") < "1.10"\n'
        'print(type(build_network({"type": "NDRDegrad", "dim": 8})).__name__)\n')
    out = subprocess.run([sys.executable, '-S', '-c', code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': os.pathsep.join([REPO] + sys.path[1:])})
    assert out.returncode == 0 and out.stdout.strip() == 'NDRDegrad', out.stderr[-3000:]


# ------------------------------------------------------------------ 2. CPU resume
def test_resume_state_loads_on_cpu_and_restores_optimizer_and_scheduler(tmp_path):
    import basicsr.train
    from basicsr.models import build_model
    assert not torch.cuda.is_available()  # the case basicsr's storage.cuda(current_device()) breaks
    opt, model = trained_run(tmp_path)
    state_path = osp.join(opt['path']['training_states'], '4.state')
    new = train_options(make_pairs(str(tmp_path / 'data')), name='run')
    new['path']['resume_state'] = state_path
    opt2 = parsed(tmp_path, new)
    state = basicsr.train.load_resume_state(opt2)
    assert state['iter'] == 4 and opt2['path']['pretrain_network_g'].endswith('net_g_4.pth')
    resumed = build_model(opt2)  # loads net_g_4.pth (set by check_resume)
    resumed.resume_training(state)
    assert_same(resumed.optimizers[0].state_dict(), model.optimizers[0].state_dict(), 'optimizer')
    assert_same(resumed.schedulers[0].state_dict(), model.schedulers[0].state_dict(), 'scheduler')
    assert_same(resumed.net_g.state_dict(), model.net_g.state_dict(), 'net_g')
    assert all(v.device.type == 'cpu' for v in state['optimizers'][0]['state'][0].values() if torch.is_tensor(v))


# ---------------------------------------------------- 3. auto-resume from any cwd
def test_auto_resume_finds_the_run_under_root_path_from_another_cwd(tmp_path, monkeypatch):
    import basicsr.train
    opt, _ = trained_run(tmp_path)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # basicsr looked for ./experiments/<name>/training_states
    opt2 = parsed(tmp_path, train_options(make_pairs(str(tmp_path / 'data')), name='run'), '--auto_resume')
    state = basicsr.train.load_resume_state(opt2)
    assert state is not None and state['iter'] == 4
    assert opt2['path']['resume_state'] == osp.join(opt['path']['training_states'], '4.state')
    assert not (elsewhere / 'experiments').exists()


# ------------------------------------------------- 9. only complete checkpoints
def test_auto_resume_skips_a_truncated_state_and_a_truncated_network(tmp_path):
    import basicsr.train
    opt, _ = trained_run(tmp_path, iters=(2, 4, 6))
    states, models = opt['path']['training_states'], opt['path']['models']
    # What stock save_training_state (torch.save in place) leaves when killed mid-write: a truncated 6.state.
    with open(osp.join(states, '6.state'), 'r+b') as f:
        f.truncate(os.path.getsize(f.name) // 2)
    # And a kill in save_network at iteration 4 after an older complete 4.state was kept: a truncated net_g_4.pth.
    with open(osp.join(models, 'net_g_4.pth'), 'r+b') as f:
        f.truncate(100)
    opt2 = parsed(tmp_path, train_options(make_pairs(str(tmp_path / 'data')), name='run'), '--auto_resume')
    state = basicsr.train.load_resume_state(opt2)
    assert state['iter'] == 2
    assert opt2['path']['pretrain_network_g'] == osp.join(models, 'net_g_2.pth')
    assert os.path.getsize(osp.join(states, '6.state')) > 0  # nothing deleted


def _zero_member_bytes(path, member_suffix='/data/0'):
    """Zero bytes inside one tensor's data in a torch zip checkpoint, keeping the zip directory intact (what a
    damaged copy or a bad disk block leaves: torch.load reads it without complaint)."""
    import zipfile
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 64)
        f.write(bytes(min(256, info.file_size - 64)))


def test_auto_resume_skips_checkpoints_with_zeroed_bytes(tmp_path, capsys):
    import basicsr.train
    opt, _ = trained_run(tmp_path, iters=(2, 4, 6))
    states, models = opt['path']['training_states'], opt['path']['models']
    _zero_member_bytes(osp.join(states, '6.state'), '/data.pkl')
    _zero_member_bytes(osp.join(models, 'net_g_4.pth'))
    torch.load(osp.join(models, 'net_g_4.pth'), weights_only=True)  # loads silently: the CRCs are the only sign
    opt2 = parsed(tmp_path, train_options(make_pairs(str(tmp_path / 'data')), name='run'), '--auto_resume')
    state = basicsr.train.load_resume_state(opt2)
    assert state['iter'] == 2 and opt2['path']['pretrain_network_g'] == osp.join(models, 'net_g_2.pth')
    out = capsys.readouterr().out
    assert 'Skip incomplete checkpoint at iteration 6' in out and '6.state is corrupt' in out
    assert 'Skip incomplete checkpoint at iteration 4' in out and 'net_g_4.pth is corrupt' in out
    assert 'CRC-32' in out
    new = train_options(make_pairs(str(tmp_path / 'data')), name='run')
    new['path']['resume_state'] = osp.join(states, '6.state')
    from ndrsr.glue.resume import ResumeError
    with pytest.raises(ResumeError, match=r'6\.state is corrupt: .*CRC-32.*Use an older \.state'):
        basicsr.train.load_resume_state(parsed(tmp_path, new))


def test_explicit_truncated_resume_state_is_a_clear_error(tmp_path):
    import basicsr.train
    opt, _ = trained_run(tmp_path, iters=(2,))
    path = osp.join(opt['path']['training_states'], '2.state')
    with open(path, 'r+b') as f:
        f.truncate(64)
    new = train_options(make_pairs(str(tmp_path / 'data')), name='run')
    new['path']['resume_state'] = path
    with pytest.raises(RuntimeError, match='truncated'):
        basicsr.train.load_resume_state(parsed(tmp_path, new))


def test_auto_resume_without_state_reuses_the_folder_and_fresh_runs_still_archive(tmp_path):
    import basicsr.train
    dirs = make_pairs(str(tmp_path / 'data'))
    opt = parsed(tmp_path, train_options(dirs, name='run'), '--auto_resume')
    root = opt['path']['experiments_root']
    os.makedirs(root)
    with open(osp.join(root, 'notes.txt'), 'w') as f:
        f.write('user data')
    assert basicsr.train.load_resume_state(opt) is None
    basicsr.train.make_exp_dirs(opt)
    assert sorted(os.listdir(osp.dirname(root))) == ['run']
    assert osp.isfile(osp.join(root, 'notes.txt')) and osp.isdir(opt['path']['training_states'])
    fresh = parsed(tmp_path, train_options(dirs, name='run'))  # no --auto_resume: basicsr's archive behaviour
    basicsr.train.make_exp_dirs(fresh)
    archived = [n for n in os.listdir(osp.dirname(root)) if n.startswith('run_archived_')]
    assert len(archived) == 1 and osp.isfile(osp.join(osp.dirname(root), archived[0], 'notes.txt'))


# --------------------------------------------------------- 5. --local-rank
def test_local_rank_with_hyphen_is_accepted_by_parse_options(tmp_path, monkeypatch):
    assert compat.normalize_local_rank_argv(['t.py', '--local-rank=1', '--local-rank', '0', '-opt', 'x']) == \
        ['t.py', '--local_rank=1', '--local_rank', '0', '-opt', 'x']
    argv = ['train.py', '-opt', 'x.yml', '--local-rank=0']
    opt_dict = train_options(make_pairs(str(tmp_path / 'data')), name='run')
    yml = write_yaml(opt_dict, str(tmp_path / 'run.yml'))
    argv[2] = yml
    monkeypatch.setattr(sys, 'argv', list(argv))
    import basicsr.train
    opt, args = basicsr.train.parse_options(str(tmp_path / 'root'), is_train=True)
    assert args.local_rank == 0 and opt['name'] == 'run'
    assert sys.argv == argv  # restored: copy_opt_file records the command as typed


# ------------------------------------------------------------ 7. val.suffix
def test_test_options_without_val_suffix_or_val_get_defaults(tmp_path):
    dirs = make_pairs(str(tmp_path / 'data'))
    weights = tmp_path / 'unused.pth'
    weights.write_bytes(b'')  # parsing checks it exists; it is never loaded here
    opt = parsed(tmp_path, inference_options(dirs, str(weights)), is_train=False)
    assert opt['val']['suffix'] is None and opt['val']['save_img'] is True
    no_val = inference_options(dirs, str(weights))
    del no_val['val']
    opt = parsed(tmp_path, no_val, is_train=False)
    assert opt['val'] == {'suffix': None, 'save_img': False}
    train = parsed(tmp_path, train_options(dirs, name='run'))
    assert 'val' not in train  # training without validation stays without validation


# ----------------------------------------------------------------- 6. LMDB
@pytest.mark.parametrize('sizes', [[4], [8, 64, 64], [4] * 30], ids=['one-tiny', 'first-small', 'many-tiny'])
def test_make_lmdb_from_imgs_fits_small_and_mixed_images(tmp_path, sizes):
    from basicsr.utils import FileClient, imfrombytes
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    rng = np.random.default_rng(0)
    names, keys, images = [], [], []
    for i, size in enumerate(sizes):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f'{i:03d}.png'), img)
        names.append(f'{i:03d}.png')
        keys.append(f'{i:03d}')
        images.append(img)
    db = str(tmp_path / 'out.lmdb')
    make_lmdb_from_imgs(str(tmp_path), db, names, keys)  # map_size=None: basicsr's estimate was MDB_MAP_FULL
    with lmdb.open(db, readonly=True, lock=False) as env:
        assert env.stat()['entries'] == len(sizes)
    client = FileClient('lmdb', db_paths=[db], client_keys=['gt'])
    for key, img in zip(keys, images):
        assert np.array_equal(imfrombytes(client.get(key, 'gt'), float32=False), img)
    with open(osp.join(db, 'meta_info.txt')) as f:
        assert len(f.read().splitlines()) == len(sizes)


# ------------------------------------------------- explicit, idempotent fixes
FRESH_INTERPRETER = r'''
import json
import ndrsr
import ndrsr.glue.compat as compat
functions = compat.pipeline_functions
after_import = functions()
report = {'untouched_on_import': {k: getattr(f, '__module__', '') + ':' + getattr(f, '__qualname__', '')
                                  for k, f in after_import.items() if not getattr(f, '_ndrsr_compat', False)},
          'applied_on_import': compat.pipeline_fixes_applied()}
compat.apply_pipeline_fixes()
first = functions()
compat.apply_pipeline_fixes()
compat.apply_import_fixes()
second = functions()
report['replaced'] = sorted(k for k in first if first[k] is not after_import[k] and first[k]._ndrsr_compat)
report['same_after_second_call'] = sorted(k for k in first if second[k] is first[k])
report['wraps_original'] = sorted(k for k, f in first.items() if getattr(f, '_ndrsr_original', None) is after_import[k])
report['wrappers'] = sorted(k for k, f in first.items() if hasattr(f, '_ndrsr_original'))
print(json.dumps(report))
'''


@pytest.fixture(scope='module')
def fresh_interpreter_report():
    """Apply nothing but ``import ndrsr`` in a new interpreter, then the pipeline fixes twice; what changed."""
    import json
    import subprocess
    from helpers_pipeline import REPO, env
    out = subprocess.run([sys.executable, '-c', FRESH_INTERPRETER], cwd=REPO, env=env(REPO), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_ndrsr_leaves_basicsr_functions_untouched(fresh_interpreter_report):
    """A project that imports ndrsr for its networks keeps its BasicSR as it was."""
    untouched = fresh_interpreter_report['untouched_on_import']
    assert set(untouched) == {f'{m}:{a}' for m, a in compat.PIPELINE_TARGETS}
    assert untouched['basicsr.train:load_resume_state'] == 'basicsr.train:load_resume_state'
    assert untouched['basicsr.utils.options:parse_options'] == 'basicsr.utils.options:parse_options'
    assert untouched['basicsr.models.base_model:BaseModel.model_to_device'] == \
        'basicsr.models.base_model:BaseModel.model_to_device'
    assert fresh_interpreter_report['applied_on_import'] is False


@pytest.mark.slow
def test_pipeline_fixes_replace_every_target_once(fresh_interpreter_report):
    """apply_pipeline_fixes replaces each basicsr function; a second call changes nothing; a wrapper wraps the
    original itself (never a wrapper of a wrapper)."""
    targets = sorted(f'{m}:{a}' for m, a in compat.PIPELINE_TARGETS)
    assert fresh_interpreter_report['replaced'] == targets
    assert fresh_interpreter_report['same_after_second_call'] == targets
    wrappers = fresh_interpreter_report['wrappers']
    assert set(wrappers) >= {'basicsr.train:parse_options', 'basicsr.train:make_exp_dirs',
                             'basicsr.utils.lmdb_util:make_lmdb_from_imgs'}
    assert fresh_interpreter_report['wraps_original'] == wrappers
    import basicsr.test
    import basicsr.train
    assert basicsr.test.parse_options is basicsr.train.parse_options  # one wrapper for both pipelines
