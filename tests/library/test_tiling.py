"""ndrsr.lib.weights (weights, options), ndrsr.lib.tiling, and the tools' ndrsr.lib.image_files, .maps and .evaluate.

CPU, tiny networks, generated images in tmp_path.
"""
import math
import os

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import DATA, SMALL_DEGRAD, SMALL_RESTORE
from torch import nn

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.archs.descriptor import UNDECLARED, InputNeeds, input_needs_of
from ndrsr.lib.convert import convert_released
from ndrsr.data.image_io import ImageReadError
from ndrsr.cli.evaluate import evaluate_folder, score_pair, to_markdown
from ndrsr.lib.image_files import output_extension, read_image_file, to_file_array, write_image_file
from ndrsr.cli.maps import save_maps
from ndrsr.lib.maps import atom_palette
from ndrsr.lib.tiling import level_sizes, plan_tiles, tile_degrade, tile_forward, tile_recognise
from ndrsr.lib.transfer import degradation_difference, fit_degradations, removed_share, transfer_degradations
from ndrsr.lib.weights import WeightsError, load_degrad_network, load_restore_network


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a - b) ** 2).mean().item())


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w) photo-like test image: smooth gradients, an edge and mild noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None]
    img = torch.stack([0.5 + 0.4 * torch.sin(6 * x + 3 * y), y * x + 0 * x, 0.5 + 0.3 * torch.cos(9 * y) * (x > 0.4)])
    return (img[None] + 0.05 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope='module')
def released_nets():
    """NDRRestore / NDRDegrad with the released code's random weights (tests/assets/official_small.pt)."""
    ref = torch.load(os.path.join(DATA, 'official_small.pt'), weights_only=True)
    g, d, opt = convert_released(ref['state_dict'])
    restore = NDRRestore(**{k: v for k, v in opt['network_g'].items() if k != 'type'}).eval()
    restore.load_state_dict(g)
    degrad = NDRDegrad(**{k: v for k, v in opt['network_degrad'].items() if k != 'type'}).eval()
    degrad.load_state_dict(d)
    return restore, degrad, ref


# ----------------------------------------------------------------------------- tiling
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
        tiled = tile_forward(net, img, tile=40, overlap=8)
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


# ----------------------------------------------------------------------------- weights and options
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


# ----------------------------------------------------------------------------- image files
def test_16bit_rgba_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65536, (13, 21, 4), dtype=np.uint16)
    src = str(tmp_path / 'in.png')
    cv2.imwrite(src, arr)
    img = read_image_file(src)
    assert img.bit_depth == 16 and not img.gray and img.alpha.dtype == np.uint16
    assert np.allclose(img.rgb, arr[:, :, 2::-1] / 65535.)
    out = str(tmp_path / 'out.png')
    write_image_file(out, img.rgb, img)
    assert np.array_equal(cv2.imread(out, cv2.IMREAD_UNCHANGED), arr)  # lossless at 16 bits, alpha untouched


def test_gray_gray_alpha_and_extension_choice(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    img = read_image_file(str(tmp_path / 'g.png'))
    assert img.gray and img.rgb.shape == (9, 11, 3) and img.alpha is None
    assert np.array_equal(to_file_array(img.rgb, 8, gray=True), gray)
    ga = to_file_array(img.rgb, 8, True, 255 - gray)  # OpenCV writes no gray + alpha: gray BGR + alpha
    assert ga.shape == (9, 11, 4) and all(np.array_equal(ga[:, :, c], gray) for c in range(3))
    cv2.imwrite(str(tmp_path / 'ga.png'), ga)
    img = read_image_file(str(tmp_path / 'ga.png'))
    assert np.array_equal(img.alpha, 255 - gray)
    up = to_file_array(np.zeros((18, 22, 3), np.float32), 8, False, img.alpha)  # alpha follows an up-scaled image
    assert up.shape == (18, 22, 4) and up[:, :, 3].mean() == pytest.approx((255 - gray).mean(), abs=3)
    assert output_extension(img, 'x.jpg') == '.png'  # JPEG cannot hold alpha
    cv2.imwrite(str(tmp_path / 'c.jpg'), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert output_extension(read_image_file(str(tmp_path / 'c.jpg')), 'c.jpg') == '.jpg'


def test_unreadable_files_raise_clear_errors(tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:40])
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'text.jpg').write_bytes(b'hello, not an image')
    for name, what in (('cut.png', 'truncated'), ('empty.png', 'empty'), ('text.jpg', 'cannot be decoded'),
                       ('missing.png', 'not found')):
        with pytest.raises(ImageReadError, match=what) as err:
            read_image_file(str(tmp_path / name))
        assert name in str(err.value)


# ----------------------------------------------------------------------------- maps
def test_save_maps_files_shapes_and_values(tmp_path, released_nets):
    net = released_nets[0]
    img = smooth_image(37, 50, seed=3)
    us, ss = tile_recognise(net, img)
    rgb = img[0].permute(1, 2, 0).numpy()
    paths = save_maps(str(tmp_path), 'photo', rgb, rgb, us, ss)
    assert set(paths) == {f'L{i}_{n}' for i in (1, 2, 3) for n in ('atom', 'confidence', 'U')} | {'summary'}
    palette = atom_palette(ss[0].shape[1])
    assert len({tuple(c) for c in palette}) == len(palette)  # one distinct colour per atom
    for i, (h, w) in enumerate([(37, 50), (19, 25), (10, 13)], start=1):
        for name in ('atom', 'confidence', 'U'):
            png = cv2.imread(paths[f'L{i}_{name}'], cv2.IMREAD_UNCHANGED)
            assert png.shape == (h, w, 3) and png.dtype == np.uint8, (i, name)
        atom = cv2.imread(paths[f'L{i}_atom'])[:, :, ::-1]
        argmax = ss[i - 1][0, :, :h, :w].argmax(0).numpy()
        assert np.array_equal(atom, palette[argmax])
    u = cv2.imread(paths['L1_U'])
    assert u.min() == 0 and u.max() == 255  # PCA stretched to the full range
    summary = cv2.imread(paths['summary'])
    assert summary.shape[1] == 3 * 320 and summary.shape[0] > 4 * 200
    assert paths['summary'] == str(tmp_path / 'photo_maps' / 'summary.png')


# ----------------------------------------------------------------------------- evaluation
def test_scores_match_definitions_and_tables(tmp_path):
    rng = np.random.default_rng(2)
    gt = rng.integers(20, 230, (32, 40, 3), dtype=np.uint8)
    off = (gt.astype(np.int16) + 5).astype(np.uint8)  # MSE exactly 25 on every channel
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'out').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'norain-1.png'), gt)
    cv2.imwrite(str(tmp_path / 'out' / 'rain-1.png'), off)
    cv2.imwrite(str(tmp_path / 'out' / 'rain-2.png'), gt)  # no ground truth
    s = score_pair(off.astype(np.float64), gt.astype(np.float64))
    assert s['psnr_rgb'] == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-9)
    assert 0.9 < s['ssim_rgb'] < 1 and s['psnr_y'] > 30
    result = evaluate_folder(str(tmp_path / 'out'), str(tmp_path / 'gt'), pairing='rain')
    assert [r['name'] for r in result['rows']] == ['rain-1.png']
    assert result['rows'][0]['psnr_rgb'] == pytest.approx(s['psnr_rgb'])
    assert len(result['failures']) == 1 and 'rain-2' in result['failures'][0][0]
    md = to_markdown(result)
    assert '| rain-1.png | 34.15 |' in md and '**mean (1)**' in md


def test_niqe_without_ground_truth(tmp_path):
    (tmp_path / 'out').mkdir()
    img = (smooth_image(100, 200, seed=4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'out' / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'out' / 'small.png'), img[:96, :150])
    result = evaluate_folder(str(tmp_path / 'out'))
    assert result['columns'] == ['niqe'] and [r['name'] for r in result['rows']] == ['a.png']
    assert np.isfinite(result['rows'][0]['niqe']) and result['rows'][0]['niqe'] > 0
    assert 'two 96x96 blocks' in result['failures'][0][1]
