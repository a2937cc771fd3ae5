"""Degradation maps: what the NDR recognises in an image (paper Fig. 5), computed and drawn.

For each encoder level i = 1, 2, 3 NDR-Restore computes a per-pixel softmax
affinity S_i (N, h_i, w_i) over the N NDR atoms and the recognised
degradation U_i (Q, h_i, w_i), with h_i = ceil(H / 2^(i-1)) after cropping
the padding. :func:`level_maps` turns them into per-level arrays and
:func:`summary_figure` draws them; ``ndrsr-restore --maps``
(:func:`ndrsr.cli.maps.save_maps`) writes, for an image ``STEM``::

    OUT/STEM_maps/L{i}_atom.png        dominant atom argmax_n S_i, one fixed colour per atom
                                       (:func:`atom_palette`), at the level's resolution
    OUT/STEM_maps/L{i}_confidence.png  max_n S_i rescaled from [1/N, 1] to [0, 1], viridis
    OUT/STEM_maps/L{i}_U.png           U_i projected on its 3 principal components, as RGB
    OUT/STEM_maps/summary.png          one-figure summary: input and restored image, then a
                                       row per level (atom, confidence, U), and the atom usage

The atom maps are exact (PNG is lossless): pixel colour == ``atom_palette(N)[argmax]``.
"""
from __future__ import annotations

import colorsys
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch


def atom_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours, one per atom: hues spread by the golden ratio, alternating brightness."""
    colours = []
    for k in range(n):
        hue = (k * 0.618033988749895) % 1.0
        value = 0.95 if k % 2 == 0 else 0.7
        colours.append(colorsys.hsv_to_rgb(hue, 0.85, value))
    return np.round(np.array(colours) * 255).astype(np.uint8).reshape(n, 3)


def dominant_atom(s: torch.Tensor) -> np.ndarray:
    """S (N, h, w) affinity -> (h, w) int64 index of the most similar atom."""
    return s.argmax(dim=0).cpu().numpy()


def confidence(s: torch.Tensor) -> np.ndarray:
    """S (N, h, w) -> (h, w) float32 in [0, 1]: max_n S rescaled from [1/N, 1] (uniform .. one-hot)."""
    n = s.shape[0]
    return ((s.max(dim=0).values - 1.0 / n) / (1.0 - 1.0 / n)).clamp(0, 1).cpu().numpy().astype(np.float32)


def pca_rgb(u: torch.Tensor) -> np.ndarray:
    """U (Q, h, w) -> (h, w, 3) float32 in [0, 1]: the 3 leading principal components over pixels,
    each stretched from its 1st to 99th percentile; signs fixed so that the largest loading is positive."""
    q, h, w = u.shape
    x = u.reshape(q, -1).T.double()
    x = x - x.mean(dim=0, keepdim=True)
    cov = x.T @ x / max(x.shape[0] - 1, 1)
    _, vecs = torch.linalg.eigh(cov)
    comps = vecs[:, -3:].flip(1)  # (Q, 3), largest variance first
    idx = comps.abs().argmax(dim=0)
    comps = comps * torch.sign(comps[idx, torch.arange(3)])[None]
    proj = (x @ comps).float().numpy()
    out = np.empty_like(proj)
    for c in range(3):
        lo, hi = np.percentile(proj[:, c], [1, 99])
        out[:, c] = np.clip((proj[:, c] - lo) / (hi - lo), 0, 1) if hi > lo else 0.5
    return out.reshape(h, w, 3)


def colour_atoms(index: np.ndarray, n: int) -> np.ndarray:
    """(h, w) atom indices -> (h, w, 3) uint8 RGB with :func:`atom_palette`."""
    return atom_palette(n)[index]


def colour_confidence(conf: np.ndarray) -> np.ndarray:
    """(h, w) in [0, 1] -> (h, w, 3) uint8 RGB, viridis."""
    gray = np.round(np.clip(conf, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)[:, :, ::-1]


def level_maps(us: Sequence[torch.Tensor], ss: Sequence[torch.Tensor], height: int, width: int) -> List[Dict]:
    """Per-level maps of one image, cropped to the image (padding removed).

    us, ss: [U1..U3] (Q, h_i, w_i) and [S1..S3] (N, h_i, w_i) at the padded resolution.
    Returns a list of {'atom': (h, w) int, 'confidence': (h, w) float, 'u_rgb': (h, w, 3) float, 'atoms': N}.
    """
    out = []
    for i, (u, s) in enumerate(zip(us, ss)):
        h, w = -(-height // 2**i), -(-width // 2**i)
        u, s = u[:, :h, :w], s[:, :h, :w]
        out.append(dict(atom=dominant_atom(s), confidence=confidence(s), u_rgb=pca_rgb(u), atoms=s.shape[0]))
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.rectangle(img, (0, 0), (img.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(img, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _panel(img: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if img.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def usage_bar(index: np.ndarray, n: int, width: int, height: int = 60) -> np.ndarray:
    """(height, width, 3) uint8 bar chart of the fraction of pixels whose dominant atom is each atom."""
    counts = np.bincount(index.ravel(), minlength=n) / max(index.size, 1)
    bar = np.full((height, width, 3), 255, np.uint8)
    palette = atom_palette(n)
    step = width / n
    for k, frac in enumerate(counts):
        top = int(round((height - 12) * (1 - frac / max(counts.max(), 1e-9))))
        x0, x1 = int(round(k * step)), max(int(round((k + 1) * step)) - 1, int(round(k * step)) + 1)
        bar[top:height - 12, x0:x1] = palette[k]
        if n <= 32 and step >= 12:
            cv2.putText(bar, str(k), (x0, height - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def summary_figure(image: np.ndarray, restored: Optional[np.ndarray], maps: List[Dict], panel_width: int = 320
                   ) -> np.ndarray:
    """The one-figure summary (uint8 RGB): [input | restored] then per level [atom | confidence | U],
    and the level-1 atom usage bar."""
    h, w = image.shape[:2]
    pw = panel_width
    ph = max(1, int(round(h * pw / w)))
    cols = 3
    rows = [[_label(_panel(image, pw, ph), 'input')]]
    if restored is not None:
        rows[0].append(_label(_panel(restored, pw, ph), 'restored'))
    for i, m in enumerate(maps):
        rows.append([_label(_panel(colour_atoms(m['atom'], m['atoms']), pw, ph, nearest=True),
                            f'L{i + 1} dominant atom'),
                     _label(_panel(colour_confidence(m['confidence']), pw, ph, nearest=True),
                            f'L{i + 1} confidence (mean {m["confidence"].mean():.2f})'),
                     _label(_panel(m['u_rgb'], pw, ph, nearest=True), f'L{i + 1} U (PCA)')])
    blank = np.full((ph, pw, 3), 255, np.uint8)
    grid = [np.concatenate(r + [blank] * (cols - len(r)), axis=1) for r in rows]
    bar = _label(usage_bar(maps[0]['atom'], maps[0]['atoms'], pw * cols, 78), 'L1 atom usage (fraction of pixels)')
    return np.concatenate(grid + [bar], axis=0)
