"""Ablation variants of the paper's Tables VIII-X: build, forward/backward, parameter counts."""
import pytest
import torch
from basicsr.models import build_model
from conftest import SMALL_DEGRAD, SMALL_RESTORE
from model_options import model_opt

from ndrsr.archs import NDRDegrad, NDRRestore

RELEASED = 27_330_315
C = (48, 96, 192)  # encoder widths at default size


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def dq_params(c, q=64, m=128):
    """Parameters of one DegradationQuery: project, to_query, temperature, to_degradation, out."""
    return c * q * 9 + (q * m + m) + 1 + (m * q + q) + (q * q + q)


def di_params(c, q=64, k=16):
    """Parameters of one DegradationInjection: embed, CP on U, CP on F, scale, shift."""
    cp = lambda ch: (ch * k * ch + k * ch) + 2 * (ch * k + k)  # noqa: E731
    return (q * q + q) + cp(q) + cp(c) + 2 * (q * c + c)


def test_default_is_released():
    assert n_params(NDRRestore()) == RELEASED


def test_no_ndr_drops_exactly_the_ndr_and_temperatures():
    net = NDRRestore(query_mode='no_ndr')
    assert net.ndr is None
    assert n_params(net) == RELEASED - 32 * 128 - 3


@pytest.mark.parametrize('m,n', [(32, 8), (64, 32), (128, 16), (128, 32)])
def test_ndr_sizes(m, n):
    net = NDRRestore(ndr_dim=m, ndr_atoms=n)
    assert net.ndr.atoms.shape == (1, n, m)
    if (m, n) == (32, 8):
        assert net.ndr.atoms.numel() == 256
    expected = RELEASED - 32 * 128 + n * m - sum(dq_params(c) - dq_params(c, m=m) for c in C)
    assert n_params(net) == expected


def test_no_dq_is_one_conv_per_level():
    net = NDRRestore(query_mode='conv')
    assert net.ndr is None
    assert n_params(net) == RELEASED - 4096 - sum(dq_params(c) - (c * 64 * 9 + 64) for c in C)


def test_no_di_and_no_cp():
    no_di = NDRRestore(injection_mode='conv')
    assert n_params(no_di) == RELEASED - sum(di_params(c) - (c * c * 9 + c) for c in C)
    no_cp = NDRRestore(injection_mode='concat')
    assert n_params(no_cp) == RELEASED - sum(di_params(c) - (64 * 64 + 64) - ((c + 64) * c * 9 + c) for c in C)
    assert n_params(NDRDegrad(injection_mode='concat')) < n_params(NDRDegrad())


def test_di_parameter_formula_matches_released():
    """The helper formulas above describe the released modules (so the expectations are real)."""
    net = NDRRestore()
    assert sum(p.numel() for p in net.query[0].parameters()) == dq_params(48)
    assert sum(p.numel() for p in net.inject[2].parameters()) == di_params(192)


VARIANTS = [
    {},
    {'query_mode': 'no_ndr'},
    {'ndr_dim': 32, 'ndr_atoms': 8},
    {'query_mode': 'conv'},
    {'injection_mode': 'conv'},
    {'injection_mode': 'concat'},
]


@pytest.mark.parametrize('variant', VARIANTS, ids=lambda v: ','.join(f'{k}={x}' for k, x in v.items()) or 'full')
@pytest.mark.parametrize('schedule', ['joint', 'alternating'])
def test_variant_trains_one_step(tmp_path, variant, schedule):
    opt = model_opt(tmp_path, schedule)
    opt['network_g'].update(variant)
    if variant.get('injection_mode') == 'concat':
        opt['network_degrad']['injection_mode'] = 'concat'
    model = build_model(opt)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    degrad_before = {k: v.clone() for k, v in model.net_degrad.state_dict().items()}
    gt = torch.rand(2, 3, 16, 16)
    model.feed_data({'gt': gt, 'lq': (gt + 0.1).clamp(0, 1)})
    model.optimize_parameters(1)  # raises FloatingPointError on a non-finite loss
    assert set(model.log_dict) == {'l_restore', 'l_degrad'}  # both losses computed, neither path cut off
    after, degrad_after = model.net_g.state_dict(), model.net_degrad.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(degrad_before[k], degrad_after[k]) for k in degrad_before)  # l_degrad reached it
    if model.get_bare_model(model.net_g).ndr is not None:
        assert not torch.equal(before['ndr.atoms'], after['ndr.atoms'])


def test_unknown_mode_is_explained():
    with pytest.raises(ValueError, match='query_mode must be one of'):
        NDRRestore(**SMALL_RESTORE, query_mode='attention')
    with pytest.raises(ValueError, match='injection_mode must be one of'):
        NDRDegrad(**SMALL_DEGRAD, injection_mode='film')
