"""One generation job on a flow-matching model (AuraFlow, Flux): txt2img with hires fix, img2img, inpainting.

Why beside `generation/run.py` rather than inside it: the SD path drives diffusers' UNet pipelines; a flow family
runs our own loop (`flow_sampling.py`) with its denoiser adapter. What the two share (seeds and CPU noise, the
parsed prompt, LoRAs applied first, img2img input preparation, the infotext, saving before returning) is reused,
so a flow image behaves like an SD one everywhere (X/Y/Z, prompt matrix, tiled upscale, the API, PNG Info).

A1111 prompt syntax here: emphasis works on T5/UMT5 (see `flow_prompts.py`), prompt editing and alternation switch
the conditioning per step, `AND` (composable diffusion) is not available (the parts are sampled as the first part
with a note), `BREAK` and clip skip have no meaning for T5, textual-inversion embeddings are CLIP-only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from PIL import Image

from webui.core.errors import GenerationError, ValidationError
from webui.core.generation_info import generation_params
from webui.core.infotext import build_infotext
from webui.core.model_families import check_sampler
from webui.core.requests import GenerationRequest
from webui.core.resolve import PassPrompts, ResolvedRequest
from webui.core.results import GeneratedImage
from webui.engine.families.flow_denoisers import FlowDenoiser
from webui.engine.families.flow_prompts import FlowConditioning
from webui.engine.families.flow_sampling import FlowPass, Inpainting, noised, run_flow_pass, start_sigma
from webui.engine.families.flow_schedulers import effective_shift, make_flow_scheduler, schedule_name
from webui.engine.families.spec import FlowFamilySpec, max_tokens, variant_of
from webui.engine.generation.img2img_inputs import fill_masked, prepare_mask, resize_image
from webui.engine.generation.noise import batch_noise
from webui.engine.upscale.upscalers import LATENT_MODES


@dataclass(frozen=True)
class _Prompts:
    """Encoded texts of one pass: the first AND part's schedule and the negative schedule, by step."""

    encoded: dict[tuple[str, str], FlowConditioning]
    prompts: PassPrompts

    def at(self, step: int) -> tuple[FlowConditioning, FlowConditioning]:
        positive = self.prompts.positive.subprompts[0].at_step(step).text
        return self.encoded[("+", positive)], self.encoded[("-", self.prompts.negative.at_step(step).text)]


def _encode(pipe, spec: FlowFamilySpec, prompts: PassPrompts, notes: list[str]) -> _Prompts:
    tokens = max_tokens(spec, variant_of(pipe))
    subprompts = prompts.positive.subprompts
    if len(subprompts) > 1:
        notes.append("AND (composable diffusion) is not available for this model family; only the first part "
                     "of the prompt was used.")
    entries = {("+", e.text): e.pieces for e in subprompts[0].schedule}
    entries.update({("-", e.text): e.pieces for e in prompts.negative.schedule})
    with torch.inference_mode():
        encoded = {key: spec.encode(pipe, pieces, tokens) for key, pieces in entries.items()}
    return _Prompts(encoded, prompts)


@dataclass
class _Job:
    """What every pass of one job shares."""

    pipe: object
    spec: FlowFamilySpec
    denoiser: FlowDenoiser
    request: GenerationRequest
    sampler: str
    schedule: str
    ctx: object  # GenerationContext (typed loosely: run.py imports this module)
    step_offset: int = 0
    subseeds: list[int] = dataclasses.field(default_factory=list)

    def check_size(self, width: int, height: int) -> None:
        multiple = self.denoiser.scale_factor * 2
        if width % multiple or height % multiple:
            raise ValidationError(f"{width}x{height}: this model needs image sides that are multiples of "
                                  f"{multiple}.")
        config = self.pipe.transformer.config
        limit = config.get("pos_embed_max_size")
        if limit and max(width, height) // multiple > int(limit ** 0.5):
            raise ValidationError(f"{width}x{height} is larger than this AuraFlow model's position grid "
                                  f"({int(limit ** 0.5) * multiple} px a side).")

    def shift(self, width: int, height: int) -> float:
        return effective_shift(self.request.shift, self.ctx.scheduler_config,
                               self.denoiser.image_tokens(width, height))

    def guidance(self) -> float | None:
        return self.request.distilled_cfg_scale if self.spec.distilled_guidance else None

    def on_step(self, steps_before: int):
        ctx = self.ctx

        def report(done: int) -> bool:
            ctx.progress.update(sampling_step=self.step_offset + steps_before + done)
            if ctx.hooks is not None and ctx.hooks.on_step is not None:
                ctx.hooks.on_step(self.step_offset + steps_before + done)
            return ctx.token.should_stop_batch()

        return report

    def sample(self, prompts: _Prompts, latents_from, width: int, height: int, steps: int, seeds: list[int],
               strength: float = 1.0, inpaint_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One pass at `width` x `height`: `latents_from(noise)` gives the packed x0 for img2img (None: txt2img)."""
        run_steps = steps if strength >= 1 else max(1, int(steps * strength))
        start = steps - run_steps
        scheduler = make_flow_scheduler(self.sampler, self.schedule, self.shift(width, height), steps)
        shape = self.denoiser.latent_shape(width, height)
        noise = batch_noise(seeds, shape, subseeds=self.subseeds, subseed_strength=self.request.subseed_strength)
        noise = self.denoiser.pack(noise.to(self.denoiser.device, torch.float32))
        original = latents_from() if latents_from is not None else None
        latents = noise if original is None else noised(original, noise, start_sigma(scheduler, start))
        inpainting = Inpainting(original, inpaint_mask, noise) if inpaint_mask is not None else None
        flow = FlowPass(self.denoiser, scheduler, steps, prompts.at, self.request.cfg_scale, self.guidance(),
                        shape[1:], [torch.Generator("cpu").manual_seed(s) for s in seeds],
                        self.on_step(0), start, inpainting)
        try:
            with torch.inference_mode():
                return run_flow_pass(flow, latents)
        except torch.OutOfMemoryError as exc:
            raise GenerationError("Out of memory while generating. Try a smaller size or batch, or start with "
                                  "--medvram / --lowvram.") from exc

    def decode(self, packed: torch.Tensor, width: int, height: int) -> list[Image.Image]:
        latents = self.denoiser.unpack(packed, height, width)
        vae = self.pipe.vae
        with torch.inference_mode():
            pixels = vae.decode(self.denoiser.to_vae(latents.to(next(vae.parameters()).dtype)), return_dict=False)[0]
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")

    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        """Packed model-space latents of `images` (the VAE's mean, as A1111 uses for img2img)."""
        vae = self.pipe.vae
        param = next(vae.parameters())
        with torch.inference_mode():
            pixels = torch.cat([self.pipe.image_processor.preprocess(img.convert("RGB")) for img in images])
            latents = vae.encode(pixels.to(param.device, param.dtype)).latent_dist.mode()
        return self.denoiser.pack(self.denoiser.from_vae(latents).float())


def _mask_latents(job: _Job, mask: Image.Image, count: int, width: int, height: int) -> torch.Tensor:
    """The (blurred) mask at the latent grid, packed like the latents (1 = redraw)."""
    channels, h, w = job.denoiser.latent_shape(width, height)
    small = torch.tensor(list(mask.convert("L").resize((w, h), Image.BILINEAR).getdata()), dtype=torch.float32)
    grid = (small.view(1, 1, h, w) / 255.0).expand(count, channels, h, w)
    return job.denoiser.pack(grid.contiguous()).to(job.denoiser.device)


def _img2img(job: _Job, prompts: _Prompts, seeds: list[int]) -> list[Image.Image]:
    request, inputs = job.request, job.request.img2img
    width, height = request.width, request.height
    inits = [resize_image(inputs.init_images[i % len(inputs.init_images)], width, height, inputs.resize_mode)
             for i in range(len(seeds))]
    if inputs.mask is None:
        packed = job.sample(prompts, lambda: job.encode(inits), width, height, request.steps, seeds,
                            request.denoising_strength)
        return job.decode(packed, width, height)
    mask = prepare_mask(inputs.mask, width, height, inputs.resize_mode, inputs.inpainting_mask_invert,
                        inputs.mask_blur)
    region = _crop_region(mask, inputs.inpaint_full_res_padding, width, height) if inputs.inpaint_full_res else None
    sources, work_mask = inits, mask
    if region is not None:  # "Only masked": redraw the padded mask area at the full size, then paste it back
        sources = [img.crop(region).resize((width, height), Image.LANCZOS) for img in inits]
        work_mask = mask.crop(region).resize((width, height), Image.LANCZOS)
    filled = [fill_masked(img, work_mask, inputs.inpainting_fill, seed)
              for img, seed in zip(sources, seeds, strict=True)]
    latent_mask = _mask_latents(job, work_mask, len(seeds), width, height)
    packed = job.sample(prompts, lambda: job.encode(filled), width, height, request.steps, seeds,
                        request.denoising_strength, inpaint_mask=latent_mask)
    images = job.decode(packed, width, height)
    if region is not None:
        size = (region[2] - region[0], region[3] - region[1])
        images = [_pasted(init, out.resize(size, Image.LANCZOS), region) for out, init in zip(images, inits,
                                                                                                strict=True)]
    # Outside the (blurred) mask the input pixels come back unchanged, as A1111 does.
    return [Image.composite(out, init, mask) for out, init in zip(images, inits, strict=True)]


def _pasted(base: Image.Image, patch: Image.Image, region: tuple[int, int, int, int]) -> Image.Image:
    out = base.copy()
    out.paste(patch, region[:2])
    return out


def _crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """A1111's "only masked" crop: the mask's bounding box plus `padding`, grown to the image's aspect ratio and
    kept inside the image. None when the mask is empty (nothing to crop to)."""
    box = mask.getbbox()
    if box is None:
        return None
    left, top = max(box[0] - padding, 0), max(box[1] - padding, 0)
    right, bottom = min(box[2] + padding, width), min(box[3] + padding, height)
    w, h = right - left, bottom - top
    if w / h < width / height:  # too tall: widen
        grow = round(h * width / height) - w
        left, right = left - grow // 2, right + grow - grow // 2
    else:  # too wide: heighten
        grow = round(w * height / width) - h
        top, bottom = top - grow // 2, bottom + grow - grow // 2
    shift_x = -left if left < 0 else min(0, width - right)
    shift_y = -top if top < 0 else min(0, height - bottom)
    left, right, top, bottom = left + shift_x, right + shift_x, top + shift_y, bottom + shift_y
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


def _hires(job: _Job, prompts: _Prompts, first: torch.Tensor, seeds: list[int]) -> list[Image.Image]:
    request = job.request
    width, height = request.hires_size
    job.check_size(width, height)
    if request.hr_upscaler in LATENT_MODES:
        mode, antialias = LATENT_MODES[request.hr_upscaler]
        small = job.denoiser.unpack(first, request.height, request.width)
        size = job.denoiser.latent_shape(width, height)[1:]
        big = torch.nn.functional.interpolate(small.float(), size=size, mode=mode, antialias=antialias)

        def source() -> torch.Tensor:
            return job.denoiser.pack(big)
    else:
        upscalers = job.ctx.upscalers
        if upscalers is None:
            raise GenerationError(f"Upscaler '{request.hr_upscaler}' is not available.")
        pictures = [upscalers.upscale(img, request.hr_upscaler, (width, height))
                    for img in job.decode(first, request.width, request.height)]

        def source() -> torch.Tensor:
            return job.encode(pictures)
    job.step_offset = request.steps
    return job.decode(job.sample(prompts, source, width, height, prompts.prompts.steps, seeds,
                                 request.denoising_strength), width, height)


def _family_params(job: _Job) -> dict[str, object]:
    params: dict[str, object] = {}
    if job.guidance() is not None and variant_of(job.pipe) == "":
        params["Distilled CFG Scale"] = job.request.distilled_cfg_scale
    if job.request.shift > 0:
        params["Shift"] = job.request.shift
    return params


def run_flow_batches(pipe, spec: FlowFamilySpec, denoiser: FlowDenoiser, resolved: ResolvedRequest, ctx,
                     notes: list[str]) -> list[tuple[Image.Image, int, int, dict[str, object]]]:
    """Every batch of the request: (image, seed, variation seed, infotext params) in order. The caller applied
    the LoRAs and writes the images (`generation/run.py`)."""
    request = resolved.request
    schedule = schedule_name(request.scheduler)
    check_sampler(spec.name, resolved.sampler, schedule)
    job = _Job(pipe, spec, denoiser, request, resolved.sampler, schedule, ctx)
    job.check_size(request.width, request.height)
    if request.clip_skip > 1:
        notes.append("Clip skip has no effect on this model family (its prompts go through T5).")
    prompts = _encode(pipe, spec, resolved.prompts, notes)
    hires = _encode(pipe, spec, resolved.hires_prompts, []) if resolved.hires_prompts is not None else None
    family_params = _family_params(job)
    out: list[tuple[Image.Image, int, int, dict[str, object]]] = []
    for batch_no in range(request.n_iter):
        if ctx.token.interrupted:
            break
        ctx.token.clear_skip()
        ctx.progress.update(job_no=batch_no, sampling_step=0, skipped=False,
                            textinfo=f"Batch {batch_no + 1} of {request.n_iter}")
        seeds, subseeds = (list(v) for v in resolved.batch(batch_no))
        job.subseeds, job.step_offset = subseeds, 0
        if request.img2img is not None:
            images = _img2img(job, prompts, seeds)
        else:
            first = job.sample(prompts, None, request.width, request.height, request.steps, seeds)
            stopped = ctx.token.should_stop_batch()
            images = _hires(job, hires, first, seeds) if hires is not None and not stopped else \
                job.decode(first, request.width, request.height)
        for index, (image, seed) in enumerate(zip(images, seeds, strict=True)):
            params = generation_params(request, seed=seed, subseed=subseeds[index], sampler=resolved.sampler,
                                       schedule=schedule, model_name=ctx.labels.model_name,
                                       model_hash=ctx.labels.model_hash, vae_name=ctx.labels.vae_name,
                                       vae_hash=ctx.labels.vae_hash)
            params.update(family_params)
            out.append((image, seed, subseeds[index], params))
    return out


def build_flow_images(pipe, spec: FlowFamilySpec, resolved: ResolvedRequest, ctx, extra: dict[str, object],
                      after_image) -> tuple[list[GeneratedImage], list[str]]:
    """Run the flow job and save each image with its infotext (`after_image` runs extension hooks first)."""
    notes: list[str] = []
    denoiser = spec.denoiser(pipe)
    results: list[GeneratedImage] = []
    request = resolved.request
    for image, seed, subseed, params in run_flow_batches(pipe, spec, denoiser, resolved, ctx, notes):
        params.update(extra)
        image = after_image(image, len(results), seed, subseed, params)
        infotext = build_infotext(request.prompt, request.negative_prompt, params)
        path = ctx.sink(image, seed, infotext) if ctx.sink is not None else None
        results.append(GeneratedImage(image=image, seed=seed, infotext=infotext, path=path))
    return results, notes
