"""Scripts: X/Y/Z plot, Prompt matrix and the tiled "Ultimate SD upscale".

Why one executor job per script: no other generation runs between its cells, and Interrupt/Skip reach every
cell. Inside that job each cell still goes through the generation service unchanged (validation, styles, LoRAs,
saving with its own infotext): a generation service built with an inline executor that runs jobs at once with the
script's cancel token and a progress tracker counting the whole script ("image i of N").
"""
from __future__ import annotations

import dataclasses
import logging
import random
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from webui.core.errors import ModelNotFoundError, ValidationError, WebUIError
from webui.core.generation_info import generation_params
from webui.core.infotext import build_infotext
from webui.core.limits import check_script_size
from webui.core.options import Options
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.prompt_matrix import PromptMatrixOptions, expand_prompt_matrix
from webui.core.requests import GenerationRequest
from webui.core.resolve import ResolvedRequest
from webui.core.results import GeneratedImage
from webui.core.samplers import SCHEDULE_TYPES, sampler_names
from webui.core.script_results import ScriptResult
from webui.core.script_spec import ExtensionScriptOptions, ScriptSpec, XyzPlotOptions
from webui.core.settings import Settings
from webui.core.tiled_upscale import SCRIPT_NAME as UPSCALE_SCRIPT
from webui.core.tiled_upscale import TiledUpscaleOptions, plan_tiled_upscale, upscaled_infotext
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_axis_types import (
    CHOICES_CHECKPOINTS,
    CHOICES_CONTROLNET_MODELS,
    CHOICES_HIRES_UPSCALERS,
    CHOICES_SAMPLERS,
    CHOICES_SCHEDULES,
    CHOICES_STYLES,
    CHOICES_VAES,
)
from webui.core.xyz_plan import SCRIPT_NAME as XYZ_SCRIPT
from webui.core.xyz_plan import XyzOptions, expand_xyz
from webui.engine.models.registry import ModelRegistry
from webui.engine.output.writer import OutputWriter
from webui.engine.runtime.pipeline_manager import VAE_AUTOMATIC, VAE_NONE, PipelineManager
from webui.engine.upscale.tiled_redraw import run_tiled_upscale
from webui.engine.upscale.upscalers import UpscalerLibrary
from webui.extensions.registry import ExtensionRegistry
from webui.jobs.inline_executor import InlineExecutor, JobRunner
from webui.services.control_service import ControlService
from webui.services.extension_scripts import find_script, run_script
from webui.services.generation_service import GenerationService
from webui.services.model_service import ModelService
from webui.services.script_grids import ScriptGrids
from webui.services.script_progress import ScriptProgress, ScriptRun, TileProgress
from webui.services.style_service import StyleService
from webui.services.upscale_service import UpscaleService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptParts:
    """The engine objects scripts use besides the services: settings and options (saving), the registry (model
    names in axes), the manager (the infotext of a request no tile was drawn for), the upscalers, and where -1
    seeds are drawn from (the generation service's source)."""

    settings: Settings
    options: Options
    registry: ModelRegistry
    manager: PipelineManager
    upscalers: UpscalerLibrary
    seeds: random.Random
    extensions: ExtensionRegistry | None = None  # the scripts extensions added (ExtensionScriptOptions)


@dataclass(frozen=True)
class ScriptUsing:
    """The services a script's cells and axes go through."""

    generation: GenerationService
    models: ModelService
    styles: StyleService
    upscale: UpscaleService
    control: ControlService | None = None  # the ControlNet model picker of the "[ControlNet] Model" axis


class ScriptService:
    """X/Y/Z plot, Prompt matrix and Ultimate SD upscale, each queued as one job."""

    def __init__(self, parts: ScriptParts, executor: JobRunner, using: ScriptUsing):
        self._parts = parts
        self._executor = executor
        self._using = using
        self._grids = ScriptGrids(parts.options, parts.settings.paths)

    def with_executor(self, executor: JobRunner) -> ScriptService:
        """The same service queueing its script jobs on `executor` (a task runs its script inline, inside the
        task's own executor job). A plain request (no script) still goes to the generation service's executor."""
        return ScriptService(self._parts, executor, self._using)

    def submit(self, request: GenerationRequest, spec: ScriptSpec) -> Future:
        """Queue `spec`'s script over `request`, or the plain generation when no script is chosen: the one place
        the UI's script widgets and the API's `script_name`/`script_args` (both decoded to a `ScriptSpec`) run.
        The future yields a `ScriptResult` (grids first) or a `GenerationResult`."""
        options = spec.options
        if isinstance(options, XyzPlotOptions):
            return self.submit_xyz_plot(request, list(options.axes), options.options)
        if isinstance(options, PromptMatrixOptions):
            return self.submit_prompt_matrix(request, options)
        if isinstance(options, TiledUpscaleOptions):
            return self.submit_tiled_upscale(request, options)
        if isinstance(options, ExtensionScriptOptions):
            return self.submit_extension_script(request, options)
        return self._using.generation.submit_txt2img(request)

    def submit_extension_script(self, request: GenerationRequest, options: ExtensionScriptOptions) -> Future:
        """An extension's script as one job; its generations run inline in that job (as X/Y/Z's cells do)."""
        script = find_script(self._parts.extensions, options)

        def job(token: CancelToken, progress: ProgressTracker) -> Any:
            generation, models = self._inline(token, progress)
            return run_script(self._parts.extensions, script, request, options.args,
                              {"generation": generation, "models": models})

        return self._executor.submit(job, label="extension-script")

    def script_choices(self, source: str) -> list[str]:
        """The values an enumerable X/Y/Z axis offers as pickers (`xyz_axis_types.CHOICES_*`); [] for others."""
        using = self._using
        table = {CHOICES_SAMPLERS: sampler_names, CHOICES_SCHEDULES: lambda: list(SCHEDULE_TYPES),
                 CHOICES_CHECKPOINTS: using.models.checkpoint_titles, CHOICES_VAES: using.models.vae_titles,
                 CHOICES_STYLES: using.styles.style_names, CHOICES_HIRES_UPSCALERS: using.upscale.hires_upscaler_names,
                 CHOICES_CONTROLNET_MODELS: using.control.model_list if using.control else list}
        return list(table[source]()) if source in table else []

    def submit_xyz_plot(self, base: GenerationRequest, axes: list[AxisInput],
                        options: XyzOptions | None = None) -> Future:
        """Expand and check the plot now (bad values fail before anything runs), then queue it as one job. The
        future yields a `ScriptResult`: the grids (saved to the grids folder) and every cell's images."""
        plan = expand_xyz(base, axes, options, self._parts.seeds)
        resolved = {cell.position: self._resolved_cell(cell.request) for cell in plan.cells}
        plan = dataclasses.replace(plan, cells=tuple(dataclasses.replace(cell, request=resolved[cell.position].request)
                                                     for cell in plan.cells))
        models = self._using.models

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            order = plan.run_order(models.current_checkpoint(), models.current_vae())
            run = self._run_cells(XYZ_SCRIPT, [(cell.position, resolved[cell.position]) for cell in order], token,
                                  progress)
            return self._grids.xyz_result(plan, run)

        return self._executor.submit(job, label="xyz-plot")

    def run_xyz_plot(self, base: GenerationRequest, axes: list[AxisInput],
                     options: XyzOptions | None = None) -> ScriptResult:
        return self.submit_xyz_plot(base, axes, options).result()

    def submit_prompt_matrix(self, base: GenerationRequest, options: PromptMatrixOptions | None = None) -> Future:
        """`a|b|c` -> one image per combination and a grid with legends; the future yields a `ScriptResult`."""
        plan = expand_prompt_matrix(base, options, self._parts.seeds)
        check_script_size(MATRIX_SCRIPT, len(plan.requests), base.total_images)
        resolved = [self._resolved_cell(request) for request in plan.requests]
        plan = dataclasses.replace(plan, requests=tuple(cell.request for cell in resolved))

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            run = self._run_cells(MATRIX_SCRIPT, list(enumerate(resolved)), token, progress)
            return self._grids.prompt_matrix_result(plan, run)

        return self._executor.submit(job, label="prompt-matrix")

    def run_prompt_matrix(self, base: GenerationRequest,
                          options: PromptMatrixOptions | None = None) -> ScriptResult:
        return self.submit_prompt_matrix(base, options).result()

    def submit_tiled_upscale(self, base: GenerationRequest, options: TiledUpscaleOptions) -> Future:
        """"Ultimate SD upscale" (img2img only): the init image upscaled with `options.upscaler`, then redrawn
        tile by tile (and seam by seam) with the request's img2img settings, as ONE executor job; every tile goes
        through the generation service (same model, LoRAs, validation). The future yields a `ScriptResult` whose
        images are the upscaled result (and the seams-fixed one), saved to img2img-images."""
        parts = self._parts
        options.validate()
        if base.img2img is None or not base.img2img.init_images:
            raise ValidationError(f"{UPSCALE_SCRIPT} works on img2img: it needs an input image.")
        if options.upscaler not in parts.upscalers.names():
            raise ModelNotFoundError(f"No upscaler named '{options.upscaler}'. Available: "
                                     f"{', '.join(self._using.upscale.upscaler_names())}.")
        resolved = self._resolved_cell(dataclasses.replace(base, batch_size=1, n_iter=1, enable_hr=False))
        seeded = resolved.request  # the tiles share its seeds, styles and sampler; each tile is resolved again
        source = base.img2img.init_images[0]
        plan = plan_tiled_upscale(options.target_size(source.size, (base.width, base.height)), options)
        save = base.save_images and bool(parts.options.get("samples_save"))
        writer = OutputWriter.from_options(parts.options, parts.settings.paths.data_dir, "outdir_img2img_samples")

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            progress.start(UPSCALE_SCRIPT, max(1, plan.patch_count), seeded.steps)
            tracker = TileProgress(progress, UPSCALE_SCRIPT, plan.patch_count)
            generation, run = self._inline(token, tracker)[0], ScriptRun()

            def redraw(tile: GenerationRequest) -> GeneratedImage | None:
                tracker.begin_cell(len(run.results), len(run.results))
                result = generation.submit_txt2img(tile).result()
                run.add(len(run.results), result)
                return result.images[0] if result.images and not result.interrupted else None

            output = run_tiled_upscale(source, seeded, options, plan, parts.upscalers, redraw,
                                       lambda: token.interrupted)
            tile_info = output.last.infotext if output.last is not None else self._plain_infotext(resolved)
            infotext = upscaled_infotext(tile_info, plan.size, seeded.denoising_strength, options)
            images = [(output.upscaled, options.save_upscaled_image)]
            if output.seams_fixed is not None:
                images.append((output.seams_fixed, options.save_seams_fix_image))
            made = tuple(GeneratedImage(image, seeded.seed, infotext,
                                        writer.save(image, seeded.seed, infotext) if save and keep else None)
                         for image, keep in images)
            return ScriptResult(UPSCALE_SCRIPT, (), made, True, output.interrupted, tuple(run.warnings),
                                output.patches_done, plan.patch_count)

        return self._executor.submit(job, label="tiled-upscale")

    def _plain_infotext(self, resolved: ResolvedRequest) -> str:
        """The infotext of a request no tile was generated for (redraw "None" without seams fix)."""
        request = resolved.request
        labels = self._parts.manager.ensure(request.checkpoint, request.vae).labels
        params = generation_params(request, seed=request.seed, subseed=request.subseed,
                                   sampler=resolved.sampler, schedule=resolved.schedule,
                                   model_name=labels.model_name, model_hash=labels.model_hash,
                                   vae_name=labels.vae_name, vae_hash=labels.vae_hash)
        return build_infotext(request.prompt, request.negative_prompt, params)

    def _resolved_cell(self, request: GenerationRequest) -> ResolvedRequest:
        """A cell resolved before the first one runs (validated, seeds fixed, prompt parsed), its model names made
        canonical (titles): a typo in the last value must not fail a plot half-way, and the run order groups cells
        by model title."""
        resolved = self._using.generation.resolve(request)
        request, registry = resolved.request, self._parts.registry
        checkpoint = registry.find_checkpoint(request.checkpoint).title if request.checkpoint else None
        vae = request.vae
        if vae and vae not in (VAE_AUTOMATIC, VAE_NONE):
            vae = registry.find_vae(vae).title
        return dataclasses.replace(resolved, request=dataclasses.replace(request, checkpoint=checkpoint, vae=vae))

    def _inline(self, token: CancelToken, progress: ProgressTracker) -> tuple[GenerationService, ModelService]:
        """The generation and model services running every job at once in the calling thread (the script's job),
        with the script's cancel token and progress."""
        inline = InlineExecutor(token, progress)
        return self._using.generation.with_executor(inline), self._using.models.with_executor(inline)

    def _run_cells(self, script: str, cells: list[tuple[Any, ResolvedRequest]], token: CancelToken,
                   progress: ProgressTracker) -> ScriptRun:
        """Run cells in the given order until done or interrupted, then put back the checkpoint/VAE the script
        started with. Cells finished before an Interrupt keep their (saved) images."""
        total = sum(cell.request.n_iter for _, cell in cells)
        progress.start(script, total, cells[0][1].request.steps if cells else 1)
        tracker = ScriptProgress(progress, script, len(cells))
        generation, models = self._inline(token, tracker)
        start_checkpoint, start_vae = models.current_checkpoint(), models.current_vae()
        run, batches_before = ScriptRun(), 0
        try:
            for index, (key, cell) in enumerate(cells):
                if token.interrupted:
                    break
                tracker.begin_cell(index, batches_before)
                run.add(key, generation.submit_resolved(cell).result())
                batches_before += cell.request.n_iter
        finally:
            _restore_models(models, start_checkpoint, start_vae)
        run.interrupted = token.interrupted
        return run


def _restore_models(models: ModelService, checkpoint: str | None, vae: str) -> None:
    try:
        if checkpoint and models.current_checkpoint() != checkpoint:
            models.select_checkpoint(checkpoint)
        if models.current_vae() != vae:
            models.select_vae(vae)
    except WebUIError as exc:
        log.warning("Could not switch back to %s after the script: %s", checkpoint, exc)
