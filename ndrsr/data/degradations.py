"""Synthetic degradations: pure functions of (image, parameters, numpy Generator).

All images are float32 ndarrays (H, W, C) in [0, 1] (BasicSR's BGR order; every
function here is colour-order agnostic). Every random draw comes from the
``rng`` argument (``numpy.random.Generator``), never from global state, so a
given seed gives the same result on every run and machine (same numpy version).

The synthesis options (``synthesize: [...]`` of a source) are parsed by
:func:`parse_synthesis` into :class:`SynthStep` objects and applied in order by
:func:`apply_synthesis`; ``[noise, down2]`` adds noise then down-scales,
``[down2, noise]`` gives a noisy low-resolution image.

``tone`` steps are different: they change the *scene* (the clean photo itself,
gt and lq alike) before any degradation, e.g. ``[tone, clean]`` gives low-contrast,
bright or colour-balanced clean photos that must come out unchanged, and
``[tone, haze]`` hazes such a photo. They may only lead a list
(:func:`split_scene_steps`, :func:`synthesize_pair`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

NOISE_SIGMAS = (15, 25, 50)
RAIN_DEFAULTS = dict(density=(0.002, 0.006), length=(10, 30), angle=(-25, 25), intensity=(0.5, 0.9), width=0.75,
                     blur=0.0, layers=1, mist=0.0)
HAZE_DEFAULTS = dict(beta=(0.6, 1.8), airlight=(0.7, 1.0), tint=0.0, depth='proxy', airlight_variation=0.0)
HAZE_DEPTHS = ('proxy', 'scene', 'row')
CAMERA_NOISE_DEFAULTS = dict(shot=(2e-4, 1e-2), read=(1e-6, 2e-4), chroma=(0.3, 1.0), blur=(0.0, 0.6), bayer=True)
JPEG_DEFAULTS = dict(quality=(30, 95))
TONE_DEFAULTS = dict(contrast=1.0, brightness=0.0, gamma=1.0, saturation=1.0, gain=0.0)
# Parameters added after the first release of the synthesis: at their defaults they draw nothing from the
# generator, so older options reproduce their samples exactly.


# --------------------------------------------------------------------------- pure functions
def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, clipped to [0, 1].

    Args:
        img: (H, W, C) float32 in [0, 1].
        sigma: standard deviation on the 0..255 scale (15, 25, 50 in the paper).
        rng: numpy Generator.

    Returns:
        (H, W, C) float32 in [0, 1]. Not quantised to 8 bits.
    """
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.)
    return np.clip(img + noise, 0, 1).astype(np.float32)


def bicubic_down(img: np.ndarray, scale: int = 2) -> np.ndarray:
    """MATLAB-style bicubic down-scaling (``basicsr.utils.matlab_functions.imresize``, antialiased).

    Args:
        img: (H, W, C) float32 in [0, 1]; H and W must be multiples of ``scale``
            (crop with ``basicsr.data.transforms.mod_crop`` first).
        scale: integer factor.

    Returns:
        (H / scale, W / scale, C) float32, clipped to [0, 1], not rounded.
    """
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f'bicubic_down: image {h}x{w} is not a multiple of scale {scale}; mod-crop it first.')
    out = imresize(np.ascontiguousarray(img, dtype=np.float32), 1 / scale)
    return np.clip(out, 0, 1).astype(np.float32)


def bicubic_down_up(img: np.ndarray, scale: int = 2) -> np.ndarray:
    """Bicubic down by ``scale`` then back up to the input size (MATLAB imresize both ways).

    For same-resolution networks: the SR degradation as a blur. (H, W, C) -> (H, W, C).
    """
    small = bicubic_down(img, scale)
    return np.clip(imresize(small, scale), 0, 1).astype(np.float32)


def _line_kernel(length: float, angle: float, width: float = 0.75) -> np.ndarray:
    """A (k, k) float32 kernel holding an anti-aliased line of ``length`` px and ``width`` px, ``angle`` degrees
    from vertical, max 1."""
    k = (int(math.ceil(length)) + (2 * int(math.ceil(width)) if width > 0.75 else 0)) | 1  # 0.75: the original size
    kernel = np.zeros((k * 4, k * 4), np.float32)  # drawn 4x larger, then area-downsampled (anti-aliasing)
    c = k * 2 - 0.5
    dx, dy = math.sin(math.radians(angle)) * length * 2, math.cos(math.radians(angle)) * length * 2
    p1 = (int(round((c - dx) * 16)), int(round((c - dy) * 16)))
    p2 = (int(round((c + dx) * 16)), int(round((c + dy) * 16)))
    cv2.line(kernel, p1, p2, 1.0, thickness=max(1, int(round(width * 4))), lineType=cv2.LINE_AA, shift=4)
    kernel = cv2.resize(kernel, (k, k), interpolation=cv2.INTER_AREA)
    return kernel / max(float(kernel.max()), 1e-6)


def rain_layer(h: int, w: int, rng: np.random.Generator, density: float, length: float, angle: float,
               width: float = 0.75, blur: float = 0.0) -> np.ndarray:
    """Synthetic rain streaks: sparse random drops smeared along one direction.

    Args:
        h, w: output size.
        density: fraction of pixels that seed a streak (e.g. 0.004).
        length: streak length in pixels.
        angle: streak direction in degrees from vertical.
        width: streak width in pixels (0.75: the thin streaks of Rain100L; 2-3: heavy rain).
        blur: Gaussian sigma (px) of a defocus blur of the streak layer (0: none).

    Returns:
        (H, W) float32 in [0, 1] (streak opacity).
    """
    drops = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    if not drops.any():  # small crops: never a 'rain' sample without rain
        drops[rng.integers(h), rng.integers(w)] = 1
    drops *= rng.uniform(0.6, 1.0, size=(h, w)).astype(np.float32)
    streaks = cv2.filter2D(drops, -1, _line_kernel(length, angle, width), borderType=cv2.BORDER_CONSTANT)
    if blur > 0:
        streaks = cv2.GaussianBlur(streaks, (0, 0), blur)
    return np.clip(streaks, 0, 1)


def add_rain(img: np.ndarray, rng: np.random.Generator, density: float, length: float, angle: float,
             intensity: float, width: float = 0.75, blur: float = 0.0) -> np.ndarray:
    """Blend white rain streaks onto ``img`` (screen blend: ``img + a * s * (1 - img)``).

    Args:
        img: (H, W, C) float32 in [0, 1].
        intensity: streak opacity a in [0, 1].
        density, length, angle, width, blur: see :func:`rain_layer`.

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    s = rain_layer(img.shape[0], img.shape[1], rng, density, length, angle, width, blur)[:, :, None]
    s = s * np.float32(intensity)
    return np.clip(img + s * (1 - img), 0, 1).astype(np.float32)


def add_layered_rain(img: np.ndarray, rng: np.random.Generator, layers: Sequence[dict], mist: float = 0.0,
                     mist_airlight: float = 0.85) -> np.ndarray:
    """Several rain layers (near and far streaks) screen-blended onto ``img``, then an optional mist veil.

    Args:
        img: (H, W, C) float32 in [0, 1].
        layers: one dict per layer with the :func:`rain_layer` keys (density, length, angle, width, blur)
            and ``intensity`` (the layer's opacity).
        mist: strength of the rain mist in [0, 1): ``img * (1 - mist) + mist_airlight * mist`` (the veil of
            fine drops in heavy rain), applied under the streaks.
        mist_airlight: brightness of the mist.

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    if mist > 0:
        out = out * np.float32(1 - mist) + np.float32(mist_airlight * mist)
    clear = np.ones((h, w), np.float32)  # product of (1 - opacity) over layers: screen blend of the layers
    for layer in layers:
        s = rain_layer(h, w, rng, layer['density'], layer['length'], layer['angle'], layer['width'], layer['blur'])
        clear *= 1 - s * np.float32(layer['intensity'])
    opacity = (1 - clear)[:, :, None]
    return np.clip(out + opacity * (1 - out), 0, 1).astype(np.float32)


def depth_proxy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible relative scene depth for haze synthesis, without a depth network.

    Outdoor photos are usually farther at the top (horizon, sky) than at the
    bottom (ground), and bright, colourless regions (sky, distant scenery) have
    a high dark channel (He et al.'s prior) and tend to be far. The proxy mixes
    a vertical ramp with a random horizon tilt (0.5), the locally-smoothed dark
    channel (0.3) and a smooth random field (0.2).

    Args:
        img: (H, W, C) float32 in [0, 1].

    Returns:
        (H, W) float32 in [0, 1], 1 = far.
    """
    h, w = img.shape[:2]
    ramp = row_depth(h, w, rng)
    k = max(3, (min(h, w) // 8) | 1)
    dark = cv2.blur(np.ascontiguousarray(img.min(axis=2)), (k, k))
    field = cv2.resize(rng.random((4, 4), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.5 * ramp + 0.3 * dark + 0.2 * field, 0, 1).astype(np.float32)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide): smooths ``src`` while following the edges of ``guide``.

    Args:
        guide, src: (H, W) float32.
        radius: box radius in pixels.
        eps: regularisation (larger: smoother, fewer edges kept).

    Returns:
        (H, W) float32.
    """
    k = (2 * radius + 1, 2 * radius + 1)
    mean_i, mean_p = cv2.blur(guide, k), cv2.blur(src, k)
    cov_ip = cv2.blur(guide * src, k) - mean_i * mean_p
    var_i = cv2.blur(guide * guide, k) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return (cv2.blur(a, k) * guide + cv2.blur(b, k)).astype(np.float32)


def row_depth(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Depth from the image row: far at the top (horizon, sky), near at the bottom, with a random tilt.

    Returns (H, W) float32 in [0, 1], 1 = far.
    """
    y = np.linspace(1, 0, h, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    return np.clip(y + np.float32(rng.uniform(-0.3, 0.3)) * x, 0, 1).astype(np.float32)


def scene_depth(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A depth estimate of an outdoor scene that follows its objects' edges.

    The row prior (far at the top) and the dark channel prior (He et al.: bright colourless regions, sky
    and distant scenery, are far) are mixed, then refined with a guided filter on the photo itself, so the
    haze changes at object boundaries instead of in smooth blobs (no halos around near objects).

    Args:
        img: (H, W, C) float32 in [0, 1], the clean photo.

    Returns:
        (H, W) float32 in [0, 1], 1 = far.
    """
    h, w = img.shape[:2]
    grey = np.ascontiguousarray(img.mean(axis=2), dtype=np.float32)
    k = max(3, (min(h, w) // 32) | 1)
    dark = cv2.erode(np.ascontiguousarray(img.min(axis=2)), np.ones((k, k), np.uint8))
    rough = 0.55 * row_depth(h, w, rng) + 0.45 * dark
    depth = guided_filter(grey, rough.astype(np.float32), max(2, min(h, w) // 24), 1e-3)
    lo, hi = float(depth.min()), float(depth.max())
    return ((depth - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def smooth_field(h: int, w: int, rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """A smooth random field with values in [-1, 1] (a ``cells`` x ``cells`` grid, bicubic). (H, W) float32."""
    grid = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), -1, 1)


def add_haze(img: np.ndarray, beta: float, airlight, depth: np.ndarray) -> np.ndarray:
    """Atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    Args:
        img: clean J, (H, W, C) float32 in [0, 1].
        beta: scattering coefficient (for d in [0, 1]; 0.6..1.8 gives t down to ~0.17).
        airlight: atmospheric light A in [0, 1]: a number (grey), one value per channel, or an
            (H, W, 1 or C) map (non-uniform airlight).
        depth: d, (H, W) float32 in [0, 1] (see :func:`depth_proxy`).

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    t = np.exp(-np.float32(beta) * depth)[:, :, None].astype(np.float32)
    a = np.asarray(airlight, dtype=np.float32)
    if a.ndim < 3:
        a = a.reshape(-1)[None, None, :]
    return np.clip(img * t + a * (1 - t), 0, 1).astype(np.float32)


def adjust_tone(img: np.ndarray, contrast: float = 1.0, brightness: float = 0.0, gamma: float = 1.0,
                saturation: float = 1.0, gain=0.0) -> np.ndarray:
    """Photometric variation of a clean photo (an ordinary photo, not a degradation).

    ``out = clip(((img ** gamma) - m) * contrast + m + brightness)`` with m the image mean, then the
    saturation is scaled around the per-pixel grey and each channel multiplied by ``1 + gain_c``.

    Args:
        img: (H, W, C) float32 in [0, 1].
        contrast: global contrast factor (< 1: flatter, misty-looking photos).
        brightness: added offset.
        gamma: exponent (< 1 brightens the shadows).
        saturation: colour saturation factor (0: grey).
        gain: a number or one value per channel: colour balance (warm/cool photos).

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    out = np.power(np.clip(img, 0, 1), np.float32(gamma)) if gamma != 1.0 else img.astype(np.float32)
    if contrast != 1.0 or brightness != 0.0:
        m = np.float32(out.mean())
        out = (out - m) * np.float32(contrast) + m + np.float32(brightness)
    if saturation != 1.0 and out.shape[2] > 1:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * np.float32(saturation)
    g = np.asarray(gain, dtype=np.float32).reshape(-1)
    if np.any(g != 0):
        out = out * (1 + g)[None, None, :]
    return np.clip(out, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- camera noise and JPEG
def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve inverted (IEC 61966-2-1). (H, W, C) float32 [0, 1] -> linear, same shape."""
    img = np.clip(img, 0, 1).astype(np.float32)
    return np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(img: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve. (H, W, C) float32 linear [0, 1] -> sRGB [0, 1], same shape."""
    img = np.clip(img, 0, 1).astype(np.float32)
    return np.where(img <= 0.0031308, img * 12.92, 1.055 * np.power(img, 1 / 2.4) - 0.055).astype(np.float32)


def bayer_mask(h: int, w: int, offset: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """Which colour each pixel of a 2x2 Bayer mosaic (RGGB, BasicSR's BGR channel order) samples.

    Args:
        h, w: size.
        offset: (dy, dx) in {0, 1}: which of the four RGGB phases the top-left pixel is.

    Returns:
        (H, W, 3) float32 of 0/1, exactly one 1 per pixel (B, G, R channels).
    """
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = (yy + offset[0]) % 2, (xx + offset[1]) % 2
    mask = np.zeros((h, w, 3), np.float32)
    mask[..., 2] = (yy == 0) & (xx == 0)  # R
    mask[..., 1] = (yy + xx) == 1         # G (two per 2x2)
    mask[..., 0] = (yy == 1) & (xx == 1)  # B
    return mask


_DEMOSAIC_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_DEMOSAIC_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def bilinear_demosaic(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of a sparse (H, W, 3) mosaic (zeros where a channel is not sampled).

    Linear, so applied to a noise mosaic alone it gives the noise a demosaiced photo carries:
    interpolated sites average their neighbours (spatial correlation). (H, W, 3) -> (H, W, 3) float32.
    """
    out = np.empty_like(mosaic, dtype=np.float32)
    for c, kernel in ((0, _DEMOSAIC_RB), (1, _DEMOSAIC_G), (2, _DEMOSAIC_RB)):
        # REFLECT_101 mirrors about the edge pixel, which keeps the Bayer phase of the mirrored samples
        out[..., c] = cv2.filter2D(np.ascontiguousarray(mosaic[..., c]), -1, kernel,
                                   borderType=cv2.BORDER_REFLECT_101)
    return out


def camera_noise_field(linear: np.ndarray, rng: np.random.Generator, shot: float, read: float,
                       chroma: float = 1.0, blur: float = 0.0, bayer: bool = True) -> np.ndarray:
    """Noise of a camera sensor and its processing, in linear RGB.

    Heteroscedastic Poisson-Gaussian noise on the raw signal (variance ``shot * x + read``, the model of
    Foi et al. and of Brooks et al.'s "Unprocessing images"), drawn per Bayer site and demosaiced
    bilinearly (spatially and across channels correlated), its colour part scaled by ``chroma`` (cameras
    denoise chroma harder than luma) and optionally blurred (in-camera denoising).

    Args:
        linear: (H, W, 3) float32 linear RGB in [0, 1], the clean signal.
        shot: shot-noise gain (variance per unit of signal).
        read: read-noise variance.
        chroma: 0 grey noise only .. 1 the demosaiced colour noise unchanged.
        blur: Gaussian sigma (px) of in-camera noise smoothing (0: none).
        bayer: draw on a Bayer mosaic and demosaic (False: independent noise per pixel and channel).

    Returns:
        (H, W, 3) float32 noise to add to ``linear``.
    """
    h, w = linear.shape[:2]
    std = np.sqrt(np.float32(shot) * np.clip(linear, 0, 1) + np.float32(read)).astype(np.float32)
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * std
    if bayer:
        mask = bayer_mask(h, w, (int(rng.integers(2)), int(rng.integers(2))))
        noise = bilinear_demosaic(noise * mask)
    grey = noise.mean(axis=2, keepdims=True)
    noise = grey + (noise - grey) * np.float32(chroma)
    if blur > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), blur)
    return noise.astype(np.float32)


def add_camera_noise(img: np.ndarray, rng: np.random.Generator, shot: float, read: float, chroma: float = 1.0,
                     blur: float = 0.0, bayer: bool = True) -> np.ndarray:
    """Realistic camera noise on an sRGB photo: to linear RGB, :func:`camera_noise_field`, back to sRGB.

    Args:
        img: (H, W, 3) float32 sRGB in [0, 1].
        shot, read, chroma, blur, bayer: see :func:`camera_noise_field`.

    Returns:
        (H, W, 3) float32 in [0, 1] (the noise is stronger in the shadows after the sRGB curve, as in photos).
    """
    linear = srgb_to_linear(img)
    noisy = linear + camera_noise_field(linear, rng, shot, read, chroma, blur, bayer)
    return linear_to_srgb(noisy)


def add_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG compression at ``quality`` (1..100) with OpenCV's libjpeg (4:2:0 chroma subsampling).

    BasicSR's ``add_jpg_compression`` does the same but hands the encoder a float array, which OpenCV
    converts with a warning on every call (a line per training sample); here the image is rounded to
    8 bits first. (H, W, 3) float32 [0, 1] -> (H, W, 3) float32 [0, 1], quantised to 8 bits.
    """
    img8 = np.clip(np.rint(img * 255.), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode('.jpg', img8, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f'JPEG encoding failed at quality {quality}')
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).astype(np.float32).reshape(img.shape) / np.float32(255.)


# --------------------------------------------------------------------------- options -> steps
def _draw(value, rng: np.random.Generator) -> float:
    """A scalar stays; a two-element [lo, hi] is drawn uniformly."""
    if isinstance(value, (list, tuple)):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


def _draw_log(value, rng: np.random.Generator) -> float:
    """A scalar stays; a positive [lo, hi] is drawn log-uniformly (for noise variances spanning decades)."""
    if isinstance(value, (list, tuple)):
        return float(np.exp(rng.uniform(np.log(value[0]), np.log(value[1]))))
    return float(value)


def _draw_int(value, rng: np.random.Generator) -> int:
    """A scalar stays; [lo, hi] gives an integer drawn uniformly from lo..hi inclusive."""
    if isinstance(value, (list, tuple)):
        return int(rng.integers(int(value[0]), int(value[1]) + 1))
    return int(value)


# How far layers behind the first are drawn: each further layer's streaks are shorter, thinner, fainter
# and more out of focus (they are farther from the camera).
FAR_LAYER = dict(length=0.6, width=0.7, intensity=0.6, blur=0.5)


def _rain_layers(p: Dict[str, Any], rng: np.random.Generator) -> List[dict]:
    """Draw the streak layers of a rain step: the first from the ranges, farther ones scaled by FAR_LAYER and
    falling in the same wind direction (within 5 degrees)."""
    first = {k: _draw(p[k], rng) for k in ('density', 'length', 'angle', 'intensity', 'width', 'blur')}
    layers = [first]
    for i in range(1, _draw_int(p['layers'], rng)):
        f = {k: v ** i for k, v in FAR_LAYER.items()}
        layers.append(dict(density=_draw(p['density'], rng), length=max(3.0, first['length'] * f['length']),
                           angle=first['angle'] + float(rng.uniform(-5, 5)),
                           intensity=first['intensity'] * f['intensity'],
                           width=max(0.5, first['width'] * f['width']), blur=first['blur'] + f['blur'] * i))
    return layers


@dataclass(frozen=True)
class SynthStep:
    """One synthesis step parsed from the options.

    Attributes:
        kind: 'noise' (white Gaussian), 'camera_noise', 'jpeg', 'rain', 'haze', 'down', 'downup',
            'clean' (lq = gt) or 'tone' (a scene step: changes the clean photo itself, see
            :func:`synthesize_pair`).
        params: noise: sigma (list of choices); camera_noise: shot, read (variances, drawn log-uniformly),
            chroma, blur, bayer (see :func:`camera_noise_field`); jpeg: quality (integer range);
            rain: density, length, angle, intensity, width, blur, layers (integer range: near and far
            streak layers, see FAR_LAYER), mist (veil strength); haze: beta, airlight, tint (per-channel
            airlight jitter: each channel gets airlight + U(-tint, tint)), depth ('proxy', 'scene' or
            'row': :func:`depth_proxy`, :func:`scene_depth`, :func:`row_depth`), airlight_variation
            (non-uniform airlight A * (1 + v * smooth field)); tone: contrast, brightness, gamma,
            saturation, gain (per-channel colour-balance jitter: each channel is multiplied by
            1 + U(-gain, gain)); down/downup: scale. Ranges are [lo, hi] (uniform), scalars are fixed.
    """
    kind: str
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        """How much this step shrinks the image (down: its scale, others 1)."""
        return int(self.params['scale']) if self.kind == 'down' else 1

    @property
    def task(self) -> str:
        return {'down': 'sr', 'downup': 'sr', 'camera_noise': 'noise'}.get(self.kind, self.kind)

    @property
    def is_scene(self) -> bool:
        """True for steps that change the clean photo itself (gt and lq), not only lq."""
        return self.kind == 'tone'

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float32 in [0, 1] -> degraded (H / scale, W / scale, C)."""
        p = self.params
        if self.kind == 'noise':
            sigmas = p['sigma']
            sigma = sigmas[int(rng.integers(len(sigmas)))] if len(sigmas) > 1 else sigmas[0]
            return add_gaussian_noise(img, sigma, rng)
        if self.kind == 'rain' and (p['layers'] != 1 or p['mist'] != 0):
            layers = _rain_layers(p, rng)
            mist = _draw(p['mist'], rng)
            return add_layered_rain(img, rng, layers, mist, float(rng.uniform(0.75, 0.95)) if mist > 0 else 0.85)
        if self.kind == 'rain':
            return add_rain(img, rng, _draw(p['density'], rng), _draw(p['length'], rng), _draw(p['angle'], rng),
                            _draw(p['intensity'], rng), _draw(p['width'], rng), _draw(p['blur'], rng))
        if self.kind == 'haze':
            beta, airlight = _draw(p['beta'], rng), _draw(p['airlight'], rng)
            tint = _draw(p['tint'], rng)
            if tint > 0:
                airlight = np.clip(airlight + rng.uniform(-tint, tint, size=img.shape[2]), 0, 1)
            depth = {'proxy': depth_proxy, 'scene': scene_depth,
                     'row': lambda im, r: row_depth(im.shape[0], im.shape[1], r)}[p['depth']](img, rng)
            variation = _draw(p['airlight_variation'], rng)
            if variation > 0:  # brighter and darker patches of sky light: A * (1 + v * field)
                field = smooth_field(img.shape[0], img.shape[1], rng)[:, :, None]
                airlight = np.clip(np.asarray(airlight, np.float32).reshape(1, 1, -1) * (1 + variation * field), 0, 1)
            return add_haze(img, beta, airlight, depth)
        if self.kind == 'camera_noise':
            return add_camera_noise(img, rng, _draw_log(p['shot'], rng), _draw_log(p['read'], rng),
                                    _draw(p['chroma'], rng), _draw(p['blur'], rng), bool(p['bayer']))
        if self.kind == 'jpeg':
            return add_jpeg(img, _draw_int(p['quality'], rng))
        if self.kind == 'clean':
            return img
        if self.kind == 'tone':
            tone = [_draw(p[k], rng) for k in ('contrast', 'brightness', 'gamma', 'saturation')]
            gain = _draw(p['gain'], rng)
            gains = rng.uniform(-gain, gain, size=img.shape[2]) if gain > 0 else 0.0
            return adjust_tone(img, *tone, gain=gains)
        if self.kind == 'down':
            return bicubic_down(img, int(p['scale']))
        if self.kind == 'downup':
            return bicubic_down_up(img, int(p['scale']))
        raise ValueError(f'unknown synthesis step {self.kind}')


_STEP_KEYS = {
    'noise': {'sigma'},
    'rain': set(RAIN_DEFAULTS),
    'haze': set(HAZE_DEFAULTS),
    'down': {'scale'},
    'downup': {'scale'},
    'clean': set(),
    'tone': set(TONE_DEFAULTS),
    'camera_noise': set(CAMERA_NOISE_DEFAULTS),
    'jpeg': set(JPEG_DEFAULTS),
}
_STEP_DEFAULTS = {'rain': RAIN_DEFAULTS, 'haze': HAZE_DEFAULTS, 'tone': TONE_DEFAULTS,
                  'camera_noise': CAMERA_NOISE_DEFAULTS, 'jpeg': JPEG_DEFAULTS}
_CHOICE_KEYS = {('haze', 'depth'): HAZE_DEPTHS, ('camera_noise', 'bayer'): (True, False)}
_POSITIVE_KEYS = {('camera_noise', 'shot'), ('camera_noise', 'read')}  # drawn log-uniformly


def _parse_step(spec: Union[str, dict], where: str) -> SynthStep:
    if isinstance(spec, str):
        named = r'(noise|down|downup)(\d+)?|(rain|haze|clean|tone|camera_noise|jpeg)'
        m = re.fullmatch(named, spec.strip().lower())
        if m is None:
            raise ValueError(f"{where}: unknown synthesis step {spec!r}; use noise, noise25 (fixed sigma), "
                             "camera_noise, jpeg, rain, haze, clean, tone, down2, downup2, or a dict such as "
                             "{type: noise, sigma: [15, 25, 50]}.")
        if m.group(3):
            spec = {'type': m.group(3)}
        elif m.group(1) == 'noise':
            spec = {'type': 'noise'} if m.group(2) is None else {'type': 'noise', 'sigma': int(m.group(2))}
        else:
            if m.group(2) is None:
                raise ValueError(f"{where}: synthesis step {spec!r} needs a scale, e.g. {m.group(1)}2.")
            spec = {'type': m.group(1), 'scale': int(m.group(2))}
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'{where}: synthesis step {spec!r} must be a name (noise, rain, haze, down2) or a dict '
                         'with a type.')
    kind = str(spec['type']).lower()
    if kind not in _STEP_KEYS:
        raise ValueError(f"{where}: unknown synthesis type {spec['type']!r}; use one of {sorted(_STEP_KEYS)}.")
    unknown = set(spec) - {'type'} - _STEP_KEYS[kind]
    if unknown:
        raise ValueError(f'{where}: synthesis {kind} has unknown keys {sorted(unknown)}; '
                         f'known: {sorted(_STEP_KEYS[kind])}.')
    params = {k: v for k, v in spec.items() if k != 'type'}
    if kind == 'noise':
        sigma = params.get('sigma', list(NOISE_SIGMAS))
        params['sigma'] = [float(s) for s in (sigma if isinstance(sigma, (list, tuple)) else [sigma])]
        if not params['sigma'] or any(s < 0 for s in params['sigma']):
            raise ValueError(f'{where}: noise sigma must be a non-negative number or a list of them, got {sigma!r}.')
    elif kind in _STEP_DEFAULTS:
        for key, default in _STEP_DEFAULTS[kind].items():
            value = params.get(key, default)
            choices = _CHOICE_KEYS.get((kind, key))
            if choices is not None:
                if value not in choices or isinstance(value, (list, tuple)):
                    raise ValueError(f'{where}: {kind} {key} must be one of {list(choices)}, got {value!r}.')
                params[key] = value
                continue
            if isinstance(value, (list, tuple)) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f'{where}: {kind} {key} must be a number or a range [lo, hi], got {value!r}.')
            if (kind, key) in _POSITIVE_KEYS and min(value if isinstance(value, (list, tuple)) else [value]) <= 0:
                raise ValueError(f'{where}: {kind} {key} must be positive (drawn log-uniformly), got {value!r}.')
            params[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    elif kind == 'clean':
        pass
    else:
        scale = params.get('scale')
        if not isinstance(scale, int) or scale < 2:
            raise ValueError(f'{where}: {kind} needs an integer scale >= 2, got {scale!r}.')
    return SynthStep(kind, params)


def parse_synthesis(spec: Union[None, str, dict, Sequence], where: str = 'synthesize') -> List[SynthStep]:
    """Parse a ``synthesize`` option (a step or a list of steps) into :class:`SynthStep` objects.

    Step names: ``noise`` (sigma drawn from 15/25/50), ``noiseN`` (fixed sigma N),
    ``camera_noise`` (Poisson-Gaussian sensor noise, demosaiced), ``jpeg`` (random quality),
    ``rain``, ``haze``, ``clean`` (lq = gt: teaches the network to leave clean
    photos alone), ``tone`` (a leading scene step: contrast, brightness, gamma, saturation, gain
    of the clean photo itself), ``downN`` (bicubic N x down), ``downupN`` (down then up);
    or dicts ``{type: noise, sigma: [15, 25, 50]}``, ``{type: rain, density: [lo, hi],
    length: .., angle: .., intensity: .., width: .., blur: .., layers: .., mist: ..}``, ``{type: haze, beta: ..,
    airlight: .., tint: .., depth: scene, airlight_variation: ..}``, ``{type: camera_noise, shot: .., read: ..,
    chroma: .., blur: .., bayer: true}``, ``{type: jpeg, quality: [lo, hi]}``,
    ``{type: down, scale: 2}``.
    """
    if spec is None:
        return []
    if isinstance(spec, (str, dict)):
        spec = [spec]
    steps = [_parse_step(s, where) for s in spec]
    kinds = [s.is_scene for s in steps]
    if any(later and not earlier for earlier, later in zip(kinds, kinds[1:])):
        raise ValueError(f'{where}: tone changes the clean photo itself, so it must come before every degradation '
                         f'step, e.g. [tone, haze]; got {[s.kind for s in steps]}.')
    if steps and all(kinds):
        raise ValueError(f'{where}: tone alone degrades nothing; add a degradation after it, or [tone, clean] for '
                         'photos that must come out unchanged.')
    return steps


def apply_synthesis(img: np.ndarray, steps: Sequence[SynthStep], rng: np.random.Generator) -> np.ndarray:
    """Apply ``steps`` in order. (H, W, C) float32 [0, 1] -> (H / s, W / s, C), s = :func:`synthesis_scale`."""
    for step in steps:
        img = step.apply(img, rng)
    return img


def split_scene_steps(steps: Sequence[SynthStep]) -> Tuple[List[SynthStep], List[SynthStep]]:
    """(scene steps, degradation steps): the leading ``tone`` steps and the rest."""
    n = 0
    while n < len(steps) and steps[n].is_scene:
        n += 1
    return list(steps[:n]), list(steps[n:])


def synthesize_pair(gt: np.ndarray, lq: Optional[np.ndarray], steps: Sequence[SynthStep],
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Apply ``steps`` to a sample: scene steps to the clean photo (and a real lq), then degradations to lq.

    Args:
        gt: (H, W, C) float32 in [0, 1], the clean photo.
        lq: None for clean-only sources (lq starts as ``gt``); else the real degraded image,
            (H / s0, W / s0, C) (s0: the pair's own scale), which gets the same scene change as gt
            (the rng is replayed for it).
        steps: parsed synthesis (:func:`parse_synthesis`).
        rng: the sample's generator.

    Returns:
        (gt, lq): gt (H, W, C) and lq (H / s, W / s, C), s = s0 * :func:`synthesis_scale`.
    """
    scene, degradations = split_scene_steps(steps)
    if scene:
        state = rng.bit_generator.state
        new_gt = apply_synthesis(np.ascontiguousarray(gt), scene, rng)
        if lq is not None:
            after = rng.bit_generator.state
            rng.bit_generator.state = state
            lq = apply_synthesis(np.ascontiguousarray(lq), scene, rng)
            rng.bit_generator.state = after
        gt = new_gt
    if lq is None:
        lq = gt
    return gt, apply_synthesis(np.ascontiguousarray(lq), degradations, rng)


def synthesis_scale(steps: Sequence[SynthStep]) -> int:
    """Total down-scaling factor of ``steps``."""
    return int(np.prod([s.scale for s in steps])) if steps else 1


def synthesis_task(steps: Sequence[SynthStep]) -> str:
    """Default task tag: the degradation steps' tags joined by '+', e.g. 'noise+sr' (scene steps are not tasks)."""
    return '+'.join(s.task for s in steps if not s.is_scene)
