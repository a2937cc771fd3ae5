"""The global input residual of NDRRestore (option ``global_residual``, default off = released network)."""
import pytest
import torch
import torch.nn.functional as F

import ndrsr  # noqa: F401
from ndrsr.archs.fast_path import prepare_for_inference, prepare_for_training
from ndrsr.archs.ndr_restore_arch import NDRRestore

SMALL = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2], ndr_dim=16, query_dim=8,
             cp_rank=4)


def _pair(upscale: int):
    torch.manual_seed(0)
    plain = NDRRestore(**SMALL, upscale=upscale).eval()
    residual = NDRRestore(**SMALL, upscale=upscale, global_residual=True).eval()
    residual.load_state_dict(plain.state_dict())  # same keys: the option adds no parameter
    return plain, residual


def test_default_is_off_and_state_dict_keys_unchanged():
    plain, residual = _pair(1)
    assert plain.global_residual is False
    assert list(plain.state_dict()) == list(residual.state_dict())


@pytest.mark.parametrize('size', [(16, 16), (13, 21)])
def test_residual_adds_the_input(size):
    plain, residual = _pair(1)
    lq = torch.rand(2, 3, *size)
    with torch.no_grad():
        a, b = plain(lq), residual(lq)
    torch.testing.assert_close(b, a + lq, rtol=0, atol=1e-6)
    assert (b - a).abs().max() > 0.1  # the input really is added


def test_residual_at_upscale_2_adds_bicubic_up():
    plain, residual = _pair(2)
    lq = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        a, b = plain(lq), residual(lq)
    up = F.interpolate(lq, scale_factor=2, mode='bicubic', align_corners=False)
    assert b.shape == (1, 3, 24, 20)
    torch.testing.assert_close(b, a + up, rtol=0, atol=1e-6)


def test_fast_views_keep_the_residual():
    _, residual = _pair(1)
    lq = torch.rand(1, 3, 24, 24)
    with torch.inference_mode():
        ref = residual(lq)
        fast = prepare_for_inference(residual)(lq)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    out = prepare_for_training(residual.train())(lq)
    out.mean().backward()
    assert residual.output.weight.grad is not None


def test_zeroed_decoder_output_is_exact_identity():
    """A network whose last conv is zero returns its input unchanged: clean photos start out untouched."""
    _, residual = _pair(1)
    torch.nn.init.zeros_(residual.output.weight)
    torch.nn.init.zeros_(residual.output.bias)
    lq = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(residual(lq), lq)


def test_colour_shift_metric_is_registered_and_measures_the_cast():
    import numpy as np
    from basicsr.metrics import calculate_metric
    img = np.full((8, 8, 3), 100, np.uint8)
    cast = img.copy()
    cast[..., 2] += 12
    assert calculate_metric({'img': img, 'img2': img}, {'type': 'calculate_colour_shift'}) == 0
    assert calculate_metric({'img': cast, 'img2': img}, {'type': 'calculate_colour_shift'}) == pytest.approx(12)


def test_colour_cast_metric_ignores_brightness_and_measures_the_tint():
    import numpy as np
    from basicsr.metrics import calculate_metric
    rng = np.random.default_rng(0)
    img = rng.integers(40, 200, (8, 8, 3)).astype(np.uint8)
    darker = img - np.uint8(30)
    tinted = img.copy()
    tinted[..., 2] += 12  # only one channel: mean change 4, cast 12 - 4 = 8
    cast = {'type': 'calculate_colour_cast'}
    assert calculate_metric({'img': darker, 'img2': img}, cast) == pytest.approx(0)
    assert calculate_metric({'img': darker, 'img2': img}, {'type': 'calculate_colour_shift'}) == pytest.approx(30)
    assert calculate_metric({'img': tinted, 'img2': img}, cast) == pytest.approx(8)
