"""NDRModel: what each schedule updates, losses, checkpoints, NaN handling, pretrained loading."""
import os

import pytest
import torch
from basicsr.models import build_model
from model_options import model_opt

from ndrsr.models.ndr_model import NDRModel


# Without weight decay, a parameter with zero gradient stays exactly where it is under Adam.
NO_DECAY = {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0.0}


def batch(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(2, 3, size, size, generator=g)
    return {'gt': gt, 'lq': (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1),
            'task': ['noise', 'noise'], 'lq_path': ['a.png', 'b.png']}


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def changed(before, net):
    return {k for k, v in net.state_dict().items() if not torch.equal(before[k], v)}


def make(tmp_path, schedule, **kw):
    model = build_model(model_opt(tmp_path, schedule, **kw))
    assert isinstance(model, NDRModel)
    return model


def test_joint_updates_both_networks_and_ndr(tmp_path):
    model = make(tmp_path, 'joint')
    g0, d0 = snapshot(model.net_g), snapshot(model.net_degrad)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_restore', 'l_degrad'}
    assert changed(g0, model.net_g) == set(g0)  # every NDRRestore tensor moves (Adam, both losses)
    assert changed(d0, model.net_degrad) == set(d0)


def test_joint_ndr_receives_degradation_loss(tmp_path):
    """With pixel loss weight 0, the NDR still moves in joint: the degradation loss reaches it."""
    model = make(tmp_path, 'joint', pixel_opt={'type': 'L1Loss', 'loss_weight': 0.0}, optim_g=NO_DECAY)
    g0 = snapshot(model.net_g)
    model.feed_data(batch())
    model.optimize_parameters(1)
    moved = changed(g0, model.net_g)
    assert 'ndr.atoms' in moved and 'query.0.project.weight' in moved
    assert 'output.weight' not in moved  # the decoder is not on the degradation path


def test_restore_only_has_no_degradation_path(tmp_path):
    model = make(tmp_path, 'restore_only', pixel_opt={'type': 'L1Loss', 'loss_weight': 0.0}, optim_g=NO_DECAY)
    assert not hasattr(model, 'net_degrad') and len(model.optimizers) == 1
    g0 = snapshot(model.net_g)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_restore'}
    assert 'ndr.atoms' not in changed(g0, model.net_g)  # zero restoration loss, no degradation loss
    model2 = make(tmp_path, 'restore_only')
    g0 = snapshot(model2.net_g)
    model2.feed_data(batch())
    model2.optimize_parameters(1)
    assert 'ndr.atoms' in changed(g0, model2.net_g)  # the restoration loss alone does move it


def test_alternating_steps_update_exactly_their_parameters(tmp_path):
    model = make(tmp_path, 'alternating')
    g_params = dict(model.net_g.named_parameters())
    recog = {id(p) for p in model.recognition_parameters()}
    recog_names = {k for k, p in g_params.items() if id(p) in recog}
    assert recog_names == {k for k in g_params if k == 'ndr.atoms' or k.startswith('query.')}
    d_ids = {id(p) for g in model.optimizer_degrad.param_groups for p in g['params']}
    assert d_ids == {id(p) for p in model.net_degrad.parameters()} | recog

    model.feed_data(batch())
    # restoration step alone: every NDRRestore parameter, nothing of NDRDegrad
    g0, d0 = snapshot(model.net_g), snapshot(model.net_degrad)
    model._restoration_step(1)
    assert changed(g0, model.net_g) == set(g0) and not changed(d0, model.net_degrad)
    # degradation step alone: NDRDegrad, the NDR and the queries; the encoder trunk and decoder stay
    g1, d1 = snapshot(model.net_g), snapshot(model.net_degrad)
    model._degradation_step(1)
    assert changed(d1, model.net_degrad) == set(d1)
    assert changed(g1, model.net_g) == recog_names


def test_non_finite_loss_stops_before_update_and_names_iteration(tmp_path):
    model = make(tmp_path, 'joint')
    model.save(0, 5)
    saved = os.path.join(tmp_path, 'net_g_5.pth')
    before_file = open(saved, 'rb').read()
    g0 = snapshot(model.net_g)
    data = batch()
    data['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    with pytest.raises(FloatingPointError, match='iteration 7'):
        model.optimize_parameters(7)
    assert not changed(g0, model.net_g)
    assert open(saved, 'rb').read() == before_file


def test_save_writes_complete_set_and_loads_back(tmp_path):
    model = make(tmp_path, 'alternating')
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.save(0, 1)
    names = sorted(os.listdir(tmp_path))
    assert {'net_g_1.pth', 'net_degrad_1.pth', '1.state'} <= set(names)
    assert not [n for n in names if '.tmp' in n]
    g = torch.load(os.path.join(tmp_path, 'net_g_1.pth'), weights_only=True)
    assert set(g) == {'params', 'params_ema', 'network_options'}
    assert g['network_options'] == {'network_g': dict(model.opt['network_g'])}  # how to build it, wherever copied
    d = torch.load(os.path.join(tmp_path, 'net_degrad_1.pth'), weights_only=True)
    assert d['network_options'] == {'network_degrad': dict(model.opt['network_degrad'])}
    state = torch.load(os.path.join(tmp_path, '1.state'), weights_only=True)
    assert state['iter'] == 1 and len(state['optimizers']) == 2 and len(state['schedulers']) == 2

    opt = model_opt(tmp_path / 'b', 'alternating')
    opt['path']['pretrain_network_g'] = os.path.join(tmp_path, 'net_g_1.pth')
    opt['path']['pretrain_network_degrad'] = os.path.join(tmp_path, 'net_degrad_1.pth')
    loaded = build_model(opt)
    for a, b in zip(loaded.net_degrad.state_dict().values(), model.net_degrad.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(loaded.net_g.state_dict().values(), model.net_g.state_dict().values()):
        assert torch.equal(a, b)
    loaded.resume_training(state)
    assert loaded.optimizer_degrad.state_dict()['state'].keys() == model.optimizer_degrad.state_dict()['state'].keys()


def test_loads_converter_output(tmp_path, reference):
    from ndrsr.lib.convert import convert_file
    src = tmp_path / 'released.pth'
    torch.save(reference['state_dict'], src)
    convert_file(str(src), str(tmp_path / 'conv'))
    opt = model_opt(tmp_path, 'joint')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'conv' / 'net_g.pth')
    opt['path']['pretrain_network_degrad'] = str(tmp_path / 'conv' / 'net_degrad.pth')
    model = build_model(opt)
    model.feed_data({'lq': reference['lq']})
    model.test()
    assert (model.output - reference['restored']).abs().max() < 1e-5


def test_unconverted_released_file_gets_clear_error(tmp_path, reference):
    src = tmp_path / 'model_L.pth'
    torch.save(reference['state_dict'], src)
    opt = model_opt(tmp_path, 'joint')
    opt['path']['pretrain_network_g'] = str(src)
    with pytest.raises(KeyError, match='ndrsr-convert'):
        build_model(opt)


def test_missing_degradation_network_is_explained(tmp_path):
    opt = model_opt(tmp_path, 'joint')
    opt['network_degrad'] = None
    with pytest.raises(ValueError, match='network_degrad'):
        build_model(opt)


def test_partial_checkpoints_from_a_killed_save_are_cleared(tmp_path):
    """A SIGKILL during atomic_torch_save leaves only `<name>.tmp-<pid>`; the next run removes it."""
    make(tmp_path, 'joint').save(0, 3)
    (tmp_path / 'net_g_6.pth.tmp-4242').write_bytes(b'partial')
    (tmp_path / '6.state.tmp-4242').write_bytes(b'partial')
    (tmp_path / 'notes.tmp-1.txt').write_text('user file')
    make(tmp_path, 'joint')
    names = set(os.listdir(tmp_path))
    assert 'net_g_6.pth.tmp-4242' not in names and '6.state.tmp-4242' not in names
    assert {'net_g_3.pth', 'net_degrad_3.pth', '3.state', 'notes.tmp-1.txt'} <= names


def test_tiled_validation_matches_whole_image(tmp_path):
    """val.tile restores through ndrsr.lib.tiling.tile_forward: one tile == whole image; small tiles stay close."""
    opt = model_opt(tmp_path, 'joint')
    model = build_model(opt)
    lq = torch.rand(1, 3, 40, 56)
    model.feed_data({'lq': lq})
    model.test()
    whole = model.output
    opt['val'].update(tile=64, tile_overlap=16)
    model.opt = opt
    model.test()
    assert torch.equal(model.output, whole)  # one tile covers the image: exactly the whole-image path
    opt['val'].update(tile=24, tile_overlap=16)
    model.test()
    assert model.output.shape == whole.shape and not torch.equal(model.output, whole)


@pytest.mark.parametrize('schedule', ['joint', 'alternating'])
def test_fast_path_training_equals_plain_training(tmp_path, schedule):
    """train.fast_path (default) trains through the optimised views: same weights, same keys, same checkpoints."""
    from ndrsr.archs.restormer_blocks import FastTransformerBlock
    for sub in ('fast', 'plain'):
        (tmp_path / sub).mkdir()
    torch.manual_seed(0)
    fast = make(tmp_path / 'fast', schedule)
    torch.manual_seed(0)
    plain = make(tmp_path / 'plain', schedule, fast_path=False)
    assert fast.train_fast_path and not plain.train_fast_path
    assert any(isinstance(m, FastTransformerBlock) for m in fast.net_g.modules())
    assert not any(isinstance(m, FastTransformerBlock) for m in plain.net_g.modules())
    assert fast.net_g.state_dict().keys() == plain.net_g.state_dict().keys()
    for step in range(1, 4):
        for model in (fast, plain):
            model.feed_data(batch(step))
            model.optimize_parameters(step)
        for key in fast.log_dict:
            assert abs(fast.log_dict[key] - plain.log_dict[key]) < 1e-5, (step, key)
    for name in ('net_g', 'net_degrad', 'net_g_ema'):
        a, b = getattr(fast, name).state_dict(), getattr(plain, name).state_dict()
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4, name  # Adam amplifies 1e-7 grads
    fast.save(0, 3)
    saved = torch.load(os.path.join(fast.opt['path']['models'], 'net_g_3.pth'), weights_only=True)
    assert saved['params'].keys() == plain.net_g.state_dict().keys()


def test_validation_builds_the_inference_view_once(tmp_path, monkeypatch):
    """nondist_validation makes one optimised view of the validation network for all its images."""
    import ndrsr.models.ndr_model as ndr_model
    model = make(tmp_path, 'joint')
    built = []
    real = ndr_model.prepare_for_inference
    monkeypatch.setattr(ndr_model, 'prepare_for_inference', lambda net: built.append(net) or real(net))

    class Loader(list):
        dataset = type('Dataset', (), {'opt': {'name': 'val_noise'}})()

    gen = torch.Generator().manual_seed(0)
    loader = Loader({'lq': torch.rand(1, 3, 16, 16, generator=gen), 'gt': torch.rand(1, 3, 16, 16, generator=gen),
                     'lq_path': [f'{i}.png'], 'task': ['noise']} for i in range(3))
    model.opt['datasets'] = {'val_noise': {}}
    model.opt['val']['pbar'] = False
    model.nondist_validation(loader, 1, None, False)
    assert len(built) == 1 and built[0] is model.net_g_ema
    assert set(model.metric_results) == {'psnr', 'psnr_input'}
    model.feed_data({'lq': torch.rand(1, 3, 16, 16)})
    model.test()  # on its own, test() builds its view
    assert len(built) == 2


def test_degradation_network_names(tmp_path):
    """net_degrad / optimizer_degrad (BasicSR's net_d is a discriminator, so ndrsr does not use the name)."""
    model = make(tmp_path, 'alternating')
    assert not hasattr(model, 'net_d') and not hasattr(model, 'optimizer_d')
    assert model.optimizers == [model.optimizer_g, model.optimizer_degrad]  # positional in training states
    assert not hasattr(make(tmp_path, 'restore_only'), 'net_d')
