"""ndrsr.lib.weights: BasicSR checkpoints, released checkpoints, options found beside the weights or given,
NDR-Degrad weights found beside NDR-Restore's; errors name the parameter to change."""
import pytest
import torch
import yaml
from conftest import SMALL_DEGRAD, SMALL_RESTORE

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.lib.weights import WeightsError, load_degrad_network, load_restore_network


def test_basicsr_checkpoint_prefers_params_ema_and_infers_sizes(tmp_path):
    a, b = NDRRestore(**SMALL_RESTORE), NDRRestore(**SMALL_RESTORE)
    path = str(tmp_path / 'net_g_latest.pth')
    torch.save({'params': a.state_dict(), 'params_ema': b.state_dict()}, path)
    net = load_restore_network(path)  # no options anywhere: sizes inferred from the tensors
    for k, v in net.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    torch.save({'params': a.state_dict()}, path)
    assert torch.equal(load_restore_network(path).embed.weight, a.embed.weight)
    with pytest.raises(WeightsError, match='upscale') as err:
        load_restore_network(path, upscale=2)
    assert err.value.argument == 'upscale' and '--' not in str(err.value)  # the tools name their flag


def test_options_from_yaml_next_to_weights_and_opt(tmp_path):
    sr = dict(SMALL_RESTORE, upscale=2, cp_rank=4)
    net = NDRRestore(**sr)
    path = str(tmp_path / 'net_g.pth')
    torch.save({'params': net.state_dict()}, path)
    assert load_restore_network(path, upscale=2).upscale == 2  # inferred
    wrong = tmp_path / 'wrong.yml'
    wrong.write_text(yaml.safe_dump({'network_g': {'type': 'NDRRestore', **SMALL_RESTORE}}))
    with pytest.raises(WeightsError, match='does not fit') as err:
        load_restore_network(path, opt_path=str(wrong))
    assert err.value.argument == 'opt_path' and '--opt' not in str(err.value)  # the tools add their flag
    (tmp_path / 'network_options.yml').write_text(yaml.safe_dump({'network_g': {'type': 'NDRRestore', **sr}}))
    assert load_restore_network(path).upscale == 2
    with pytest.raises(WeightsError):
        load_restore_network(path, opt_path=str(wrong))  # --opt wins over network_options.yml


def test_released_checkpoint_is_converted_on_the_fly(tmp_path, reference):
    path = str(tmp_path / 'model_released.pth')
    torch.save(reference['state_dict'], path)
    restore = load_restore_network(path)
    degrad = load_degrad_network(path)
    with torch.inference_mode():
        assert (restore(reference['lq']) - reference['restored']).abs().max() <= 1e-5
        reps = [reference[f'rep{i}'] for i in (1, 2, 3)]
        assert (degrad(reference['gt'], reps) - reference['degraded']).abs().max() <= 1e-5


def test_degrad_weights_found_beside_restore_weights(tmp_path):
    torch.save({'params': NDRRestore(**SMALL_RESTORE).state_dict()}, tmp_path / 'net_g_100.pth')
    with pytest.raises(WeightsError, match='net_degrad'):
        load_degrad_network(str(tmp_path / 'net_g_100.pth'))
    d = NDRDegrad(**SMALL_DEGRAD)
    torch.save({'params': d.state_dict()}, tmp_path / 'net_degrad_100.pth')
    assert torch.equal(load_degrad_network(str(tmp_path / 'net_g_100.pth')).embed.weight, d.embed.weight)
    with pytest.raises(WeightsError, match='NDR-Degrad weights'):
        load_restore_network(str(tmp_path / 'net_degrad_100.pth'))
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='junk.pth'):
        load_restore_network(str(tmp_path / 'junk.pth'))


def test_options_recorded_in_a_training_checkpoint_survive_a_copy(tmp_path):
    """A training checkpoint copied away from its experiment (no options beside it) still builds the network it
    was trained as: ``global_residual`` is invisible in the tensor shapes, so without the record the copy would
    restore with a different network (a black image for a residual-trained one)."""
    opt = dict(SMALL_RESTORE, global_residual=True)
    torch.manual_seed(0)
    net = NDRRestore(**opt).eval()
    path = str(tmp_path / 'copied_net_g.pth')
    torch.save({'params': net.state_dict(), 'network_options': {'network_g': dict(opt, type='NDRRestore')}}, path)
    loaded = load_restore_network(path)
    assert loaded.global_residual is True
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
    torch.save({'params': net.state_dict()}, path)  # the same tensors without the record: the other network
    assert load_restore_network(path).global_residual is False
