"""ndrsr.lib.tiling and ndrsr.lib.transfer: tiled runs equal (or close to) whole-image runs, tile plans,
degradation fitting and transfer. CPU, tiny networks, generated images."""
import math

import pytest
import torch
from conftest import smooth_image
from torch import nn

from ndrsr.archs.descriptor import UNDECLARED, InputNeeds, input_needs_of
from ndrsr.lib.tiling import level_sizes, plan_tiles, tile_degrade, tile_forward, tile_recognise
from ndrsr.lib.transfer import degradation_difference, fit_degradations, removed_share, transfer_degradations


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a - b) ** 2).mean().item())


def test_tiled_restore_matches_whole_image_to_50db(released_nets):
    net = released_nets[0]
    img = smooth_image(90, 133)  # neither a multiple of 8 nor of the tile
    grid = plan_tiles(90, 133, 64, 16)
    assert len(grid.boxes()) == 6  # 2 x 3 tiles
    with torch.inference_mode():
        whole = net(img)
    tiled = tile_forward(net, img, tile=64, overlap=16)
    assert tiled.shape == whole.shape == (1, 3, 90, 133)
    assert whole.std() > 0.1  # the network output is not flat: the comparison means something
    assert not torch.equal(tiled, whole)  # the tiles really ran separately (global operations differ)
    assert net.input_needs.tiling_changes_output  # which the network declares
    assert psnr(tiled, whole) >= 50


class LocalNet(nn.Module):
    """Convolutions only (receptive radius 3), optional pixel-shuffle up-scaling: tiling must be exact.

    Pads to ``multiple`` and says so in ``input_needs``, as the ndrsr networks do; records its input sizes."""

    def __init__(self, upscale: int = 1, multiple: int = 8):
        super().__init__()
        self.upscale, self.multiple, self.seen = upscale, multiple, []
        self.input_needs = InputNeeds(multiple_of=multiple, tiling_changes_output=False)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * upscale ** 2, 3, padding=1), nn.PixelShuffle(upscale))

    def forward(self, x):
        h, w = x.shape[-2:]
        self.seen.append((h, w))
        x = nn.functional.pad(x, (0, (-w) % self.multiple, 0, (-h) % self.multiple), mode='reflect')
        return self.body(x)[..., :h * self.upscale, :w * self.upscale]


def test_the_tiler_pads_and_cuts_to_the_multiple_the_network_declares():
    """Tiles, overlaps and padding follow ``net.input_needs.multiple_of`` (16 here, the ndrsr networks say 8)."""
    img = torch.rand(1, 3, 61, 83)
    seen = {}
    for multiple in (8, 16):
        net = LocalNet(multiple=multiple).eval()
        with torch.inference_mode():
            whole = net(img)
        net.seen.clear()
        tiled = tile_forward(net, img, tile=40, overlap=16)
        seen[multiple] = net.seen
        assert len(net.seen) > 2 and all(h % multiple == 0 and w % multiple == 0 for h, w in net.seen), net.seen
        assert (tiled - whole).abs().max() < 1e-5  # tiling_changes_output=False: tiles reproduce the whole image
    assert any(h % 16 or w % 16 for h, w in seen[8])  # 40-pixel tiles where 8 is enough: the declaration decides
    assert input_needs_of(nn.Conv2d(3, 3, 1)) == UNDECLARED  # a network that does not say: padded to 8, not exact


@pytest.mark.parametrize('upscale', [1, 2])
def test_tile_blending_is_exact_for_a_local_network(upscale):
    """Placement, windows and normalisation: with overlap > receptive field the result is the whole-image one."""
    net = LocalNet(upscale).eval()
    img = torch.rand(2, 3, 61, 83)
    with torch.inference_mode():
        whole = net(img)
    tiled = tile_forward(net, img, tile=32, overlap=16)
    assert len(plan_tiles(61, 83, 32, 16).boxes()) > 6
    assert tiled.shape == whole.shape == (2, 3, 61 * upscale, 83 * upscale)
    assert (tiled - whole).abs().max() < 1e-5


def test_plan_tiles_rounds_and_auto():
    g = plan_tiles(100, 30, 50, 13)
    assert (g.height, g.width, g.tile, g.overlap) == (104, 32, 56, 16)
    ys = sorted({b[0] for b in g.boxes()})
    assert ys[0] == 0 and max(b[1] for b in g.boxes()) == 104
    assert all(b[1] - b[0] == 56 for b in g.boxes())
    assert len(plan_tiles(500, 700, 0, 32).boxes()) == 1  # auto: whole image when it fits
    assert len(plan_tiles(1000, 1000, 0, 32).boxes()) > 1
    with pytest.raises(ValueError, match='>= 0'):
        plan_tiles(10, 10, -1, 0)


def test_tiled_recognise_and_degrade(released_nets):
    restore, degrad, _ = released_nets
    img = smooth_image(44, 70, seed=1)
    with torch.inference_mode():
        us_ref, ss_ref = restore.recognise(img)
    us, ss = tile_recognise(restore, img, tile=0)  # one tile: exactly recognise()
    for a, b in zip(us + ss, us_ref + ss_ref):
        assert torch.allclose(a, b, atol=1e-6)
    us_t, ss_t = tile_recognise(restore, img, tile=32, overlap=8)
    assert [tuple(u.shape[-2:]) for u in us_t] == level_sizes(44, 70) == [(48, 72), (24, 36), (12, 18)]
    for s in ss_t:  # blended affinities are still distributions over the atoms
        assert torch.allclose(s.sum(1), torch.ones(()), atol=1e-5) and s.min() >= 0
    clean = smooth_image(44, 70, seed=2)
    with torch.inference_mode():
        direct = degrad(clean, us)
    assert torch.allclose(tile_degrade(degrad, clean, us), direct, atol=1e-6)
    tiled = tile_degrade(degrad, clean, us, tile=32, overlap=8)
    assert tiled.shape == direct.shape and psnr(tiled, direct) > 40
    # another size: U's fitted to the clean image's padded level sizes
    for mode in ('resize', 'mirror', 'mean'):
        fitted = fit_degradations(us, 50, 37, mode)
        assert [tuple(u.shape[-2:]) for u in fitted] == level_sizes(50, 37)
        assert tile_degrade(degrad, smooth_image(50, 37), fitted).shape == (1, 3, 50, 37)
    # mean: each U's average over the image, the same at every pixel, at any size (also the same size)
    for size in ((50, 37), (44, 70)):
        for u, f in zip(us, fit_degradations(us, *size, 'mean')):
            assert torch.allclose(f, u.mean(dim=(-2, -1), keepdim=True).expand_as(f), atol=1e-7)
    with pytest.raises(ValueError, match='difference, difference-mean, resize, mirror, mean'):
        fit_degradations(us, 50, 37, 'tile')
    for mode in ('difference', 'difference-mean'):
        with pytest.raises(ValueError, match='transfer_degradations'):
            fit_degradations(us, 50, 37, mode)
    with pytest.raises(ValueError, match='fit_degradations'):
        tile_degrade(degrad, smooth_image(50, 37), us)


def test_difference_transfer_puts_the_degradation_alone_on_the_clean_image(released_nets):
    restore, degrad, _ = released_nets
    degraded = smooth_image(44, 70, seed=3)
    with torch.inference_mode():
        restored = restore(degraded).clamp(0, 1)
        us_degraded, _ = restore.recognise(degraded)
        us_restored, _ = restore.recognise(restored)
    difference = degradation_difference(restore, degraded)
    assert [tuple(d.shape[-2:]) for d in difference] == level_sizes(44, 70)
    for d, a, b in zip(difference, us_degraded, us_restored):
        assert torch.allclose(d, a - b, atol=1e-5)
    # put back onto its own restoration (the scene it was taken from), the degraded image's U's come back
    for u, ref in zip(transfer_degradations(restore, difference, restored), us_degraded):
        assert torch.allclose(u, ref, atol=1e-5)
    # onto another size: the clean image's own U's plus the mirror-tiled difference, ready for NDRDegrad
    clean = smooth_image(50, 37, seed=4)
    fitted = transfer_degradations(restore, difference, clean)
    with torch.inference_mode():
        own, _ = restore.recognise(clean)
    for u, o, d in zip(fitted, own, fit_degradations(difference, 50, 37, 'mirror')):
        assert torch.allclose(u, o + d, atol=1e-5)
    assert tile_degrade(degrad, clean, fitted).shape == (1, 3, 50, 37)
    # spread 'mean' (the difference-mean fit): the difference's average over the degraded image, the same everywhere
    evenly = transfer_degradations(restore, difference, clean, spread='mean')
    for u, o, d in zip(evenly, own, difference):
        assert torch.allclose(u, o + d.mean(dim=(-2, -1), keepdim=True), atol=1e-5)
    with pytest.raises(ValueError, match="spread must be 'mirror' or 'mean'"):
        transfer_degradations(restore, difference, clean, spread='resize')
    # the degraded image's U's, if already recognised, give the same difference; removed_share is |d| / |U| per level
    assert all(torch.allclose(a, b, atol=1e-5)
               for a, b in zip(degradation_difference(restore, degraded, us=us_degraded), difference))
    share = removed_share(us_degraded, difference)
    expected = sum(float(d.norm() / u.norm()) for d, u in zip(difference, us_degraded)) / 3
    assert share == pytest.approx(expected) and 0 < share
    assert removed_share(us_degraded, [torch.zeros_like(u) for u in us_degraded]) == 0


def test_a_non_finite_degradation_is_refused_not_returned():
    """NDR-Degrad weights that overflow (finite, absurdly large) give NonFiniteError, as tile_forward does."""
    from conftest import SMALL_DEGRAD, SMALL_RESTORE

    from ndrsr.archs import NDRDegrad, NDRRestore
    from ndrsr.lib.integrity import NonFiniteError
    torch.manual_seed(0)
    restore, degrad = NDRRestore(**SMALL_RESTORE).eval(), NDRDegrad(**SMALL_DEGRAD).eval()
    clean = smooth_image(32, 40)
    us = tile_recognise(restore, clean)[0]
    assert torch.isfinite(tile_degrade(degrad, clean, us)).all()
    with torch.no_grad():
        for p in degrad.parameters():
            p.fill_(1e30)
    with pytest.raises(NonFiniteError, match='NaN or infinite'):
        tile_degrade(degrad, clean, us)
