"""The documented reuse example: BasicSR's stock SRModel + PairedImageDataset with
NDRRestore as network_g, trained through the real pipeline from its option file."""
import os
import sys

import pytest
import torch
import yaml
from conftest import ROOT
from helpers_pipeline import TRAIN, make_pairs, run, write_yaml

from ndrsr.archs import NDRRestore

pytestmark = pytest.mark.slow  # real subprocesses

EXAMPLE = os.path.join(ROOT, 'options', 'examples', 'reuse_srmodel_ndrrestore.yml')


def test_reuse_example_trains_with_stock_srmodel(tmp_path):
    with open(EXAMPLE) as f:
        opt = yaml.safe_load(f)
    assert opt['model_type'] == 'SRModel' and opt['network_g']['type'] == 'NDRRestore'
    dirs = make_pairs(str(tmp_path / 'data'), n=3, size=24)
    # the user's own data and a short budget; everything else exactly as documented
    for key in ('train', 'val'):
        opt['datasets'][key].update(dataroot_gt=dirs['gt'], dataroot_lq=dirs['lq'])
    opt['datasets']['train'].update(gt_size=16, num_worker_per_gpu=0, batch_size_per_gpu=2)
    opt['train']['total_iter'] = 3
    opt['val']['val_freq'] = 3
    opt['logger'].update(print_freq=1, save_checkpoint_freq=3)
    opt['num_gpu'] = 0
    root = tmp_path / 'root'
    proc = run([sys.executable, TRAIN, '-opt', write_yaml(opt, str(tmp_path / 'reuse.yml'))], root=str(root),
               cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    models = root / 'experiments' / opt['name'] / 'models'
    ckpt = torch.load(models / 'net_g_latest.pth', weights_only=True)
    net = NDRRestore(**{k: v for k, v in opt['network_g'].items() if k != 'type'})
    net.load_state_dict(ckpt['params'])  # strict: exactly an NDRRestore
    assert (models / 'net_g_3.pth').exists()


OWN_PROJECT_SCRIPT = r'''
import sys
import ndrsr  # what a BasicSR project does to use ndrsr's networks, datasets and model
import ndrsr.glue.compat
from basicsr.train import train_pipeline  # the project's own train.py: BasicSR's pipeline as shipped
assert not ndrsr.glue.compat.pipeline_fixes_applied()
root, yml = sys.argv[1], sys.argv[2]
sys.argv = ['train.py', '-opt', yml]
train_pipeline(root)
assert not ndrsr.glue.compat.pipeline_fixes_applied()
print('trained with stock basicsr')
'''


def test_ndrmodel_trains_through_stock_basicsr_pipeline(tmp_path):
    """A project that imports ndrsr and runs BasicSR's own train_pipeline (no ndrsr pipeline fixes) trains
    NDRModel, validates and saves its checkpoints (single process; docs/reuse.md says what it does not get)."""
    from helpers_pipeline import train_options
    dirs = make_pairs(str(tmp_path / 'data'))
    opt = train_options(dirs, 'own_project', 'NDRModel', total_iter=2, save_freq=2, val_freq=2)
    opt['num_gpu'] = 0
    yml = write_yaml(opt, str(tmp_path / 'own.yml'))
    script = tmp_path / 'own_train.py'
    script.write_text(OWN_PROJECT_SCRIPT)
    root = tmp_path / 'root'
    proc = run([sys.executable, str(script), str(root), yml], root=str(root), cwd=str(tmp_path))
    assert 'trained with stock basicsr' in proc.stdout
    models = root / 'experiments' / 'own_project' / 'models'
    assert {'net_g_2.pth', 'net_degrad_2.pth', 'net_g_latest.pth', 'net_degrad_latest.pth'} <= set(os.listdir(models))
    assert 'Validation [pairs]' in proc.stdout
