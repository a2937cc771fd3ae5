"""NDR-Degrad: the auxiliary degradation network (registered as ``NDRDegrad``)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .descriptor import InputNeeds
from .ndr_modules import injection_class
from .padding import check_image_batch, pad_to_multiple
from .restormer_blocks import Downsample, Upsample


class ResidualDoubleConv(nn.Module):
    """``x + relu(conv3(relu(conv3(x))))`` with biases. (B, C, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.conv2(F.relu(self.conv1(x))))


class ChannelAttention(nn.Module):
    """Squeeze-excitation: ``x * sigmoid(excite(relu(squeeze(avgpool(x)))))``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.excite = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.excite(F.relu(self.squeeze(y))))


class ResidualChannelAttentionGroup(nn.Module):
    """One RCAB (conv3, relu, conv3, channel attention, + input) and a conv3 tail, plus the input."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.attention = ChannelAttention(channels, reduction)
        self.tail = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rcab = x + self.attention(self.conv2(F.relu(self.conv1(x))))
        return x + self.tail(rcab)


@ARCH_REGISTRY.register()
class NDRDegrad(nn.Module):
    """Re-degrades a clean image with the degradations U_i recognised by NDR-Restore.

    A convolutional U-Net (residual double convs) whose three encoder skips are
    modulated by :class:`DegradationInjection` with U1..U3, a residual
    channel-attention refinement group, and a residual to the clean input.

    Args:
        in_channels, out_channels: image channels (3).
        dim: width of level 1 (48).
        query_dim: Q, channels of each U_i (64).
        cp_rank: K, rank of the CP modulation (16).
        ca_reduction: channel-attention reduction of the refinement (16).
        injection_mode: 'cp' (the paper's DI), 'concat' or 'conv' (ablations,
            see NDRRestore; with 'conv' the U's are ignored).
        upscale: 1, or s > 1 for the 2x SR all-in-one setting: the clean input
            is the high-resolution image (B, 3, sH, sW); it is pixel-unshuffled
            by s before the first conv so the U-Net runs at the low resolution
            of the U's, and the output residual is the bicubic (antialiased)
            s-times down-scaled clean image. Output (B, 3, H, W).

    forward(clean (B, 3, sH, sW), [U1, U2, U3]) -> degraded (B, 3, H, W)
    U_i has shape (B, Q, H_pad / 2^(i-1), W_pad / 2^(i-1)) with H_pad = ceil(H / 8) * 8,
    exactly as returned by ``NDRRestore(..., return_degradation=True)``.

    ``input_needs`` (:class:`~ndrsr.archs.descriptor.InputNeeds`): the padding
    multiple (of the low-resolution size), and that tiling changes the output
    (global attention and pooling, as in NDR-Restore).
    """

    stride = 8  # H and W (the low-resolution size) are padded to a multiple of this
    input_needs = InputNeeds(multiple_of=stride, tiling_changes_output=True)

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 dim: int = 48,
                 query_dim: int = 64,
                 cp_rank: int = 16,
                 ca_reduction: int = 16,
                 injection_mode: str = 'cp',
                 upscale: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.upscale = int(upscale)
        self.embed = nn.Conv2d(in_channels * self.upscale**2, dim, 3, padding=1)
        self.encoder1 = ResidualDoubleConv(dim)
        self.down1 = Downsample(dim)
        self.encoder2 = ResidualDoubleConv(dim * 2)
        self.down2 = Downsample(dim * 2)
        self.encoder3 = ResidualDoubleConv(dim * 4)
        self.down3 = Downsample(dim * 4)
        self.latent = ResidualDoubleConv(dim * 8)
        self.inject = nn.ModuleList(
            [injection_class(injection_mode)(c, query_dim, cp_rank) for c in (dim, dim * 2, dim * 4)])
        self.up3 = Upsample(dim * 8)
        self.reduce3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=False)
        self.decoder3 = ResidualDoubleConv(dim * 4)
        self.up2 = Upsample(dim * 4)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder2 = ResidualDoubleConv(dim * 2)
        self.up1 = Upsample(dim * 2)
        self.reduce1 = nn.Conv2d(dim * 2, dim * 2, 1, bias=False)
        self.decoder1 = ResidualDoubleConv(dim * 2)
        self.refinement = ResidualChannelAttentionGroup(dim * 2, ca_reduction)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1)

    def forward(self, clean: torch.Tensor, degradations: Sequence[torch.Tensor]) -> torch.Tensor:
        check_image_batch(clean, self.in_channels, 'NDRDegrad')
        s = self.upscale
        h, w = clean.shape[-2:]
        if h % s or w % s:
            raise ValueError(f'NDRDegrad(upscale={s}) needs a clean image whose size is a multiple of {s}, '
                             f'got {h}x{w}.')
        x = pad_to_multiple(clean, self.stride * s)
        if len(degradations) != 3:
            raise ValueError(f'NDRDegrad expects 3 recognised degradations [U1, U2, U3], got {len(degradations)}.')
        hp, wp = x.shape[-2] // s, x.shape[-1] // s
        for i, u in enumerate(degradations):
            want = (x.shape[0], hp >> i, wp >> i)
            if (u.shape[0], u.shape[-2], u.shape[-1]) != want:
                raise ValueError(f'U{i + 1} has shape {tuple(u.shape)}, expected batch and size {want} for a clean '
                                 f'input of {h}x{w} (upscale {s}); pass the U list from NDRRestore run on the '
                                 f'matching degraded image.')
        base = x if s == 1 else F.interpolate(x, scale_factor=1 / s, mode='bicubic', antialias=True,
                                              align_corners=False)
        feat = self.embed(x if s == 1 else F.pixel_unshuffle(x, s))
        skips = []
        for level, (encoder, down) in enumerate(
                zip((self.encoder1, self.encoder2, self.encoder3), (self.down1, self.down2, self.down3))):
            feat = encoder(feat)
            skips.append(self.inject[level](feat, degradations[level]))
            feat = down(feat)
        x = self.latent(feat)
        for up, reduce, decoder, skip in ((self.up3, self.reduce3, self.decoder3, skips[2]),
                                          (self.up2, self.reduce2, self.decoder2, skips[1]),
                                          (self.up1, self.reduce1, self.decoder1, skips[0])):
            x = decoder(reduce(torch.cat([skip, up(x)], dim=1)))
        out = self.output(self.refinement(x)) + base
        return out[..., :h // s, :w // s]
