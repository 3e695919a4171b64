"""One generation job: txt2img (with hires fix) or img2img/inpaint, A1111-style.

CPU noise per image (seed + i, variation seeds), A1111 prompt syntax with per-step conditioning, LoRAs merged
before encoding, one pipeline call per batch, cooperative interrupt/skip after every step, and every image saved
with its infotext before it is returned.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.core.errors import GenerationError
from webui.core.generation_info import generation_params
from webui.core.infotext import build_infotext
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.requests import INPAINT_FILL, GenerationRequest
from webui.core.resolve import ResolvedRequest
from webui.core.results import GeneratedImage
from webui.engine.control.plan import ControlRun
from webui.engine.families.flow_run import build_flow_images
from webui.engine.families.spec import flow_family_of
from webui.engine.generation.composable import ComposableUNet
from webui.engine.generation.conditioning import ConditioningPlan, plan_conditioning
from webui.engine.generation.img2img_inputs import fill_masked, prepare_mask, resize_image
from webui.engine.generation.job_hooks import JobHooks
from webui.engine.generation.noise import batch_noise
from webui.engine.generation.pipelines import is_sdxl, pipeline_for
from webui.engine.generation.prompt_encoding import Conditioning
from webui.engine.generation.scheduler_factory import make_scheduler
from webui.engine.networks.adapters import AdapterRequest, AdapterSet
from webui.engine.networks.embeddings import Embedding
from webui.engine.runtime.fast_paths import working_dtype
from webui.engine.runtime.offload_store import execution_device
from webui.engine.upscale.upscalers import LATENT_MODES, UpscalerLibrary

log = logging.getLogger(__name__)

ImageSink = Callable[[Image.Image, int, str], object]


@dataclass(frozen=True)
class ModelLabels:
    """How the infotext names the model and VAE in use."""

    model_name: str
    model_hash: str
    vae_name: str | None = None
    vae_hash: str | None = None


@dataclass(frozen=True)
class GenerationContext:
    """Everything around the model a job needs: labels, progress/cancel, where images go, the libraries."""

    labels: ModelLabels
    token: CancelToken
    progress: ProgressTracker
    sink: ImageSink | None
    scheduler_config: dict
    is_inpaint_model: bool = False
    embeddings: dict[str, Embedding] | None = None
    short_hash: Callable[[Path], str] | None = None
    adapters: tuple[AdapterSet, list[AdapterRequest]] | None = None
    upscalers: UpscalerLibrary | None = None
    control: ControlRun | None = None  # the job's ControlNet units (webui.engine.control), built by the service
    hooks: JobHooks | None = None  # extension hooks (step, image, infotext), built by the generation service


def _latent_shape(pipe, width: int, height: int) -> tuple[int, int, int]:
    factor = pipe.vae_scale_factor
    return (pipe.vae.config.latent_channels, height // factor, width // factor)


def _embeds(cond: Conditioning, uncond: Conditioning, count: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    kwargs = {"prompt_embeds": cond.embeds.repeat(count, 1, 1).to(dtype),
              "negative_prompt_embeds": uncond.embeds.repeat(count, 1, 1).to(dtype)}
    if cond.pooled is not None:
        kwargs["pooled_prompt_embeds"] = cond.pooled.repeat(count, 1).to(dtype)
        kwargs["negative_pooled_prompt_embeds"] = uncond.pooled.repeat(count, 1).to(dtype)
    return kwargs


def _set_parts(unet: ComposableUNet, plan: ConditioningPlan, step: int, count: int) -> None:
    unet.set_parts([(cond.embeds.repeat(count, 1, 1), cond.pooled.repeat(count, 1) if cond.pooled is not None
                     else None, weight) for cond, weight in plan.parts_at(step)])


def _step_callback(plan: ConditioningPlan, count: int, token: CancelToken, progress: ProgressTracker,
                   step_offset: int = 0, step_hook: Callable[[int], None] | None = None):
    """After step i: report progress, honour interrupt/skip, and swap in the conditioning of step i + 1 when the
    prompt schedule changes there (prompt editing, alternation)."""

    def on_step(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        progress.update(sampling_step=step_offset + step + 1)
        if step_hook is not None:
            step_hook(step_offset + step + 1)
        if token.should_stop_batch():
            pipeline._interrupt = True  # diffusers' documented way to stop the denoising loop
        if not plan.changes_at(step + 1):
            return callback_kwargs
        if plan.composable:
            _set_parts(pipeline.unet, plan, step + 1, count)
            return callback_kwargs
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


@dataclass
class _Batch:
    seeds: list[int]
    subseeds: list[int]
    sampler: str
    schedule: str


def _denoise(pipe, task: str, plan: ConditioningPlan, request: GenerationRequest, batch: _Batch,
             ctx: GenerationContext, steps: int, step_offset: int = 0, size: tuple[int, int] | None = None,
             **task_kwargs):
    """One pipeline call for one batch, on a view of the loaded pipeline for `task`."""
    strength = task_kwargs.get("strength")
    if strength is not None and 0 < strength < 1 and int(steps * strength) < 1:
        # diffusers runs int(steps * strength) steps; at least one must run, or it fails on an empty schedule.
        steps = math.ceil(1 / strength)
    scheduler, batch.sampler, batch.schedule = make_scheduler(
        ctx.scheduler_config, batch.sampler, batch.schedule, seed=batch.seeds[0])
    replace = {"unet": ComposableUNet(pipe.unet)} if plan.composable else {}
    if ctx.control is not None:  # ControlNet: its pipeline class on the same modules, the units' maps at `size`
        if plan.composable:
            raise GenerationError("AND (composable prompts) cannot be combined with ControlNet units yet.")
        view, task_kwargs = ctx.control.view(pipe, task, ctx.is_inpaint_model, request.cfg_scale,
                                             size or (request.width, request.height), task_kwargs)
    else:
        view = pipeline_for(pipe, task, ctx.is_inpaint_model, **replace)
    view.scheduler = scheduler
    count = len(batch.seeds)
    if plan.composable:
        _set_parts(view.unet, plan, 0, count)
    dtype = working_dtype(pipe)
    inputs = ["latents", "prompt_embeds"] + (["add_text_embeds"] if is_sdxl(pipe) else [])
    try:
        with torch.inference_mode():
            return view(**_embeds(*plan.at(0), count, dtype), num_inference_steps=steps,
                        guidance_scale=request.cfg_scale,
                        generator=[torch.Generator("cpu").manual_seed(s) for s in batch.seeds],
                        callback_on_step_end=_step_callback(plan, count, ctx.token, ctx.progress, step_offset,
                                                            ctx.hooks and ctx.hooks.on_step),
                        callback_on_step_end_tensor_inputs=inputs, **task_kwargs).images
    except torch.OutOfMemoryError as exc:
        raise GenerationError("Out of memory while generating. Try a smaller size or batch, or start with "
                              "--medvram / --lowvram.") from exc


def _txt2img_batch(pipe, plan, request, batch, ctx, output_type: str):
    device = execution_device(pipe.unet)
    dtype = working_dtype(pipe)  # float32 latents around a bfloat16 UNet (the CPU fast path)
    shape = _latent_shape(pipe, request.width, request.height)
    resize_from = None
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        resize_from = _latent_shape(pipe, request.seed_resize_from_w, request.seed_resize_from_h)
    latents = batch_noise(batch.seeds, shape, subseeds=batch.subseeds, subseed_strength=request.subseed_strength,
                          resize_from=resize_from).to(device, dtype)
    kwargs = dict(width=request.width, height=request.height, latents=latents, output_type=output_type)
    if ctx.is_inpaint_model:
        # A1111 runs txt2img on inpainting models as inpainting of a fully masked blank canvas.
        kwargs.update(image=Image.new("RGB", (request.width, request.height), (127, 127, 127)),
                      mask_image=Image.new("L", (request.width, request.height), 255), strength=1.0)
    return _denoise(pipe, "txt2img", plan, request, batch, ctx, request.steps, **kwargs)


def _hires_batch(pipe, plan, request, batch, ctx, first_pass) -> list[Image.Image]:
    """Upscale the first pass (in latent space, or as images with an upscaler) and run img2img on it for the steps
    the hires prompts were scheduled for."""
    width, height = request.hires_size
    if request.hr_upscaler in LATENT_MODES:
        mode, antialias = LATENT_MODES[request.hr_upscaler]
        size = _latent_shape(pipe, width, height)[1:]
        image = torch.nn.functional.interpolate(first_pass.float(), size=size, mode=mode,
                                                antialias=antialias).to(first_pass.dtype)
    else:
        if ctx.upscalers is None:
            raise GenerationError(f"Upscaler '{request.hr_upscaler}' is not available.")
        image = [ctx.upscalers.upscale(img, request.hr_upscaler, (width, height)) for img in first_pass]
    return _denoise(pipe, "img2img", plan, request, batch, ctx, plan.parsed.steps, step_offset=request.steps,
                    size=(width, height), image=image, strength=request.denoising_strength, output_type="pil")


def _img2img_batch(pipe, plan, request, batch, ctx) -> list[Image.Image]:
    inputs = request.img2img
    count = len(batch.seeds)
    inits = [resize_image(inputs.init_images[i % len(inputs.init_images)], request.width, request.height,
                          inputs.resize_mode) for i in range(count)]
    if inputs.mask is None:
        image = inits
        if inputs.resize_mode == 3:  # latent upscale: encode at the source size, resize the latents
            image = _latent_resized(pipe, inputs.init_images, count, request)
        return _denoise(pipe, "img2img", plan, request, batch, ctx, request.steps, image=image,
                        strength=request.denoising_strength, output_type="pil")
    mask = prepare_mask(inputs.mask, request.width, request.height, inputs.resize_mode,
                        inputs.inpainting_mask_invert, inputs.mask_blur)
    padding = inputs.inpaint_full_res_padding if inputs.inpaint_full_res else None
    extra: dict[str, object] = {}
    if inputs.inpainting_fill in LATENT_FILLS and padding is None and not ctx.is_inpaint_model:
        # A1111's latent noise / latent nothing: the fill happens on the encoded image, inside the mask.
        image = latent_filled(pipe, inits, mask, inputs.inpainting_fill, batch.seeds)
        extra["masked_image_latents"] = image  # unused by a 4-channel UNet; skips diffusers' pixel masking
        mask_image = [mask] * count
    else:
        filled = [fill_masked(img, mask, inputs.inpainting_fill, seed) for img, seed in zip(inits, batch.seeds,
                                                                                            strict=True)]
        # diffusers' "only masked" crop path takes one image (shared by the batch).
        image, mask_image = (filled[0], mask) if padding is not None else (filled, [mask] * count)
    images = _denoise(pipe, "inpaint", plan, request, batch, ctx, request.steps, image=image,
                      mask_image=mask_image, strength=request.denoising_strength, width=request.width,
                      height=request.height, padding_mask_crop=padding, output_type="pil", **extra)
    # Paste back: outside the (blurred) mask the input pixels come back unchanged, as A1111 does.
    return [Image.composite(out.resize(init.size), init, mask) if padding is None else out
            for out, init in zip(images, inits, strict=True)]


LATENT_FILLS = (2, 3)  # "latent noise", "latent nothing"


def latent_filled(pipe, inits: list[Image.Image], mask: Image.Image, fill: int, seeds: list[int]) -> torch.Tensor:
    """Encode the images and fill the masked latents as A1111 does: seeded unit noise (2) or zeros (3).

    The mask is downsampled to the latent grid and rounded (A1111's `np.around`), so a blurred edge belongs to
    one side; the blur still shapes the paste-back. The result goes to the inpaint pipeline as `image` (diffusers
    takes a 4-channel tensor as ready latents). Noise comes from one CPU generator per image seed, like the
    initial noise. Not used for 9-channel inpainting models or "only masked", which need pixels (they keep the
    pixel-space approximation of `fill_masked`)."""
    device, dtype = execution_device(pipe.vae), pipe.vae.dtype
    processor = pipe.image_processor
    with torch.inference_mode():
        pixels = torch.cat([processor.preprocess(img.convert("RGB")) for img in inits]).to(device, dtype)
        latents = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    height, width = latents.shape[-2:]
    small = np.asarray(mask.convert("L").resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
    inside = torch.from_numpy(np.around(small)).to(latents.device, latents.dtype)[None, None]
    if fill == 2:
        noise = torch.stack([torch.randn(latents.shape[1:], generator=torch.Generator("cpu").manual_seed(seed))
                             for seed in seeds]).to(latents.device, latents.dtype)
        return latents * (1 - inside) + noise * inside
    return latents * (1 - inside)


def _latent_resized(pipe, init_images, count: int, request: GenerationRequest) -> torch.Tensor:
    processor = pipe.image_processor
    device, dtype = execution_device(pipe.vae), pipe.vae.dtype
    latents = []
    for i in range(count):
        source = init_images[i % len(init_images)].convert("RGB")
        width, height = source.width // 8 * 8, source.height // 8 * 8
        tensor = processor.preprocess(source.resize((width, height))).to(device, dtype)
        with torch.inference_mode():
            encoded = pipe.vae.encode(tensor).latent_dist.mode() * pipe.vae.config.scaling_factor
        latents.append(torch.nn.functional.interpolate(encoded.float(), size=_latent_shape(
            pipe, request.width, request.height)[1:], mode="bilinear").to(dtype))
    return torch.cat(latents)


def _extra_params(request: GenerationRequest) -> dict[str, object]:
    params: dict[str, object] = {}
    if request.img2img is not None:
        params["Denoising strength"] = request.denoising_strength
        if request.img2img.mask is not None:
            params["Mask blur"] = request.img2img.mask_blur
            params["Masked content"] = INPAINT_FILL[request.img2img.inpainting_fill]
            if request.img2img.inpaint_full_res:
                params["Inpaint area"] = "Only masked"
                params["Masked area padding"] = request.img2img.inpaint_full_res_padding
            if request.img2img.inpainting_mask_invert:
                params["Mask mode"] = "Inpaint not masked"
    elif request.enable_hr:
        params["Denoising strength"] = request.denoising_strength
        if request.hr_resize_x or request.hr_resize_y:
            params["Hires resize"] = "{}x{}".format(*request.hires_size)
        else:
            params["Hires upscale"] = request.hr_scale
        if request.hr_second_pass_steps:
            params["Hires steps"] = request.hr_second_pass_steps
        params["Hires upscaler"] = request.hr_upscaler
    return params


def _with_hashes(request: GenerationRequest, ctx: GenerationContext, plan_embeddings) -> GenerationRequest:
    extra = list(request.extra_params)
    if ctx.adapters is not None and ctx.adapters[0].current and ctx.short_hash is not None:
        extra.append(("Lora hashes", ", ".join(f"{a.name}: {ctx.short_hash(a.path)}" for a in ctx.adapters[0].current)))
    if plan_embeddings and ctx.short_hash is not None:
        extra.append(("TI hashes", ", ".join(f"{e.name}: {ctx.short_hash(e.path)}" for e in plan_embeddings)))
    return dataclasses.replace(request, extra_params=tuple(extra))


def _after_image(hooks: JobHooks | None, image: Image.Image, index: int, seed: int, subseed: int,
                 params: dict[str, object]) -> Image.Image:
    """Extensions' after-image hooks and infotext fields for image `index` of the job (before it is written)."""
    if hooks is None:
        return image
    if hooks.infotext_fields is not None:
        params.update(hooks.infotext_fields(index))
    return hooks.after_image(image, index, seed, subseed) if hooks.after_image is not None else image


def run_generation(pipe, resolved: ResolvedRequest,
                   ctx: GenerationContext) -> tuple[list[GeneratedImage], bool, list[str]]:
    """Run all batches of a resolved request (seeds, sampler and parsed prompts are decided before the job; the
    engine only follows them); returns the images (saved through `ctx.sink` first), whether it was interrupted,
    and notes for the user (files skipped, constructs applied differently from A1111)."""
    request, hires = resolved.request, resolved.hires_prompts
    task = "txt2img" if request.img2img is None else "img2img"
    steps_total = request.steps + (hires.steps if hires is not None else 0)
    ctx.progress.start(task, request.n_iter, steps_total)
    notes: list[str] = []
    if ctx.adapters is not None:
        notes += ctx.adapters[0].apply(ctx.adapters[1])  # before encoding: TE LoRA weights shape the conditioning
    flow = flow_family_of(pipe)
    if flow is not None:  # AuraFlow, Flux: the flow-matching path (engine/families/)
        request = _with_hashes(request, ctx, ())
        images, flow_notes = build_flow_images(
            pipe, flow, dataclasses.replace(resolved, request=request), ctx, _extra_params(request),
            lambda image, index, seed, subseed, params: _after_image(ctx.hooks, image, index, seed, subseed, params))
        return images, ctx.token.interrupted, notes + flow_notes
    plan = plan_conditioning(pipe, resolved.prompts, request.clip_skip, ctx.embeddings)
    hires_plan = plan_conditioning(pipe, hires, request.clip_skip, ctx.embeddings) if hires is not None else None
    notes += plan.notes
    request = _with_hashes(request, ctx, plan.used_embeddings)
    extra = _extra_params(request)
    if ctx.control is not None:
        extra.update(ctx.control.infotext_params())
    results: list[GeneratedImage] = []
    for batch_no in range(request.n_iter):
        if ctx.token.interrupted:
            break
        ctx.token.clear_skip()
        ctx.progress.update(job_no=batch_no, sampling_step=0, skipped=False,
                            textinfo=f"Batch {batch_no + 1} of {request.n_iter}")
        seeds, subseeds = resolved.batch(batch_no)
        batch = _Batch(list(seeds), list(subseeds), resolved.sampler, resolved.schedule)
        if task == "img2img":
            images = _img2img_batch(pipe, plan, request, batch, ctx)
        elif hires_plan is not None:
            latent = request.hr_upscaler in LATENT_MODES
            first = _txt2img_batch(pipe, plan, request, batch, ctx, "latent" if latent else "pil")
            images = first if ctx.token.should_stop_batch() and not latent else \
                _hires_batch(pipe, hires_plan, request, batch, ctx, first)
        else:
            images = _txt2img_batch(pipe, plan, request, batch, ctx, "pil")
        for index, (image, seed) in enumerate(zip(images, batch.seeds, strict=True)):
            params = generation_params(request, seed=seed, subseed=batch.subseeds[index], sampler=batch.sampler,
                                       schedule=batch.schedule, model_name=ctx.labels.model_name,
                                       model_hash=ctx.labels.model_hash, vae_name=ctx.labels.vae_name,
                                       vae_hash=ctx.labels.vae_hash)
            params.update(extra)
            image = _after_image(ctx.hooks, image, len(results), seed, batch.subseeds[index], params)
            infotext = build_infotext(request.prompt, request.negative_prompt, params)
            path = ctx.sink(image, seed, infotext) if ctx.sink is not None else None
            results.append(GeneratedImage(image=image, seed=seed, infotext=infotext, path=path))
    return results, ctx.token.interrupted, notes
