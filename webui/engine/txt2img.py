"""txt2img on a loaded pipeline, A1111-style: CPU noise per image (seed + i), one pipeline call per batch,
cooperative interrupt/skip after every step, every image saved with its infotext before it is returned.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from webui.core.errors import GenerationError
from webui.core.generation_info import generation_params
from webui.core.infotext import build_infotext
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.requests import GenerationRequest
from webui.core.results import GeneratedImage
from webui.core.seeds import batch_seeds
from webui.engine.prompt_encoding import Conditioning, count_chunks, encode_pieces
from webui.engine.scheduler_factory import make_scheduler

log = logging.getLogger(__name__)

ImageSink = Callable[[Image.Image, int, str], object]


@dataclass(frozen=True)
class ModelLabels:
    """How the infotext names the model and VAE in use."""

    model_name: str
    model_hash: str
    vae_name: str | None = None
    vae_hash: str | None = None


def cpu_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """A1111's CPU noise: one generator per image, so image i is the same whatever the batch size/device."""
    return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])


def _latent_shape(pipe, width: int, height: int) -> tuple[int, int, int]:
    factor = pipe.vae_scale_factor
    return (pipe.vae.config.latent_channels, height // factor, width // factor)


def encode_request(pipe, request: GenerationRequest) -> tuple[Conditioning, Conditioning]:
    """Positive and negative conditioning, padded to the same number of 75-token chunks."""
    positive = [(request.prompt, 1.0)]
    negative = [(request.negative_prompt, 1.0)]
    chunks = max(count_chunks(pipe, positive), count_chunks(pipe, negative))
    with torch.inference_mode():
        return (encode_pieces(pipe, positive, request.clip_skip, chunks),
                encode_pieces(pipe, negative, request.clip_skip, chunks))


def _conditioning_kwargs(cond: Conditioning, uncond: Conditioning, count: int, dtype: torch.dtype) -> dict:
    kwargs = {"prompt_embeds": cond.embeds.repeat(count, 1, 1).to(dtype),
              "negative_prompt_embeds": uncond.embeds.repeat(count, 1, 1).to(dtype)}
    if cond.pooled is not None:
        kwargs["pooled_prompt_embeds"] = cond.pooled.repeat(count, 1).to(dtype)
        kwargs["negative_pooled_prompt_embeds"] = uncond.pooled.repeat(count, 1).to(dtype)
    return kwargs


def _pipeline_kwargs(pipe, request: GenerationRequest, seeds: list[int], is_inpaint: bool,
                     conds: tuple[Conditioning, Conditioning]) -> dict:
    param = next(pipe.unet.parameters())
    latents = cpu_noise(seeds, _latent_shape(pipe, request.width, request.height)).to(param.device, param.dtype)
    kwargs = dict(
        **_conditioning_kwargs(*conds, len(seeds), param.dtype),
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        width=request.width,
        height=request.height,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        latents=latents,
        output_type="pil",
    )
    if is_inpaint:
        # A1111 runs txt2img on inpainting models as inpainting of a fully masked blank canvas.
        kwargs["image"] = Image.new("RGB", (request.width, request.height), (127, 127, 127))
        kwargs["mask_image"] = Image.new("L", (request.width, request.height), 255)
        kwargs["strength"] = 1.0
    return kwargs


def run_txt2img(
    pipe,
    request: GenerationRequest,
    *,
    first_seed: int,
    labels: ModelLabels,
    token: CancelToken,
    progress: ProgressTracker,
    sink: ImageSink | None,
    is_inpaint: bool = False,
) -> tuple[list[GeneratedImage], bool]:
    """Run all batches; returns the images (saved through `sink` first) and whether it was interrupted."""
    results: list[GeneratedImage] = []
    progress.start("txt2img", request.n_iter, request.steps)
    conds = encode_request(pipe, request)
    for batch_no in range(request.n_iter):
        if token.interrupted:
            break
        token.clear_skip()
        progress.update(job_no=batch_no, sampling_step=0, skipped=False,
                        textinfo=f"Batch {batch_no + 1} of {request.n_iter}")
        seeds = batch_seeds(first_seed + batch_no * request.batch_size, request.batch_size)
        # A fresh scheduler per batch: SDE samplers seed their Brownian noise from the batch's first seed.
        pipe.scheduler, sampler, schedule = make_scheduler(
            dict(pipe.scheduler.config), request.sampler_name, request.scheduler, seed=seeds[0])

        def on_step(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
            progress.update(sampling_step=step + 1)
            if token.should_stop_batch():
                pipeline._interrupt = True  # diffusers' documented way to stop the denoising loop
            return callback_kwargs

        try:
            with torch.inference_mode():
                output = pipe(**_pipeline_kwargs(pipe, request, seeds, is_inpaint, conds),
                              callback_on_step_end=on_step)
        except torch.OutOfMemoryError as exc:
            raise GenerationError("Out of memory while generating. Try a smaller size or batch, or start with "
                                  "--medvram / --lowvram.") from exc
        for image, seed in zip(output.images, seeds, strict=True):
            params = generation_params(request, seed=seed, sampler=sampler, schedule=schedule,
                                       model_name=labels.model_name, model_hash=labels.model_hash,
                                       vae_name=labels.vae_name, vae_hash=labels.vae_hash)
            infotext = build_infotext(request.prompt, request.negative_prompt, params)
            path = sink(image, seed, infotext) if sink is not None else None
            results.append(GeneratedImage(image=image, seed=seed, infotext=infotext, path=path))
    return results, token.interrupted
