"""The optimised view (ndrsr.archs.fast_path) computes the plain eager networks' function.

Random weights are perturbed away from their initial values (layer-norm
weights, temperatures, biases) so that every fused term matters. Tolerance:
1e-4 max abs difference in float32 (the issue's bound); the observed
differences are ~1e-6.
"""
import pytest
import torch
from basicsr.archs import build_network
from conftest import SMALL_DEGRAD, SMALL_RESTORE
from torch import nn

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.archs.fast_path import prepare_for_inference, prepare_for_training
from ndrsr.archs.restormer_blocks import FastTransformerBlock, TransformerBlock, TransposedAttention
from ndrsr.lib.convert import convert_released

TOL = 1e-4
# Tiny network with several heads, so the multi-head attention path runs too.
MULTIHEAD_RESTORE = dict(SMALL_RESTORE, heads=[1, 2, 4, 8])


def perturbed(net: nn.Module, scale: float = 0.1) -> nn.Module:
    """``net`` with its biases, layer-norm weights and temperatures moved by N(0, scale^2).

    Convolution weights keep their default initialisation, so activations stay
    O(1) and the 1e-4 bound is meaningful.
    """
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() <= 1 or name.endswith('temperature'):
                p.add_(torch.randn(p.shape, generator=gen) * scale)
    return net


def max_diff(a, b) -> float:
    if torch.is_tensor(a):
        return (a - b).abs().max().item()
    return max(max_diff(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('config', [SMALL_RESTORE, MULTIHEAD_RESTORE], ids=['heads1', 'multihead'])
def test_restore_matches_plain(config):
    """Batch of 2, odd size (reflect-padded inside): forward, return_degradation, recognise."""
    net = perturbed(NDRRestore(**config)).eval()
    x = torch.rand(2, 3, 37, 53)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        y, us = net(x, return_degradation=True)
        y_fast, us_fast = fast(x, return_degradation=True)
        assert max_diff(y, y_fast) <= TOL and max_diff(us, us_fast) <= TOL
        assert y_fast.shape == y.shape and y_fast.stride() == y.stride()  # same (NCHW) layout
        assert max_diff(net(x), fast(x)) <= TOL
        plain_rec, fast_rec = net.recognise(x), fast.recognise(x)
        assert max_diff(plain_rec[0], fast_rec[0]) <= TOL and max_diff(plain_rec[1], fast_rec[1]) <= TOL


def test_degrad_matches_plain():
    restore = perturbed(NDRRestore(**SMALL_RESTORE)).eval()
    degrad = perturbed(NDRDegrad(**SMALL_DEGRAD)).eval()
    lq, gt = torch.rand(2, 3, 29, 40), torch.rand(2, 3, 29, 40)
    with torch.inference_mode():
        _, us = restore(lq, return_degradation=True)
        assert max_diff(degrad(gt, us), prepare_for_inference(degrad)(gt, us)) <= TOL


def test_default_size_network_matches_plain():
    """The default 27.3M network (widths 48-384, heads 1-6) on a small input."""
    net = perturbed(NDRRestore()).eval()
    x = torch.rand(1, 3, 24, 16)
    with torch.inference_mode():
        y, us = net(x, return_degradation=True)
        y_fast, us_fast = prepare_for_inference(net)(x, return_degradation=True)
    assert max_diff(y, y_fast) <= TOL and max_diff(us, us_fast) <= TOL


@pytest.mark.parametrize('channels,heads', [(48, 1), (192, 4), (384, 6)])
def test_default_width_block_matches_plain(channels, heads):
    block = perturbed(TransformerBlock(channels, heads, 2.66)).eval()
    with torch.no_grad():
        block.attn.temperature.uniform_(0.5, 4.0)
    x = torch.randn(2, channels, 12, 20)
    with torch.inference_mode():
        fast = prepare_for_inference(block)
        assert isinstance(fast, FastTransformerBlock)
        assert max_diff(block(x), fast(x)) <= TOL


def test_matches_released_outputs_too(reference):
    g, d, opt = convert_released(reference['state_dict'])
    restore, degrad = build_network(dict(opt['network_g'])), build_network(dict(opt['network_degrad']))
    restore.load_state_dict(g, strict=True)
    degrad.load_state_dict(d, strict=True)
    with torch.inference_mode():
        restored, us = prepare_for_inference(restore)(reference['lq'], return_degradation=True)
        degraded = prepare_for_inference(degrad)(reference['gt'], [reference[f'rep{i}'] for i in (1, 2, 3)])
    assert max_diff(restored, reference['restored']) <= 1e-5
    assert max_diff(us, [reference[f'rep{i}'] for i in (1, 2, 3)]) <= 1e-5
    assert max_diff(degraded, reference['degraded']) <= 1e-5


def test_caller_module_is_untouched_and_weights_are_shared():
    net = NDRRestore(**SMALL_RESTORE).train()
    keys = list(net.state_dict())
    classes = [type(m) for m in net.modules()]
    fast = prepare_for_inference(net)
    assert net.training and all(m.training for m in net.modules())
    assert not fast.training and not any(m.training for m in fast.modules())
    assert [type(m) for m in net.modules()] == classes
    assert list(fast.state_dict()) == keys
    assert all(a is b for a, b in zip(net.parameters(), fast.parameters()))
    # a weight update of the caller's module is seen by an existing view
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        net.output.bias.add_(1.0)
        assert max_diff(net.eval()(x), fast(x)) <= TOL
    # registering on the view does not register on the caller's module
    fast.register_forward_hook(lambda *a: None)
    fast.extra = nn.Conv2d(1, 1, 1)
    assert not net._forward_hooks and not hasattr(net, 'extra')


def test_ablation_variants_and_upscale_run_through_the_view():
    for kwargs in (dict(query_mode='conv', injection_mode='concat'), dict(query_mode='no_ndr', injection_mode='conv'),
                   dict(upscale=2)):
        net = perturbed(NDRRestore(**SMALL_RESTORE, **kwargs)).eval()
        x = torch.rand(1, 3, 13, 21)
        with torch.inference_mode():
            assert max_diff(net(x), prepare_for_inference(net)(x)) <= TOL


def test_training_view_gives_the_same_gradients():
    """prepare_for_training: same loss and the same gradients, on the caller's parameters."""
    restore = perturbed(NDRRestore(**MULTIHEAD_RESTORE)).train()
    degrad = perturbed(NDRDegrad(**SMALL_DEGRAD)).train()
    lq, gt = torch.rand(2, 3, 24, 16), torch.rand(2, 3, 24, 16)

    def loss_and_grads(r, d):
        for p in list(restore.parameters()) + list(degrad.parameters()):
            p.grad = None
        out, us = r(lq, return_degradation=True)
        loss = (d(gt, us) - lq).abs().mean() + (out - gt).abs().mean()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in list(restore.parameters()) + list(degrad.parameters())]

    loss, grads = loss_and_grads(restore, degrad)
    fast_loss, fast_grads = loss_and_grads(prepare_for_training(restore), prepare_for_training(degrad))
    assert abs(loss - fast_loss) <= 1e-5
    assert max_diff(grads, fast_grads) <= TOL
    assert all(g.abs().sum() > 0 for g in fast_grads[:5])


def test_bf16_autocast_runs_on_cpu():
    net = perturbed(NDRRestore(**MULTIHEAD_RESTORE)).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.inference_mode():
        ref = net(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = prepare_for_inference(net)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


@pytest.mark.parametrize('heads', [1, 2])
def test_float16_attention_maps_do_not_overflow(heads):
    """The fused attention's Gram matrix sums HW products of un-normalised q, k: in float16 it overflowed
    (inf / inf = NaN; seen on an H100 with fp16 autocast at 256x256) where the plain path, which normalises
    q and k first, stays finite. In reduced precision the view now normalises q and k first too."""
    torch.manual_seed(0)
    attention = prepare_for_inference(TransposedAttention(32, heads))
    q, k = 40 * torch.randn(1, 4096, 32), 40 * torch.randn(1, 4096, 32)
    reference = attention.attention_maps(q, k)
    maps = attention.attention_maps(q.half(), k.half())
    assert torch.isfinite(maps).all() and max_diff(maps, reference) <= 1e-5


@pytest.mark.parametrize('heads', [1, 2])
def test_float16_autocast_keeps_a_float32_residual_stream(heads):
    """Under autocast the fused residual GEMMs would cast the residual stream to float16; the view keeps it
    float32, as the plain path does."""
    torch.manual_seed(0)
    block = TransformerBlock(32, heads, 2.66).eval()
    x = 40 * torch.randn(1, 32, 16, 16)
    with torch.inference_mode():
        ref = block(x)
        with torch.autocast('cpu', dtype=torch.float16):
            plain = block(x)
            fast = prepare_for_inference(block)(x)
    assert torch.isfinite(plain).all() and torch.isfinite(fast).all()
    assert fast.dtype == plain.dtype == torch.float32
    assert max_diff(fast, ref) <= 2 * max_diff(plain, ref) + 1e-3


def test_layout_modules_compute_the_same_in_either_layout_and_keep_it():
    """The layer norm, the CP modulation and the injection have no fast subclass: on a channels-last input they
    compute the same function in channels-last (what the view feeds them), on NCHW as written."""
    from ndrsr.archs.layout import is_channels_last, to_channels_last
    from ndrsr.archs.ndr_modules import CPModulation, DegradationInjection
    from ndrsr.archs.restormer_blocks import ChannelLayerNorm
    x, u = torch.randn(2, 24, 10, 14), torch.randn(2, 16, 10, 14)
    modules = [perturbed(ChannelLayerNorm(24)), perturbed(CPModulation(24, rank=4))]
    inject = perturbed(DegradationInjection(24, query_dim=16, rank=4))
    with torch.no_grad():
        for module in modules:
            plain, last = module(x), module(to_channels_last(x))
            assert plain.is_contiguous() and is_channels_last(last)
            assert max_diff(plain, last) <= 1e-5
        plain, last = inject(x, u), inject(to_channels_last(x), u)  # U follows the feature's layout
        assert plain.is_contiguous() and is_channels_last(last) and max_diff(plain, last) <= 1e-5
        released_form = inject.scale(inject.cp_degradation(inject.embed(u))) * inject.cp_feature(x) + \
            inject.shift(inject.cp_degradation(inject.embed(u)))
        assert max_diff(plain, released_form) <= 1e-5  # addcmul is the released scale * F' + shift
