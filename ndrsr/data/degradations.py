"""Synthetic degradations: pure functions of (image, parameters, numpy Generator).

All images are float32 ndarrays (H, W, C) in [0, 1] (BasicSR's BGR order; every
function here is colour-order agnostic unless it says otherwise). Every random draw comes from the
``rng`` argument (``numpy.random.Generator``), never from global state, so a
given seed gives the same result on every run and machine (same numpy version).

What the options ask for (``synthesize: [...]`` of a source) is parsed and applied by
:mod:`ndrsr.data.synthesis`.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize



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
