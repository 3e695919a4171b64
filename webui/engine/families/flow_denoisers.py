"""How to call each flow family's transformer and VAE: latent layout, conditioning inputs, guidance.

Why adapters: the sampling loop (`flow_sampling.py`) is the same for every flow-matching family; what differs is
small and lives here. AuraFlow works on plain `[B, 4, h, w]` latents with classifier-free guidance; Flux packs
2x2 latent patches into tokens with position ids, takes CLIP's pooled vector and (dev) a distilled guidance value,
and uses real CFG only when asked (CFG scale > 1, as Forge does). A new family (SD3.5) is one more adapter.
"""
from __future__ import annotations

import torch

from webui.engine.families.flow_prompts import FlowConditioning
from webui.engine.runtime.offload_store import execution_device


class FlowDenoiser:
    """Shared parts: the VAE's latent scaling (Flux also shifts) and the latent grid."""

    packs = False

    def __init__(self, pipe):
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.vae = pipe.vae
        self.scale_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: fp8-stored layers are upcast to it (the norms always hold it)."""
        stored = (p.dtype for p in self.transformer.parameters())
        return next((d for d in stored if d not in (torch.float8_e4m3fn, torch.float8_e5m2)), torch.float32)

    @property
    def device(self) -> torch.device:
        return execution_device(self.transformer)

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        return int(self.vae.config.latent_channels), height // self.scale_factor, width // self.scale_factor

    def image_tokens(self, width: int, height: int) -> int:
        _, h, w = self.latent_shape(width, height)
        return (h // 2) * (w // 2)

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def unpack(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return latents

    def to_vae(self, latents: torch.Tensor) -> torch.Tensor:
        shift = self.vae.config.get("shift_factor") or 0.0
        return latents / self.vae.config.scaling_factor + shift

    def from_vae(self, latents: torch.Tensor) -> torch.Tensor:
        shift = self.vae.config.get("shift_factor") or 0.0
        return (latents - shift) * self.vae.config.scaling_factor

    def predict(self, latents: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning,
                uncond: FlowConditioning, cfg_scale: float, guidance: float | None,
                grid: tuple[int, int]) -> torch.Tensor:
        """The velocity for `latents` at noise level `sigma` ([B]); `grid` is the latent (h, w)."""
        raise NotImplementedError


class AuraFlowDenoiser(FlowDenoiser):
    """AuraFlow: plain latents, UMT5 states, classifier-free guidance in one batched call when CFG > 1."""

    def predict(self, latents, sigma, cond, uncond, cfg_scale, guidance, grid):
        count = latents.shape[0]
        if cfg_scale > 1:
            inputs = torch.cat([latents, latents])
            text = torch.cat([uncond.embeds.expand(count, -1, -1), cond.embeds.expand(count, -1, -1)])
            out = self.transformer(inputs, encoder_hidden_states=text, timestep=sigma.repeat(2),
                                   return_dict=False)[0]
            negative, positive = out.chunk(2)
            return negative + cfg_scale * (positive - negative)
        return self.transformer(latents, encoder_hidden_states=cond.embeds.expand(count, -1, -1), timestep=sigma,
                                return_dict=False)[0]


class FluxDenoiser(FlowDenoiser):
    """Flux: 2x2 patches packed into tokens, text ids all zero, image ids (0, row, col); distilled guidance
    (`guidance`) on dev models; true CFG with the negative prompt only when CFG scale > 1."""

    packs = True

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return latents.reshape(b, (h // 2) * (w // 2), c * 4)

    def unpack(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, _, packed = latents.shape
        c, h, w = packed // 4, height // self.scale_factor, width // self.scale_factor
        latents = latents.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return latents.reshape(b, c, h, w)

    def _image_ids(self, h: int, w: int) -> torch.Tensor:
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] += torch.arange(h // 2)[:, None]
        ids[..., 2] += torch.arange(w // 2)[None, :]
        return ids.reshape(-1, 3).to(self.device, self.dtype)

    def _call(self, latents, sigma, text: FlowConditioning, guidance, img_ids):
        count = latents.shape[0]
        txt_ids = torch.zeros(text.embeds.shape[1], 3, device=self.device, dtype=self.dtype)
        guide = None
        if self.transformer.config.guidance_embeds:
            guide = torch.full((count,), float(guidance if guidance is not None else 3.5), device=self.device,
                               dtype=torch.float32)
        return self.transformer(hidden_states=latents, timestep=sigma, guidance=guide,
                                pooled_projections=text.pooled.expand(count, -1),
                                encoder_hidden_states=text.embeds.expand(count, -1, -1), txt_ids=txt_ids,
                                img_ids=img_ids, return_dict=False)[0]

    def predict(self, latents, sigma, cond, uncond, cfg_scale, guidance, grid):
        img_ids = self._image_ids(*grid)
        positive = self._call(latents, sigma, cond, guidance, img_ids)
        if cfg_scale <= 1:
            return positive
        negative = self._call(latents, sigma, uncond, guidance, img_ids)
        return negative + cfg_scale * (positive - negative)
