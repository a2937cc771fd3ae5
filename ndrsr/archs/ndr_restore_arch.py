"""NDR-Restore: the all-in-one restoration network (registered as ``NDRRestore``)."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .descriptor import InputNeeds
from .ndr_modules import NeuralDegradationRepresentation, injection_class, query_class
from .padding import check_image_batch, pad_to_multiple
from .restormer_blocks import Downsample, Upsample, transformer_stack


@ARCH_REGISTRY.register()
class NDRRestore(nn.Module):
    """Restormer-style U-Net that queries the NDR at each encoder level.

    Encoder levels 1-3 run transformer blocks at widths dim, 2dim, 4dim; at
    each, a :class:`DegradationQuery` against the NDR gives U_i (B, Q, H_i, W_i)
    and a :class:`DegradationInjection` modulates the skip feature with it.
    The decoder concatenates [skip_i, upsampled] as Restormer does. As
    released there is no residual to the input; ``global_residual=True`` adds
    one (see below).

    Args:
        in_channels, out_channels: image channels (3).
        dim: width of level 1 (48).
        num_blocks: transformer blocks at levels 1-4 (4, 6, 6, 8); the decoder
            level i reuses num_blocks[i - 1].
        num_refinement_blocks: blocks after the decoder, at 2 * dim (3).
        heads: attention heads per level (1, 2, 4, 6); decoder level i and the
            refinement use heads[i - 1] / heads[0].
        ffn_expansion_factor: gated feed-forward expansion (2.66).
        ndr_atoms: N, number of NDR atoms (32).
        ndr_dim: M, dimension of each atom (128).
        query_dim: Q, width of the recognised degradation U (64).
        cp_rank: K, rank of the CP modulation (16).
        query_mode: 'ndr' (the paper's DQ against the NDR), or the ablations
            'no_ndr' (DQ's convolutions without the NDR: no NDR tensor) and
            'conv' (DQ replaced by a plain conv3 C -> Q: no NDR tensor).
        injection_mode: 'cp' (the paper's DI with CP modulation), or the
            ablations 'concat' (concatenation + conv3) and 'conv' (a plain
            conv3 of the skip; U is not injected).
        upscale: 1 for restoration at the input size; s > 1 (the paper's 2x SR
            all-in-one setting) runs the whole U-Net at the low resolution and
            adds a conv3 + pixel-shuffle(s) up-sampler before the last conv,
            so a (B, 3, H, W) degraded input gives a (B, 3, sH, sW) output.
        global_residual: False (released): the decoder outputs the restored
            image itself. True: it outputs a correction added to the input,
            ``restored = decode(...) + lq`` at upscale 1 and
            ``decode(...) + bicubic_up_s(lq)`` at upscale s > 1 (PyTorch bicubic,
            align_corners=False). Same parameters and state-dict keys; a
            freshly initialised network is then close to the identity, which is
            what small training budgets need (without it the first thousands of
            iterations are spent learning to reproduce colours and brightness).

    forward(lq (B, 3, H, W), return_degradation=False)
        -> restored (B, 3, sH, sW) [, [U1, U2, U3]]
    Any H, W: the input is padded (reflect) to a multiple of 8 and the output
    cropped back. The U_i are returned at the padded resolution
    (ceil(H / 8) * 8 / 2^(i-1)), which is what :class:`NDRDegrad` expects.

    ``input_needs`` (:class:`~ndrsr.archs.descriptor.InputNeeds`): the padding
    multiple, and that tiling changes the output (transposed attention over all
    pixels, the CP modulation's global pooling).
    """

    stride = 8  # H and W are padded to a multiple of this
    input_needs = InputNeeds(multiple_of=stride, tiling_changes_output=True)

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8),
                 num_refinement_blocks: int = 3,
                 heads: Sequence[int] = (1, 2, 4, 6),
                 ffn_expansion_factor: float = 2.66,
                 ndr_atoms: int = 32,
                 ndr_dim: int = 128,
                 query_dim: int = 64,
                 cp_rank: int = 16,
                 query_mode: str = 'ndr',
                 injection_mode: str = 'cp',
                 upscale: int = 1,
                 global_residual: bool = False):
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f'num_blocks and heads need 4 entries each, got {list(num_blocks)} and {list(heads)}')
        self.in_channels = in_channels
        self.upscale = int(upscale)
        self.global_residual = bool(global_residual)
        ffn = ffn_expansion_factor
        widths = [dim, dim * 2, dim * 4]

        self.query_mode = query_mode
        self.ndr = NeuralDegradationRepresentation(ndr_atoms, ndr_dim) if query_mode == 'ndr' else None
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1)
        self.encoder1 = transformer_stack(dim, num_blocks[0], heads[0], ffn)
        self.down1 = Downsample(dim)
        self.encoder2 = transformer_stack(dim * 2, num_blocks[1], heads[1], ffn)
        self.down2 = Downsample(dim * 2)
        self.encoder3 = transformer_stack(dim * 4, num_blocks[2], heads[2], ffn)
        self.down3 = Downsample(dim * 4)
        self.latent = transformer_stack(dim * 8, num_blocks[3], heads[3], ffn)

        self.query = nn.ModuleList([query_class(query_mode)(c, query_dim, ndr_dim) for c in widths])
        self.inject = nn.ModuleList([injection_class(injection_mode)(c, query_dim, cp_rank) for c in widths])

        self.up3 = Upsample(dim * 8)
        self.reduce3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=False)
        self.decoder3 = transformer_stack(dim * 4, num_blocks[2], heads[2], ffn)
        self.up2 = Upsample(dim * 4)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder2 = transformer_stack(dim * 2, num_blocks[1], heads[1], ffn)
        self.up1 = Upsample(dim * 2)
        self.reduce1 = nn.Conv2d(dim * 2, dim * 2, 1, bias=False)
        self.decoder1 = transformer_stack(dim * 2, num_blocks[0], heads[0], ffn)
        self.refinement = transformer_stack(dim * 2, num_refinement_blocks, heads[0], ffn)
        if self.upscale > 1:
            self.upsampler = nn.Sequential(
                nn.Conv2d(dim * 2, dim * 2 * self.upscale**2, 3, padding=1), nn.PixelShuffle(self.upscale))
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1)

    def encode(self, x: torch.Tensor, return_affinity: bool = False):
        """Encoder of a padded input: -> (latent, skips, [U1..U3][, [S1..S3]])."""
        ndr = self.ndr() if self.ndr is not None else None
        feat = self.embed(x)
        skips, degradations, affinities = [], [], []
        for level, (encoder, down) in enumerate(
                zip((self.encoder1, self.encoder2, self.encoder3), (self.down1, self.down2, self.down3))):
            feat = encoder(feat)
            out = self.query[level](feat, ndr, return_affinity)
            u = out[0] if return_affinity else out
            if return_affinity:
                affinities.append(out[1])
            skips.append(self.inject[level](feat, u))
            degradations.append(u)
            feat = down(feat)
        latent = self.latent(feat)
        if return_affinity:
            return latent, skips, degradations, affinities
        return latent, skips, degradations

    def decode(self, latent: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        """Decoder, refinement and output conv: -> (B, 3, s * H_pad, s * W_pad)."""
        x = latent
        for up, reduce, decoder, skip in ((self.up3, self.reduce3, self.decoder3, skips[2]),
                                          (self.up2, self.reduce2, self.decoder2, skips[1]),
                                          (self.up1, self.reduce1, self.decoder1, skips[0])):
            x = decoder(reduce(torch.cat([skip, up(x)], dim=1)))
        x = self.refinement(x)
        if self.upscale > 1:
            x = self.upsampler(x)
        return self.output(x)

    def recognise_trainable(self, x: torch.Tensor) -> List[torch.Tensor]:
        """[U1..U3] of a padded input with the encoder trunk detached.

        The encoder blocks run without gradient; only the NDR and the
        degradation queries receive gradient through the returned U's. This is
        the degradation step of the ``alternating`` schedule.
        """
        ndr = self.ndr() if self.ndr is not None else None
        feats = []
        with torch.no_grad():
            feat = self.embed(x)
            for level, encoder in enumerate((self.encoder1, self.encoder2, self.encoder3)):
                feat = encoder(feat)
                feats.append(feat)
                if level < 2:
                    feat = (self.down1, self.down2)[level](feat)
        return [self.query[level](feat, ndr) for level, feat in enumerate(feats)]

    def forward(self, lq: torch.Tensor, return_degradation: bool = False, recognise_only: bool = False):
        """See the class docstring. ``recognise_only=True`` returns only [U1..U3]
        from :meth:`recognise_trainable` (through ``forward`` so that
        DistributedDataParallel synchronises their gradients)."""
        check_image_batch(lq, self.in_channels, 'NDRRestore')
        if recognise_only:
            return self.recognise_trainable(pad_to_multiple(lq, self.stride))
        h, w = lq.shape[-2:]
        latent, skips, degradations = self.encode(pad_to_multiple(lq, self.stride))
        restored = self.decode(latent, skips)[..., :h * self.upscale, :w * self.upscale]
        if self.global_residual:
            restored = restored + self.input_base(lq)
        if return_degradation:
            return restored, degradations
        return restored

    def input_base(self, lq: torch.Tensor) -> torch.Tensor:
        """What the global residual adds: lq (B, 3, H, W), or its bicubic s-times up-scaling (B, 3, sH, sW)."""
        if self.upscale == 1:
            return lq
        return F.interpolate(lq, scale_factor=self.upscale, mode='bicubic', align_corners=False)

    @torch.no_grad()
    def recognise(self, lq: torch.Tensor):
        """The encoder's view of ``lq``: ([U1..U3], [S1..S3]) at padded resolution.

        S_i (B, N, H_i, W_i) is the per-pixel softmax affinity over the NDR atoms.
        """
        if self.ndr is None:
            raise ValueError(f'query_mode {self.query_mode!r} has no NDR: nothing to recognise against')
        check_image_batch(lq, self.in_channels, 'NDRRestore')
        _, _, degradations, affinities = self.encode(pad_to_multiple(lq, self.stride), return_affinity=True)
        return degradations, affinities
