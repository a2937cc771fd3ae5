"""NDRRestore / NDRDegrad: exactness against the released code, sizes, registry, odd inputs, gradients."""
import json
import os

import pytest
import torch
import yaml
from basicsr.archs import build_network
from conftest import DATA, SMALL_DEGRAD, SMALL_RESTORE

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.lib.convert import convert_released

KEYS_JSON = os.path.join(DATA, 'official_default_keys.json')


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def converted_reference_nets(reference):
    g, d, opt = convert_released(reference['state_dict'])
    restore = build_network(dict(opt['network_g']))
    degrad = build_network(dict(opt['network_degrad']))
    restore.load_state_dict(g, strict=True)
    degrad.load_state_dict(d, strict=True)
    return restore.eval(), degrad.eval()


def test_matches_released_outputs(reference):
    restore, degrad = converted_reference_nets(reference)
    with torch.no_grad():
        restored, us = restore(reference['lq'], return_degradation=True)
        degraded = degrad(reference['gt'], [reference[f'rep{i}'] for i in (1, 2, 3)])
    assert (restored - reference['restored']).abs().max() <= 1e-5
    for i, u in enumerate(us, 1):
        assert u.shape == reference[f'rep{i}'].shape
        assert (u - reference[f'rep{i}']).abs().max() <= 1e-5
    assert (degraded - reference['degraded']).abs().max() <= 1e-5


def test_default_sizes_match_released_parameter_counts():
    with open(KEYS_JSON) as f:
        counts = json.load(f)['parameter_counts']
    restore, degrad = NDRRestore(), NDRDegrad()
    assert n_params(restore) == counts['restoration'] == 27_330_315
    assert n_params(degrad) == counts['degradation'] == 9_632_169
    assert restore.ndr.atoms.numel() == counts['ndr'] == 4096


def test_converter_maps_every_released_key_at_default_size():
    with open(KEYS_JSON) as f:
        shapes = json.load(f)['state_dict_shapes']
    assert len(shapes) == 671
    gen = torch.Generator().manual_seed(0)
    released = {k: torch.randn(v, generator=gen) for k, v in shapes.items()}
    released['restoration_net.dr'] = released['degradation_representations'].clone()
    g, d, opt = convert_released({'params': {f'module.{k}': v for k, v in released.items()}})
    restore, degrad = NDRRestore(), NDRDegrad()
    assert set(g) == set(restore.state_dict()) and set(d) == set(degrad.state_dict())
    assert len(g) + len(d) == 671 - 1  # the NDR is stored twice in the released file, once here
    restore.load_state_dict(g, strict=True)
    degrad.load_state_dict(d, strict=True)
    assert torch.equal(restore.ndr.atoms, released['degradation_representations'])
    assert opt['network_g']['dim'] == 48 and opt['network_g']['num_blocks'] == [4, 6, 6, 8]


def test_converter_rejects_wrong_file_with_key_list(reference):
    sd = dict(reference['state_dict'])
    sd.pop('restoration_net.reconstruction.bias')
    sd['restoration_net.something_else.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        convert_released(sd)
    msg = str(err.value)
    assert 'missing' in msg and 'output.bias' in msg
    assert 'unexpected' in msg and 'something_else' in msg
    with pytest.raises(ValueError, match='not a released NDR-Restore checkpoint'):
        convert_released({'params': {'conv_first.weight': torch.zeros(1)}})


def test_build_network_from_registry():
    net = build_network({'type': 'NDRRestore', **SMALL_RESTORE})
    assert isinstance(net, NDRRestore)
    net = build_network({'type': 'NDRDegrad', **SMALL_DEGRAD})
    assert isinstance(net, NDRDegrad)


@pytest.mark.parametrize('size', [(37, 53), (1, 1), (8, 8), (9, 17)])
def test_any_input_size_keeps_size(size):
    restore = NDRRestore(**SMALL_RESTORE).eval()
    degrad = NDRDegrad(**SMALL_DEGRAD).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y, us = restore(x, return_degradation=True)
        z = degrad(y, us)
    assert y.shape == x.shape and z.shape == x.shape
    assert torch.isfinite(y).all() and torch.isfinite(z).all()


def test_odd_size_is_reflect_padded_and_cropped():
    """37x53 behaves exactly like the explicitly reflect-padded 40x56 image, cropped back."""
    import torch.nn.functional as F
    restore = NDRRestore(**SMALL_RESTORE).eval()
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        padded = restore(F.pad(x, (0, 3, 0, 3), mode='reflect'))[..., :37, :53]
        assert torch.allclose(restore(x), padded, atol=1e-6)
        # batching does not change per-image results
        assert torch.allclose(restore(x)[1:], restore(x[1:]), atol=1e-5)


def test_grayscale_rejected_with_fix():
    restore = NDRRestore(**SMALL_RESTORE)
    with pytest.raises(ValueError, match='repeated to 3 channels'):
        restore(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        restore(torch.rand(3, 16, 16))


def test_degrad_rejects_mismatched_degradations():
    restore = NDRRestore(**SMALL_RESTORE).eval()
    degrad = NDRDegrad(**SMALL_DEGRAD).eval()
    with torch.no_grad():
        _, us = restore(torch.rand(1, 3, 16, 16), return_degradation=True)
        with pytest.raises(ValueError, match='U1 has shape'):
            degrad(torch.rand(1, 3, 32, 32), us)


def test_upscale_two_maps_lr_to_hr_and_back():
    restore = NDRRestore(**SMALL_RESTORE, upscale=2).eval()
    degrad = NDRDegrad(**SMALL_DEGRAD, upscale=2).eval()
    lq = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        hr, us = restore(lq, return_degradation=True)
        assert hr.shape == (1, 3, 42, 60)
        back = degrad(hr, us)
    assert back.shape == lq.shape


def test_degradation_loss_reaches_ndr_and_query():
    restore = NDRRestore(**SMALL_RESTORE)
    degrad = NDRDegrad(**SMALL_DEGRAD)
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    _, us = restore(lq, return_degradation=True)
    loss = (degrad(gt, us) - lq).abs().mean()
    loss.backward()
    assert restore.ndr.atoms.grad is not None and restore.ndr.atoms.grad.abs().sum() > 0
    for q in restore.query:
        assert q.project.weight.grad.abs().sum() > 0
        assert q.temperature.grad.abs().sum() > 0
    # the decoder of NDRRestore is not on the degradation path
    assert restore.output.weight.grad is None


def test_stock_basicsr_model_uses_ndrrestore(tmp_path):
    """A stock BasicSR SRModel builds NDRRestore as network_g from a YAML dict."""
    from basicsr.models import build_model
    opt = yaml.safe_load(f"""
name: reuse
model_type: SRModel
scale: 1
num_gpu: 0
is_train: false
dist: false
network_g:
  type: NDRRestore
  dim: 8
  num_blocks: [1, 1, 1, 1]
  num_refinement_blocks: 1
  heads: [1, 1, 1, 1]
path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~
  experiments_root: {tmp_path}
  models: {tmp_path}
  visualization: {tmp_path}
  log: {tmp_path}
  results_root: {tmp_path}
val: ~
""")
    model = build_model(opt)
    assert isinstance(model.net_g, NDRRestore)
    model.feed_data({'lq': torch.rand(1, 3, 19, 23)})
    model.test()
    assert model.output.shape == (1, 3, 19, 23)


@pytest.mark.slow
def test_convert_command_line(tmp_path, reference):
    """ndrsr-convert: writes BasicSR checkpoints, refuses to overwrite, explains a wrong file."""
    import subprocess
    import sys
    src = tmp_path / 'model_L.pth'
    torch.save({'state_dict': reference['state_dict']}, src)
    out = tmp_path / 'converted'
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ndrsr-convert'), str(src), str(out)]  # the console script
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    g = torch.load(out / 'net_g.pth', weights_only=True)
    d = torch.load(out / 'net_degrad.pth', weights_only=True)
    opts = yaml.safe_load(open(out / 'network_options.yml'))
    restore = build_network(opts['network_g'])
    restore.load_state_dict(g['params'])
    degrad = build_network(opts['network_degrad'])
    degrad.load_state_dict(d['params'])
    with torch.no_grad():
        assert (restore.eval()(reference['lq']) - reference['restored']).abs().max() <= 1e-5
    before = (out / 'net_g.pth').read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and 'refusing to overwrite' in again.stderr
    assert (out / 'net_g.pth').read_bytes() == before
    wrong = tmp_path / 'other.pth'
    torch.save({'params': {'conv_first.weight': torch.zeros(1)}}, wrong)
    bad = subprocess.run([cmd[0], str(wrong), str(tmp_path / 'x')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'not a released NDR-Restore checkpoint' in bad.stderr


def test_the_networks_declare_what_they_need():
    """``input_needs``: padded to a multiple of 8 (what forward does), and tiling changes the output (global
    operations); the tiler reads it (tests/library/test_tiling.py)."""
    from ndrsr.archs.descriptor import InputNeeds, input_needs_of
    for net in (NDRRestore(**SMALL_RESTORE), NDRDegrad(**SMALL_DEGRAD)):
        assert input_needs_of(net) == InputNeeds(multiple_of=8, tiling_changes_output=True)
    restore = NDRRestore(**SMALL_RESTORE).eval()
    img = torch.rand(1, 3, 21, 30)
    padded = torch.nn.functional.pad(img, (0, 2, 0, 3), mode='reflect')  # to 24 x 32, multiples of 8
    with torch.no_grad():
        assert torch.allclose(restore(img), restore(padded)[..., :21, :30], atol=1e-6)
    with pytest.raises(ValueError, match='multiple_of'):
        InputNeeds(multiple_of=0, tiling_changes_output=False)
