"""Composable diffusion (A1111's `AND`): one UNet pass per prompt part, combined as
`uncond + sum_i w_i * (cond_i - uncond)` so the pipeline's CFG step then gives A1111's result.

Why a stand-in module: diffusers pipelines call `self.unet(latents, t, encoder_hidden_states=...)` with one
positive conditioning. For the duration of one AND generation the pipeline is given (through `from_pipe`, so the
loaded pipeline itself is untouched) this module, which wraps the real UNet, batches the uncond and all parts into
one call, and returns the combined prediction in the positive slot. Nothing is patched on the real UNet.
"""
from __future__ import annotations

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput


class ComposableUNet(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.parts: list[tuple[torch.Tensor, torch.Tensor | None, float]] = []

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["unet"], name)

    def set_parts(self, parts: list[tuple[torch.Tensor, torch.Tensor | None, float]]) -> None:
        """Per part: embeddings [B, T, D], SDXL pooled [B, P] or None, weight."""
        self.parts = parts

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, *args,
                added_cond_kwargs: dict | None = None, return_dict: bool = True, **kwargs):
        count = len(self.parts)
        batch = self.parts[0][0].shape[0]
        has_uncond = sample.shape[0] == 2 * batch
        uncond_n = batch if has_uncond else 0
        positive = sample[uncond_n:]
        samples = torch.cat([sample[:uncond_n], *([positive] * count)])
        embeds = torch.cat([encoder_hidden_states[:uncond_n], *(p[0].to(encoder_hidden_states) for p in self.parts)])
        extra = dict(added_cond_kwargs or {})
        if "text_embeds" in extra:
            pooled = [p[1].to(extra["text_embeds"]) for p in self.parts]
            extra["text_embeds"] = torch.cat([extra["text_embeds"][:uncond_n], *pooled])
            time_ids = extra["time_ids"]
            extra["time_ids"] = torch.cat([time_ids[:uncond_n], *([time_ids[uncond_n:]] * count)])
        if torch.is_tensor(timestep) and timestep.dim() > 0 and timestep.shape[0] == sample.shape[0]:
            timestep = torch.cat([timestep[:uncond_n], *([timestep[uncond_n:]] * count)])
        out = self.unet(samples, timestep, embeds, *args, added_cond_kwargs=extra or added_cond_kwargs,
                        return_dict=False, **kwargs)[0]
        outs = out[uncond_n:].chunk(count)
        weights = [p[2] for p in self.parts]
        if has_uncond:
            uncond = out[:uncond_n]
            combined = uncond + sum(w * (o - uncond) for w, o in zip(weights, outs, strict=True))
            result = torch.cat([uncond, combined])
        else:
            result = sum(w * o for w, o in zip(weights, outs, strict=True)) / max(sum(weights), 1e-8)
        return UNet2DConditionOutput(sample=result) if return_dict else (result,)
