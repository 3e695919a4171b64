"""txt2img on a loaded pipeline, A1111-style: CPU noise per image (seed + i, variation seeds), A1111 prompt
syntax with per-step conditioning, one pipeline call per batch, cooperative interrupt/skip after every step,
and every image saved with its infotext before it is returned.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from webui.core.errors import GenerationError
from webui.core.generation_info import generation_params
from webui.core.infotext import build_infotext
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.requests import GenerationRequest
from webui.core.results import GeneratedImage
from webui.core.seeds import batch_seeds
from webui.engine.adapters import AdapterRequest, AdapterSet
from webui.engine.composable import ComposableUNet
from webui.engine.conditioning import ConditioningPlan, plan_conditioning
from webui.engine.embeddings import Embedding
from webui.engine.noise import batch_noise
from webui.engine.prompt_encoding import Conditioning
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


def _latent_shape(pipe, width: int, height: int) -> tuple[int, int, int]:
    factor = pipe.vae_scale_factor
    return (pipe.vae.config.latent_channels, height // factor, width // factor)


def _is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def _embeds(cond: Conditioning, uncond: Conditioning, count: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    kwargs = {"prompt_embeds": cond.embeds.repeat(count, 1, 1).to(dtype),
              "negative_prompt_embeds": uncond.embeds.repeat(count, 1, 1).to(dtype)}
    if cond.pooled is not None:
        kwargs["pooled_prompt_embeds"] = cond.pooled.repeat(count, 1).to(dtype)
        kwargs["negative_pooled_prompt_embeds"] = uncond.pooled.repeat(count, 1).to(dtype)
    return kwargs


def _noise(pipe, request: GenerationRequest, seeds: list[int], subseeds: list[int]) -> torch.Tensor:
    shape = _latent_shape(pipe, request.width, request.height)
    resize_from = None
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        resize_from = _latent_shape(pipe, request.seed_resize_from_w, request.seed_resize_from_h)
    return batch_noise(seeds, shape, subseeds=subseeds, subseed_strength=request.subseed_strength,
                       resize_from=resize_from)


def _pipeline_kwargs(pipe, request: GenerationRequest, seeds: list[int], subseeds: list[int], is_inpaint: bool,
                     plan: ConditioningPlan) -> dict:
    param = next(pipe.unet.parameters())
    latents = _noise(pipe, request, seeds, subseeds).to(param.device, param.dtype)
    kwargs = dict(
        **_embeds(*plan.at(0), len(seeds), param.dtype),
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        width=request.width,
        height=request.height,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        latents=latents,
        output_type="pil",
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"] + (["add_text_embeds"] if _is_sdxl(pipe)
                                                                           else []),
    )
    if is_inpaint:
        # A1111 runs txt2img on inpainting models as inpainting of a fully masked blank canvas.
        kwargs["image"] = Image.new("RGB", (request.width, request.height), (127, 127, 127))
        kwargs["mask_image"] = Image.new("L", (request.width, request.height), 255)
        kwargs["strength"] = 1.0
    return kwargs


def _set_parts(unet: ComposableUNet, plan: ConditioningPlan, step: int, count: int) -> None:
    unet.set_parts([(cond.embeds.repeat(count, 1, 1), cond.pooled.repeat(count, 1) if cond.pooled is not None
                     else None, weight) for cond, weight in plan.parts_at(step)])


def _step_callback(plan: ConditioningPlan, count: int, token: CancelToken, progress: ProgressTracker):
    """After step i: report progress, honour interrupt/skip, and swap in the conditioning of step i + 1 when the
    prompt schedule changes there (prompt editing, alternation)."""

    def on_step(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        progress.update(sampling_step=step + 1)
        if token.should_stop_batch():
            pipeline._interrupt = True  # diffusers' documented way to stop the denoising loop
        if plan.composable and plan.changes_at(step + 1):
            _set_parts(pipeline.unet, plan, step + 1, count)
        elif plan.changes_at(step + 1):
            cond, uncond = plan.at(step + 1)
            current = callback_kwargs["prompt_embeds"]
            embeds = _embeds(cond, uncond, count, current.dtype)
            cfg = current.shape[0] == 2 * count
            callback_kwargs["prompt_embeds"] = torch.cat(
                [embeds["negative_prompt_embeds"], embeds["prompt_embeds"]]) if cfg else embeds["prompt_embeds"]
            if "add_text_embeds" in callback_kwargs:
                callback_kwargs["add_text_embeds"] = torch.cat(
                    [embeds["negative_pooled_prompt_embeds"], embeds["pooled_prompt_embeds"]]) if cfg else \
                    embeds["pooled_prompt_embeds"]
        return callback_kwargs

    return on_step


def run_txt2img(
    pipe,
    request: GenerationRequest,
    *,
    first_seed: int,
    first_subseed: int,
    labels: ModelLabels,
    token: CancelToken,
    progress: ProgressTracker,
    sink: ImageSink | None,
    is_inpaint: bool = False,
    embeddings: dict[str, Embedding] | None = None,
    short_hash: Callable[[Path], str] | None = None,
    adapters: tuple[AdapterSet, list[AdapterRequest]] | None = None,
) -> tuple[list[GeneratedImage], bool, list[str]]:
    """Run all batches; returns the images (saved through `sink` first), whether it was interrupted, and notes
    for the user (files skipped, constructs applied differently from A1111)."""
    results: list[GeneratedImage] = []
    progress.start("txt2img", request.n_iter, request.steps)
    notes: list[str] = []
    if adapters is not None:
        adapter_set, wanted = adapters
        notes += adapter_set.apply(wanted)  # before encoding: text-encoder LoRA weights shape the conditioning
        if adapter_set.current and short_hash is not None:
            hashes = ", ".join(f"{a.name}: {short_hash(a.path)}" for a in adapter_set.current)
            request = dataclasses.replace(request, extra_params=(*request.extra_params, ("Lora hashes", hashes)))
    plan = plan_conditioning(pipe, request.prompt, request.negative_prompt, request.steps, request.clip_skip,
                             embeddings)
    notes += plan.notes
    if plan.used_embeddings and short_hash is not None:
        hashes = ", ".join(f"{e.name}: {short_hash(e.path)}" for e in plan.used_embeddings)
        request = dataclasses.replace(request, extra_params=(*request.extra_params, ("TI hashes", hashes)))
    for batch_no in range(request.n_iter):
        if token.interrupted:
            break
        token.clear_skip()
        progress.update(job_no=batch_no, sampling_step=0, skipped=False,
                        textinfo=f"Batch {batch_no + 1} of {request.n_iter}")
        offset = batch_no * request.batch_size
        seeds = batch_seeds(first_seed + offset, request.batch_size)
        subseeds = batch_seeds(first_subseed + offset, request.batch_size)
        # A fresh scheduler per batch: SDE samplers seed their Brownian noise from the batch's first seed.
        pipe.scheduler, sampler, schedule = make_scheduler(
            dict(pipe.scheduler.config), request.sampler_name, request.scheduler, seed=seeds[0])
        run_pipe = pipe
        if plan.composable:
            # A view of the same components with the AND-combining UNet; the loaded pipeline is not changed.
            run_pipe = type(pipe).from_pipe(pipe, unet=ComposableUNet(pipe.unet))
            run_pipe.set_progress_bar_config(disable=True)
            _set_parts(run_pipe.unet, plan, 0, len(seeds))
        try:
            with torch.inference_mode():
                output = run_pipe(**_pipeline_kwargs(pipe, request, seeds, subseeds, is_inpaint, plan),
                                  callback_on_step_end=_step_callback(plan, len(seeds), token, progress))
        except torch.OutOfMemoryError as exc:
            raise GenerationError("Out of memory while generating. Try a smaller size or batch, or start with "
                                  "--medvram / --lowvram.") from exc
        for index, (image, seed) in enumerate(zip(output.images, seeds, strict=True)):
            params = generation_params(request, seed=seed, subseed=subseeds[index], sampler=sampler,
                                       schedule=schedule, model_name=labels.model_name,
                                       model_hash=labels.model_hash, vae_name=labels.vae_name,
                                       vae_hash=labels.vae_hash)
            infotext = build_infotext(request.prompt, request.negative_prompt, params)
            path = sink(image, seed, infotext) if sink is not None else None
            results.append(GeneratedImage(image=image, seed=seed, infotext=infotext, path=path))
    return results, token.interrupted, notes
