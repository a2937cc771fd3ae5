"""Option dicts for building NDRModel directly in tests (tiny networks, CPU)."""
from copy import deepcopy

from conftest import SMALL_DEGRAD, SMALL_RESTORE


def model_opt(tmp_path, schedule='joint', **train_overrides):
    """A complete BasicSR option dict for NDRModel, as parse_options would produce it."""
    root = str(tmp_path)
    train = {
        'schedule': schedule,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        'degrad_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 1e-8, 'betas': [0.9, 0.999]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
        'grad_clip': 10,
        'ema_decay': 0.999,
        'total_iter': 10,
        'warmup_iter': -1,
    }
    train.update(train_overrides)
    return {
        'name': 'unit', 'model_type': 'NDRModel', 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1,
        'num_gpu': 0, 'scale': 1,
        'network_g': {'type': 'NDRRestore', **deepcopy(SMALL_RESTORE)},
        'network_degrad': {'type': 'NDRDegrad', **deepcopy(SMALL_DEGRAD)},
        'path': {'experiments_root': root, 'models': root, 'training_states': root, 'log': root,
                 'visualization': root, 'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'datasets': {},
        'train': train,
        'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
    }
