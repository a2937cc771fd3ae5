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
                     blur=0.0)
HAZE_DEFAULTS = dict(beta=(0.6, 1.8), airlight=(0.7, 1.0), tint=0.0)
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
    y = np.linspace(1, 0, h, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    ramp = np.clip(y + np.float32(rng.uniform(-0.3, 0.3)) * x, 0, 1)
    k = max(3, (min(h, w) // 8) | 1)
    dark = cv2.blur(np.ascontiguousarray(img.min(axis=2)), (k, k))
    field = cv2.resize(rng.random((4, 4), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.5 * ramp + 0.3 * dark + 0.2 * field, 0, 1).astype(np.float32)


def add_haze(img: np.ndarray, beta: float, airlight, depth: np.ndarray) -> np.ndarray:
    """Atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    Args:
        img: clean J, (H, W, C) float32 in [0, 1].
        beta: scattering coefficient (for d in [0, 1]; 0.6..1.8 gives t down to ~0.17).
        airlight: global atmospheric light A in [0, 1]: a number (grey) or one value per channel.
        depth: d, (H, W) float32 in [0, 1] (see :func:`depth_proxy`).

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    t = np.exp(-np.float32(beta) * depth)[:, :, None].astype(np.float32)
    a = np.asarray(airlight, dtype=np.float32).reshape(-1)[None, None, :]
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


# --------------------------------------------------------------------------- options -> steps
def _draw(value, rng: np.random.Generator) -> float:
    """A scalar stays; a two-element [lo, hi] is drawn uniformly."""
    if isinstance(value, (list, tuple)):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


@dataclass(frozen=True)
class SynthStep:
    """One synthesis step parsed from the options.

    Attributes:
        kind: 'noise', 'rain', 'haze', 'down', 'downup', 'clean' (lq = gt) or
            'tone' (a scene step: changes the clean photo itself, see :func:`synthesize_pair`).
        params: noise: sigma (list of choices); rain: density, length, angle,
            intensity, width, blur; haze: beta, airlight, tint (per-channel
            airlight jitter: each channel gets airlight + U(-tint, tint));
            tone: contrast, brightness, gamma, saturation, gain (per-channel
            colour-balance jitter: each channel is multiplied by 1 + U(-gain, gain));
            down/downup: scale. Ranges are [lo, hi] (uniform), scalars are fixed.
    """
    kind: str
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        """How much this step shrinks the image (down: its scale, others 1)."""
        return int(self.params['scale']) if self.kind == 'down' else 1

    @property
    def task(self) -> str:
        return 'sr' if self.kind in ('down', 'downup') else self.kind

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
        if self.kind == 'rain':
            return add_rain(img, rng, _draw(p['density'], rng), _draw(p['length'], rng), _draw(p['angle'], rng),
                            _draw(p['intensity'], rng), _draw(p['width'], rng), _draw(p['blur'], rng))
        if self.kind == 'haze':
            beta, airlight = _draw(p['beta'], rng), _draw(p['airlight'], rng)
            tint = _draw(p['tint'], rng)
            if tint > 0:
                airlight = np.clip(airlight + rng.uniform(-tint, tint, size=img.shape[2]), 0, 1)
            return add_haze(img, beta, airlight, depth_proxy(img, rng))
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
}


def _parse_step(spec: Union[str, dict], where: str) -> SynthStep:
    if isinstance(spec, str):
        m = re.fullmatch(r'(noise|down|downup)(\d+)?|(rain|haze|clean|tone)', spec.strip().lower())
        if m is None:
            raise ValueError(f"{where}: unknown synthesis step {spec!r}; use noise, noise25 (fixed sigma), rain, haze, "
                             "clean, tone, down2, downup2, or a dict such as {type: noise, sigma: [15, 25, 50]}.")
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
    elif kind in ('rain', 'haze', 'tone'):
        defaults = {'rain': RAIN_DEFAULTS, 'haze': HAZE_DEFAULTS, 'tone': TONE_DEFAULTS}[kind]
        for key, default in defaults.items():
            value = params.get(key, default)
            if isinstance(value, (list, tuple)) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f'{where}: {kind} {key} must be a number or a range [lo, hi], got {value!r}.')
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
    ``rain``, ``haze``, ``clean`` (lq = gt: teaches the network to leave clean
    photos alone), ``tone`` (a leading scene step: contrast, brightness, gamma, saturation, gain
    of the clean photo itself), ``downN`` (bicubic N x down), ``downupN`` (down then up);
    or dicts ``{type: noise, sigma: [15, 25, 50]}``, ``{type: rain, density: [lo, hi],
    length: .., angle: .., intensity: .., width: .., blur: ..}``, ``{type: haze, beta: .., airlight: ..,
    tint: ..}``,
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
