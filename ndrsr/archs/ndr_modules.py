"""The paper's own modules: the Neural Degradation Representation (NDR), the
degradation query (DQ), the low-rank CP modulation and the degradation
injection (DI).

Shapes: B batch, C feature channels, H x W spatial size, N NDR atoms,
M NDR dimension, Q query width (64 in the released network), K CP rank.
"""
from __future__ import annotations

import torch
from torch import nn

from .layout import from_nhwc, is_channels_last, to_channels_last


class NeuralDegradationRepresentation(nn.Module):
    """The learnable NDR tensor ``D`` of shape (1, N, M), initialised N(0, 1)."""

    def __init__(self, num_atoms: int = 32, dim: int = 128):
        super().__init__()
        self.atoms = nn.Parameter(torch.randn(1, num_atoms, dim))

    def forward(self) -> torch.Tensor:
        return self.atoms


class DegradationQuery(nn.Module):
    """DQ: recognise the degradation of an encoder feature against the NDR.

    ``m = conv3(F)`` (C -> Q), ``q = conv1(m)`` (Q -> M) flattened to (B, HW, M);
    ``S = softmax_N(q D^T * t)`` (B, HW, N) is the per-pixel affinity over the
    atoms; ``U' = S D`` (B, HW, M) reshaped to (B, M, H, W);
    ``U = conv1(conv1(U'))`` (M -> Q -> Q).

    forward(feature (B, C, H, W), ndr (1, N, M), return_affinity=False)
    -> U (B, Q, H, W) [, S (B, N, H, W)]
    """

    def __init__(self, channels: int, query_dim: int = 64, ndr_dim: int = 128):
        super().__init__()
        self.project = nn.Conv2d(channels, query_dim, 3, padding=1, bias=False)
        self.to_query = nn.Conv2d(query_dim, ndr_dim, 1)
        self.temperature = nn.Parameter(torch.ones(1))
        self.to_degradation = nn.Conv2d(ndr_dim, query_dim, 1)
        self.out = nn.Conv2d(query_dim, query_dim, 1)

    def affinity(self, feature: torch.Tensor, ndr: torch.Tensor) -> torch.Tensor:
        """Per-pixel softmax affinity S over the N atoms: (B, HW, N)."""
        q = self.to_query(self.project(feature)).flatten(2).transpose(1, 2)  # (B, HW, M)
        return ((q @ ndr.transpose(-2, -1)) * self.temperature).softmax(dim=-1)

    def forward(self, feature: torch.Tensor, ndr: torch.Tensor, return_affinity: bool = False):
        b, _, h, w = feature.shape
        s = self.affinity(feature, ndr)
        u = (s @ ndr).transpose(1, 2).reshape(b, ndr.shape[-1], h, w)  # (B, M, H, W)
        u = self.out(self.to_degradation(u))
        if return_affinity:
            return u, s.transpose(1, 2).reshape(b, ndr.shape[1], h, w)
        return u


class CPModulation(nn.Module):
    """Low-rank (CP) modulation: ``X * mean_k(c_k (x) h_k (x) w_k)``.

    Three projectors (average pooling, 1x1 conv, sigmoid) give, per rank
    component k, a channel vector c_k (C), a column h_k (H) and a row w_k (W);
    their outer product averaged over the K components is a (C, H, W) cube
    that multiplies the input. (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, rank: int = 16):
        super().__init__()
        self.rank = rank
        self.channel_proj = nn.Conv2d(channels, rank * channels, 1)
        self.height_proj = nn.Conv2d(channels, rank, 1)
        self.width_proj = nn.Conv2d(channels, rank, 1)

    def rank_factors(self, x: torch.Tensor):
        """The K rank-one factors of ``x`` (B, C, H, W): (c_k / K (B, K, C), h_k w_k (B, K, HW))."""
        b, c, h, w = x.shape
        k = self.rank
        c_k = torch.sigmoid(self.channel_proj(x.mean(dim=(2, 3), keepdim=True))).view(b, k, c)
        h_k = torch.sigmoid(self.height_proj(x.mean(dim=3, keepdim=True))).view(b, k, h, 1)
        w_k = torch.sigmoid(self.width_proj(x.mean(dim=2, keepdim=True))).view(b, k, 1, w)
        return c_k / k, (h_k * w_k).view(b, k, h * w)

    def cube(self, x: torch.Tensor) -> torch.Tensor:
        """The modulation cube (B, C, H, W) for ``x``, in ``x``'s memory layout.

        mean_k c_k (x) h_k (x) w_k as one GEMM over the rank axis (no (B, K, C, H, W) tensor):
        cube[b, c, (h, w)] = sum_k (c_k[b, k, c] / K) (h_k w_k)[b, k, (h, w)], i.e.
        (B, C, K) @ (B, K, HW) for NCHW, (B, HW, K) @ (B, K, C) for channels-last.
        """
        b, c, h, w = x.shape
        c_k, hw = self.rank_factors(x)
        if is_channels_last(x):
            return from_nhwc(torch.bmm(hw.transpose(1, 2), c_k).view(b, h, w, c))
        return torch.bmm(c_k.transpose(1, 2), hw).view(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cube(x)


class DegradationInjection(nn.Module):
    """DI: modulate a feature F (B, C, H, W) by a recognised degradation U (B, Q, H, W).

    ``F' = CP_C(F)``, ``u = CP_Q(conv1(U))``, output ``scale(u) * F' + shift(u)``
    (one ``addcmul``) with ``scale``, ``shift`` 1x1 convs Q -> C. -> (B, C, H, W),
    computed in F's memory layout (U is brought to it).
    """

    def __init__(self, channels: int, query_dim: int = 64, rank: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(query_dim, query_dim, 1)
        self.cp_degradation = CPModulation(query_dim, rank)
        self.cp_feature = CPModulation(channels, rank)
        self.scale = nn.Conv2d(query_dim, channels, 1)
        self.shift = nn.Conv2d(query_dim, channels, 1)

    def forward(self, feature: torch.Tensor, degradation: torch.Tensor) -> torch.Tensor:
        if is_channels_last(feature):
            degradation = to_channels_last(degradation)
        u = self.cp_degradation(self.embed(degradation))
        return torch.addcmul(self.shift(u), self.scale(u), self.cp_feature(feature))


# --------------------------------------------------------------------------
# Ablation variants (paper Tables VIII-X). Defaults elsewhere keep the
# released network; these are selected by ``query_mode`` / ``injection_mode``.


class DirectQuery(nn.Module):
    """"w/o NDR": the DQ's convolutions without the NDR look-up.

    ``U = out(to_degradation(to_query(project(F))))``: the same layers as
    :class:`DegradationQuery` minus the affinity against D (and its temperature).
    forward(feature (B, C, H, W), ndr=None) -> U (B, Q, H, W)
    """

    def __init__(self, channels: int, query_dim: int = 64, ndr_dim: int = 128):
        super().__init__()
        self.project = nn.Conv2d(channels, query_dim, 3, padding=1, bias=False)
        self.to_query = nn.Conv2d(query_dim, ndr_dim, 1)
        self.to_degradation = nn.Conv2d(ndr_dim, query_dim, 1)
        self.out = nn.Conv2d(query_dim, query_dim, 1)

    def forward(self, feature: torch.Tensor, ndr=None, return_affinity: bool = False):
        if return_affinity:
            raise ValueError('query_mode no_ndr has no NDR affinity to return')
        return self.out(self.to_degradation(self.to_query(self.project(feature))))


class ConvQuery(nn.Module):
    """"w/o DQ": the degradation query replaced by one plain 3x3 convolution C -> Q.

    forward(feature (B, C, H, W), ndr=None) -> U (B, Q, H, W)
    """

    def __init__(self, channels: int, query_dim: int = 64, ndr_dim: int = 128):
        super().__init__()
        self.conv = nn.Conv2d(channels, query_dim, 3, padding=1)

    def forward(self, feature: torch.Tensor, ndr=None, return_affinity: bool = False):
        if return_affinity:
            raise ValueError('query_mode conv has no NDR affinity to return')
        return self.conv(feature)


class ConcatInjection(nn.Module):
    """"w/o CP": CP-modulated injection replaced by concatenation + convolution.

    ``conv3(cat[F, conv1(U)])`` (C + Q -> C). forward(F (B, C, H, W), U (B, Q, H, W)) -> (B, C, H, W)
    """

    def __init__(self, channels: int, query_dim: int = 64, rank: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(query_dim, query_dim, 1)
        self.fuse = nn.Conv2d(channels + query_dim, channels, 3, padding=1)

    def forward(self, feature: torch.Tensor, degradation: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([feature, self.embed(degradation)], dim=1))


class ConvInjection(nn.Module):
    """"w/o DI": the injection replaced by a plain 3x3 convolution of the feature; U is not used.

    forward(F (B, C, H, W), U) -> conv3(F) (B, C, H, W)
    """

    def __init__(self, channels: int, query_dim: int = 64, rank: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, feature: torch.Tensor, degradation: torch.Tensor) -> torch.Tensor:
        return self.conv(feature)


QUERY_MODES = {'ndr': DegradationQuery, 'no_ndr': DirectQuery, 'conv': ConvQuery}
INJECTION_MODES = {'cp': DegradationInjection, 'concat': ConcatInjection, 'conv': ConvInjection}


def query_class(mode: str):
    """The degradation-query module for ``query_mode`` ('ndr' = the paper's DQ)."""
    if mode not in QUERY_MODES:
        raise ValueError(f'query_mode must be one of {sorted(QUERY_MODES)}, got {mode!r}')
    return QUERY_MODES[mode]


def injection_class(mode: str):
    """The degradation-injection module for ``injection_mode`` ('cp' = the paper's DI)."""
    if mode not in INJECTION_MODES:
        raise ValueError(f'injection_mode must be one of {sorted(INJECTION_MODES)}, got {mode!r}')
    return INJECTION_MODES[mode]
