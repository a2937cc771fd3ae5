"""The synthesis options: ``synthesize: [...]`` of a source parsed into steps and applied to samples.

A source's ``synthesize`` option is parsed by :func:`parse_synthesis` into :class:`SynthStep`
objects (each holds its parameters: fixed values or ranges drawn per sample) and applied in order by
:func:`apply_synthesis`, which calls the pure functions of :mod:`ndrsr.data.degradations`;
``[noise, down2]`` adds noise then down-scales, ``[down2, noise]`` gives a noisy low-resolution image.

``tone`` steps are different: they change the *scene* (the clean photo itself,
gt and lq alike) before any degradation, e.g. ``[tone, clean]`` gives low-contrast,
bright or colour-balanced clean photos that must come out unchanged, and
``[tone, haze]`` hazes such a photo. They may only lead a list
(:func:`split_scene_steps`, :func:`synthesize_pair`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .degradations import (add_camera_noise, add_gaussian_noise, add_haze, add_jpeg, add_layered_rain, add_rain,
                           adjust_tone, bicubic_down, bicubic_down_up, depth_proxy, row_depth, scene_depth,
                           smooth_field)

NOISE_SIGMAS = (15, 25, 50)
RAIN_DEFAULTS = dict(density=(0.002, 0.006), length=(10, 30), angle=(-25, 25), intensity=(0.5, 0.9), width=0.75,
                     blur=0.0, layers=1, mist=0.0)
HAZE_DEFAULTS = dict(beta=(0.6, 1.8), airlight=(0.7, 1.0), tint=0.0, depth='proxy', airlight_variation=0.0)
# haze ``depth`` choices -> the estimate, (H, W, C) image and rng -> (H, W) depth in [0, 1]
HAZE_DEPTHS = {'proxy': depth_proxy, 'scene': scene_depth,
               'row': lambda img, rng: row_depth(img.shape[0], img.shape[1], rng)}
CAMERA_NOISE_DEFAULTS = dict(shot=(2e-4, 1e-2), read=(1e-6, 2e-4), chroma=(0.3, 1.0), blur=(0.0, 0.6), bayer=True)
JPEG_DEFAULTS = dict(quality=(30, 95))
TONE_DEFAULTS = dict(contrast=1.0, brightness=0.0, gamma=1.0, saturation=1.0, gain=0.0)
# Parameters added after the first release of the synthesis: at their defaults they draw nothing from the
# generator, so older options reproduce their samples exactly.


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
            depth = HAZE_DEPTHS[p['depth']](img, rng)
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
_CHOICE_KEYS = {('haze', 'depth'): tuple(HAZE_DEPTHS), ('camera_noise', 'bayer'): (True, False)}
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
