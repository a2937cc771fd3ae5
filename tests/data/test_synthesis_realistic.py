"""The realistic synthesis steps: camera noise, JPEG, layered rain with mist, outdoor haze on a scene depth.

Each step: shapes, ranges, determinism under a seed, and the statistics it is meant to have (the properties
of real degradations it imitates: signal-dependent and correlated noise, 8x8 JPEG blocks, near and far rain,
haze that grows with distance and follows object edges).
"""
import numpy as np
import pytest

from ndrsr.data.degradations import (add_camera_noise, add_haze, add_jpeg, add_layered_rain, add_rain, bayer_mask,
                                     bilinear_demosaic, camera_noise_field, linear_to_srgb, scene_depth,
                                     srgb_to_linear)
from ndrsr.data.synthesis import apply_synthesis, parse_synthesis, synthesis_task


def photo(h=96, w=128, seed=0):
    """A smooth synthetic 'photo': gradients plus a few flat patches, (H, W, 3) float32 in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.3 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], axis=2)
    img[h // 4:h // 2, w // 4:w // 2] = rng.uniform(0.2, 0.8, size=3)
    return np.clip(img, 0.1, 0.9).astype(np.float32)


def lag1(noise: np.ndarray) -> float:
    """Mean horizontal lag-1 autocorrelation of a (H, W, C) noise field over its channels."""
    return float(np.mean([np.corrcoef(noise[:, :-1, c].ravel(), noise[:, 1:, c].ravel())[0, 1]
                          for c in range(noise.shape[2])]))


def channel_corr(noise: np.ndarray) -> float:
    return float(np.corrcoef(noise[..., 0].ravel(), noise[..., 2].ravel())[0, 1])


def synth(spec, img, seed=0):
    return apply_synthesis(img, parse_synthesis(spec), np.random.default_rng(seed))


# ------------------------------------------------------------------ camera noise
def test_srgb_curve_round_trips():
    x = np.linspace(0, 1, 1001, dtype=np.float32).reshape(1, -1, 1)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    assert srgb_to_linear(np.full((1, 1, 1), 0.5, np.float32))[0, 0, 0] == pytest.approx(0.214, abs=1e-3)


def test_bayer_mask_samples_one_channel_per_pixel_rggb():
    m = bayer_mask(4, 4)
    assert (m.sum(axis=2) == 1).all()
    assert m[0, 0, 2] == 1 and m[0, 1, 1] == 1 and m[1, 0, 1] == 1 and m[1, 1, 0] == 1  # R G / G B (BGR order)
    assert m[..., 1].mean() == 0.5


def test_bilinear_demosaic_fills_a_flat_mosaic_exactly():
    flat = np.full((8, 10, 3), 0.25, np.float32)
    out = bilinear_demosaic(flat * bayer_mask(8, 10))
    assert np.abs(out - 0.25).max() < 1e-6


def test_camera_noise_shapes_range_and_seed():
    img = photo()
    a = synth([{'type': 'camera_noise'}], img, seed=3)
    b = synth([{'type': 'camera_noise'}], img, seed=3)
    c = synth([{'type': 'camera_noise'}], img, seed=4)
    assert a.shape == img.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_camera_noise_grows_with_the_signal_in_linear_light():
    """Poisson-Gaussian: the variance is shot * x + read, so bright raw values are noisier than dark ones."""
    dark, bright = np.full((64, 64, 3), 0.02, np.float32), np.full((64, 64, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    n_dark = camera_noise_field(dark, rng, shot=1e-3, read=1e-6, bayer=False)
    n_bright = camera_noise_field(bright, rng, shot=1e-3, read=1e-6, bayer=False)
    assert n_bright.std() / n_dark.std() == pytest.approx(np.sqrt((0.5e-3 + 1e-6) / (0.02e-3 + 1e-6)), rel=0.1)


def test_camera_noise_is_correlated_as_demosaicing_makes_it():
    """Independent per-pixel noise has no spatial correlation; demosaiced noise has; chroma 0 is grey noise."""
    lin = np.full((128, 128, 3), 0.2, np.float32)
    rng = np.random.default_rng(1)
    white = camera_noise_field(lin, rng, shot=2e-3, read=1e-5, chroma=1.0, bayer=False)
    mosaic = camera_noise_field(lin, rng, shot=2e-3, read=1e-5, chroma=1.0, bayer=True)
    grey = camera_noise_field(lin, rng, shot=2e-3, read=1e-5, chroma=0.0, bayer=True)
    assert abs(lag1(white)) < 0.05 and abs(channel_corr(white)) < 0.05
    assert lag1(mosaic) > 0.3
    assert channel_corr(grey) > 0.999
    assert 0.05 < channel_corr(camera_noise_field(lin, rng, 2e-3, 1e-5, chroma=0.5)) < 0.999


def test_camera_noise_keeps_the_mean_colour():
    img = np.full((96, 96, 3), [0.3, 0.5, 0.7], np.float32)
    out = add_camera_noise(img, np.random.default_rng(0), shot=2e-3, read=1e-5)
    assert np.abs(out.mean(axis=(0, 1)) - img[0, 0]).max() * 255 < 1.0
    assert out.std() * 255 > 2


# ------------------------------------------------------------------ JPEG
def test_jpeg_quantises_and_quality_orders_the_error():
    img = photo()
    low, high = add_jpeg(img, 20), add_jpeg(img, 95)
    assert low.shape == img.shape and low.dtype == np.float32
    assert np.allclose(low * 255, np.round(low * 255), atol=1e-3)  # 8-bit levels
    assert np.abs(low - img).mean() > np.abs(high - img).mean()
    assert np.array_equal(synth([{'type': 'jpeg', 'quality': [30, 90]}], img, 5),
                          synth([{'type': 'jpeg', 'quality': [30, 90]}], img, 5))


def test_jpeg_error_shows_8x8_blocks():
    """Block-based coding: the error jumps more across 8x8 block borders than inside blocks."""
    img = photo(128, 128) + np.random.default_rng(0).normal(0, 0.03, (128, 128, 3)).astype(np.float32)
    err = (add_jpeg(np.clip(img, 0, 1), 15) - np.clip(img, 0, 1)).mean(axis=2)
    step = np.abs(np.diff(err, axis=1)).mean(axis=0)  # 127 column steps
    border, inside = step[7::8].mean(), np.delete(step, np.s_[7::8]).mean()
    assert border > 1.2 * inside


# ------------------------------------------------------------------ rain
RAIN = {'type': 'rain', 'density': 0.003, 'length': 20, 'angle': 10, 'intensity': 0.6}


def test_one_layer_without_mist_is_the_original_rain():
    """The new keys at their defaults draw nothing: older options give the samples they always gave."""
    img = photo()
    old = add_rain(img, np.random.default_rng(7), 0.003, 20, 10, 0.6)
    assert np.array_equal(synth([RAIN], img, 7), old)
    assert np.array_equal(synth([dict(RAIN, layers=1, mist=0)], img, 7), old)


def test_more_layers_more_streaks_and_mist_lifts_and_flattens():
    img = photo()
    one = synth([dict(RAIN, layers=1, mist=0.0001)], img, 2)
    three = synth([dict(RAIN, layers=3)], img, 2)
    misty = synth([dict(RAIN, layers=1, mist=0.3)], img, 2)
    changed = lambda out: float((np.abs(out - img).max(axis=2) > 10 / 255).mean())  # noqa: E731
    assert changed(three) > changed(one)
    assert misty.mean() > one.mean() and misty.std() < one.std()
    for out in (one, three, misty):
        assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1


def test_layered_rain_screen_blend_of_nothing_is_the_image():
    img = photo()
    assert np.array_equal(add_layered_rain(img, np.random.default_rng(0), []), img)


# ------------------------------------------------------------------ haze
def test_scene_depth_is_far_at_the_top_and_follows_edges():
    h, w = 96, 128
    img = np.full((h, w, 3), 0.85, np.float32)  # bright sky
    img[h // 2:, :] = 0.25                       # dark ground: near
    img[20:60, 40:70] = 0.1                      # a dark near object against the sky
    d = scene_depth(img, np.random.default_rng(0))
    assert d.shape == (h, w) and d.dtype == np.float32 and d.min() >= 0 and d.max() <= 1
    assert d[:h // 4].mean() > d[-h // 4:].mean()
    assert d[35:45, 50:60].mean() < d[35:45, 5:25].mean() - 0.1  # the object is nearer than the sky beside it


def test_outdoor_haze_lifts_far_more_than_near_and_is_seeded():
    img = photo()
    spec = [{'type': 'haze', 'depth': 'scene', 'beta': 1.5, 'airlight': 0.9}]
    out = synth(spec, img, 0)
    assert np.array_equal(out, synth(spec, img, 0))
    lift = (out - img).mean(axis=(1, 2))
    assert lift[:24].mean() > lift[-24:].mean()
    mild = synth([{'type': 'haze', 'depth': 'scene', 'beta': 0.3, 'airlight': 0.9}], img, 0)
    assert np.abs(mild - img).mean() < np.abs(out - img).mean()


def test_non_uniform_airlight_varies_across_the_image():
    flat = np.zeros((64, 64, 3), np.float32)
    even = synth([{'type': 'haze', 'depth': 'row', 'beta': 3.0, 'airlight': 0.8}], flat, 1)
    uneven = synth([{'type': 'haze', 'depth': 'row', 'beta': 3.0, 'airlight': 0.8, 'airlight_variation': 0.2}],
                   flat, 1)
    assert even[:, :, 0].std(axis=1).max() < 0.02 * 0.8   # each row: one depth, one airlight (small tilt only)
    assert uneven[:, :, 0].std(axis=1).max() > 0.02
    assert add_haze(flat, 1.0, np.full((64, 64, 1), 0.5, np.float32), np.ones((64, 64), np.float32)).shape == flat.shape


# ------------------------------------------------------------------ options
def test_tasks_of_the_new_steps():
    assert synthesis_task(parse_synthesis([{'type': 'camera_noise'}, 'jpeg'])) == 'noise+jpeg'
    assert synthesis_task(parse_synthesis(['camera_noise'])) == 'noise'


@pytest.mark.parametrize('spec, words', [
    ({'type': 'haze', 'depth': 'lidar'}, ['depth', 'proxy', 'scene', 'row']),
    ({'type': 'camera_noise', 'shot': [0, 0.01]}, ['shot', 'positive']),
    ({'type': 'camera_noise', 'bayer': 'yes'}, ['bayer']),
    ({'type': 'jpeg', 'quality': [90, 30]}, ['quality', '[lo, hi]']),
    ({'type': 'rain', 'layers': [3, 1]}, ['layers']),
    ({'type': 'camera_noise', 'iso': 800}, ['unknown keys', 'iso']),
])
def test_bad_new_step_options_are_named(spec, words):
    with pytest.raises(ValueError) as err:
        parse_synthesis([spec], where='datasets.train source 0')
    assert all(w in str(err.value) for w in words), str(err.value)
