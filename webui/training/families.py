"""What differs between model families in a training step, as small hook methods over one loop.

Why hooks: the loop (batches, accumulation, saving, resume) is the same for every family; only text encoding,
extra UNet conditions and the noise/target pair differ. SD1/SD2 predict epsilon or v; SDXL adds two encoders,
pooled embeddings and size/crop time ids. AuraFlow is a flow-matching transformer (`FlowMatchHooks`):
logit-normal sigmas with a shift, `x_t = (1 - s) x0 + s noise`, target `noise - x0`.

The model being trained is called the denoiser here: `pipe.unet` for SD, `pipe.transformer` for AuraFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from webui.core.errors import ValidationError

EPSILON, V_PREDICTION = "epsilon", "v_prediction"
DENOISERS = ("unet", "transformer")


def denoiser_name(pipe) -> str:
    """Which pipeline component is the denoiser (the part a LoRA on "the UNet" adapts)."""
    for name in DENOISERS:
        if getattr(pipe, name, None) is not None:
            return name
    raise ValidationError(f"{type(pipe).__name__} has neither a UNet nor a transformer to train.")


def denoiser_of(pipe) -> torch.nn.Module:
    return getattr(pipe, denoiser_name(pipe))


@dataclass(frozen=True)
class TextConditioning:
    """Encoder output for a batch: per-token states, and pooled embeddings where the family uses them."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None

    def to(self, device: torch.device) -> TextConditioning:
        pooled = self.pooled.to(device) if self.pooled is not None else None
        return TextConditioning(self.hidden.to(device), pooled)

    @staticmethod
    def stack(parts: list[TextConditioning]) -> TextConditioning:
        pooled = torch.cat([p.pooled for p in parts]) if parts[0].pooled is not None else None
        return TextConditioning(torch.cat([p.hidden for p in parts]), pooled)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"hidden": self.hidden} | ({"pooled": self.pooled} if self.pooled is not None else {})

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor]) -> TextConditioning:
        return TextConditioning(tensors["hidden"], tensors.get("pooled"))


def _token_ids(tokenizer, captions: list[str], device: torch.device) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


class SDHooks:
    """SD1 / SD2: one CLIP encoder (last hidden state), DDPM noise, epsilon or v-prediction target."""

    def __init__(self, pipe, prediction_type: str):
        if prediction_type not in (EPSILON, V_PREDICTION):
            raise ValidationError(f"Prediction type '{prediction_type}' cannot be trained (epsilon or v).")
        self.pipe = pipe
        self.prediction_type = prediction_type
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config, prediction_type=prediction_type)
        self.num_timesteps = int(self.noise_scheduler.config.num_train_timesteps)

    def encode_text(self, captions: list[str], device: torch.device) -> TextConditioning:
        ids = _token_ids(self.pipe.tokenizer, captions, device)
        return TextConditioning(self.pipe.text_encoder(ids)[0])

    def sample_timesteps(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.num_timesteps, (count,), generator=generator)

    def noisy_and_target(self, latents: torch.Tensor, noise: torch.Tensor,
                         timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == V_PREDICTION:
            return noisy, self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return noisy, noise

    def unet_kwargs(self, cond: TextConditioning, size: tuple[int, int], count: int) -> dict[str, object]:
        return {}

    def check_bucket(self, size: tuple[int, int]) -> str | None:
        """Why the model cannot train at this image size (None: it can). Any multiple of 8 works for a UNet."""
        return None

    def predict(self, unet, noisy: torch.Tensor, timesteps: torch.Tensor, cond: TextConditioning,
                size: tuple[int, int]) -> torch.Tensor:
        extra = self.unet_kwargs(cond, size, noisy.shape[0])
        return unet(noisy, timesteps, encoder_hidden_states=cond.hidden, **extra).sample


class SDXLHooks(SDHooks):
    """SDXL: penultimate states of both encoders concatenated, pooled output of the second, and time ids
    (original size, crop top-left, target size); we train at the bucket size with no crop offset."""

    def encode_text(self, captions: list[str], device: torch.device) -> TextConditioning:
        hidden, pooled = [], None
        for tokenizer, encoder in ((self.pipe.tokenizer, self.pipe.text_encoder),
                                   (self.pipe.tokenizer_2, self.pipe.text_encoder_2)):
            output = encoder(_token_ids(tokenizer, captions, device), output_hidden_states=True)
            hidden.append(output.hidden_states[-2])
            pooled = output[0]
        return TextConditioning(torch.cat(hidden, dim=-1), pooled)

    def unet_kwargs(self, cond: TextConditioning, size: tuple[int, int], count: int) -> dict[str, object]:
        width, height = size
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=cond.hidden.dtype,
                                device=cond.hidden.device).repeat(count, 1)
        return {"added_cond_kwargs": {"text_embeds": cond.pooled, "time_ids": time_ids}}


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """The flow-matching time shift (the same as `FlowMatchEulerDiscreteScheduler(shift=...)`): > 1 spends more
    of training (or sampling) at high noise, where composition is decided."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


class FlowMatchHooks(SDHooks):
    """AuraFlow (SimpleTuner's recipe): sigmas from a logit-normal (mean 0, std 1) pushed towards noise by
    `flow_shift` (`s' = shift s / (1 + (shift - 1) s)`), `x_t = (1 - s) x0 + s noise`, velocity target
    `noise - x0`. The transformer takes the sigma itself as its timestep (its embedding multiplies by 1000, and
    `AuraFlowPipeline` passes `t / 1000`). Text: UMT5 states with padded positions zeroed, as the pipeline does.
    It shares `SDHooks`' interface (and its no-extra-kwargs default) but none of its DDPM noise schedule.
    """

    MAX_TOKENS = 128  # SimpleTuner's AuraFlow default (the pipeline allows 256 at inference)

    def __init__(self, pipe, prediction_type: str = "flow_matching", flow_shift: float = 3.0):
        if flow_shift <= 0:
            raise ValidationError(f"Flow shift must be positive (got {flow_shift}).")
        self.pipe = pipe
        self.prediction_type = "flow_matching"
        self.flow_shift = float(flow_shift)
        self.num_timesteps = 1000

    def encode_text(self, captions: list[str], device: torch.device) -> TextConditioning:
        tokenizer = self.pipe.tokenizer
        tokens = tokenizer(captions, padding="max_length", max_length=min(self.MAX_TOKENS, tokenizer.model_max_length),
                           truncation=True, return_tensors="pt")
        mask = tokens.attention_mask.to(device)
        hidden = self.pipe.text_encoder(input_ids=tokens.input_ids.to(device), attention_mask=mask)[0]
        return TextConditioning(hidden * mask.unsqueeze(-1).to(hidden.dtype))

    def sample_timesteps(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return shift_sigmas(torch.sigmoid(torch.randn(count, generator=generator)), self.flow_shift)

    def noisy_and_target(self, latents: torch.Tensor, noise: torch.Tensor,
                         timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = timesteps.to(latents.device, latents.dtype).view(-1, *([1] * (latents.ndim - 1)))
        return (1 - sigmas) * latents + sigmas * noise, noise - latents

    def predict(self, unet, noisy: torch.Tensor, timesteps: torch.Tensor, cond: TextConditioning,
                size: tuple[int, int]) -> torch.Tensor:
        return unet(noisy, encoder_hidden_states=cond.hidden, timestep=timesteps.to(noisy.dtype)).sample

    def check_bucket(self, size: tuple[int, int]) -> str | None:
        """Latent patches must tile the image and fit the learned position grid (`pos_embed_max_size`)."""
        config = self.pipe.transformer.config
        scale = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1) * int(config.patch_size)
        grid = int(int(config.pos_embed_max_size) ** 0.5)
        width, height = size
        if width % scale or height % scale:
            return f"{width}x{height}: AuraFlow needs image sides that are multiples of {scale}."
        if max(width, height) // scale > grid:
            return f"{width}x{height}: larger than this AuraFlow model's position grid ({grid * scale} px a side)."
        return None


HOOKS = {"sd1": SDHooks, "sd2": SDHooks, "sdxl": SDXLHooks, "auraflow": FlowMatchHooks}


def hooks_for(family: str, pipe, prediction_type: str, *, flow_shift: float = 3.0) -> SDHooks:
    cls = HOOKS.get(family)
    if cls is None:
        raise ValidationError(f"Training {family} models is not supported yet (supported: {', '.join(HOOKS)}).")
    if cls is FlowMatchHooks:
        return FlowMatchHooks(pipe, flow_shift=flow_shift)
    return cls(pipe, prediction_type)
