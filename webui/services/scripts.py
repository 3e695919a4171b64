"""Scripts on the services facade: X/Y/Z plot, Prompt matrix and the tiled "Ultimate SD upscale" (issues 8, 9).

Why a separate part: a script is one executor job that runs many generations through the same `submit_txt2img`
path on a view of the services (inline executor, whole-script progress); that machinery is independent of the
rest of the facade. `Services` inherits these methods; they use its models, options and executor.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webui.core.errors import ModelNotFoundError, ValidationError, WebUIError
from webui.core.limits import check_script_size
from webui.core.progress import CancelToken, ProgressSnapshot, ProgressTracker
from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.prompt_matrix import PromptMatrixOptions, PromptMatrixPlan, expand_prompt_matrix
from webui.core.requests import GenerationRequest
from webui.core.resolve import fix_seeds
from webui.core.results import GeneratedImage, GenerationResult
from webui.core.samplers import get_sampler, resolve_schedule, split_legacy_name
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz import (
    CHOICES_CHECKPOINTS,
    CHOICES_HIRES_UPSCALERS,
    CHOICES_SAMPLERS,
    CHOICES_SCHEDULES,
    CHOICES_STYLES,
    CHOICES_VAES,
    AxisInput,
    ScriptResult,
    XyzOptions,
    XyzPlan,
    expand_xyz,
)
from webui.core.xyz import SCRIPT_NAME as XYZ_SCRIPT
from webui.engine.output.grids import annotated_grid, save_grid, xyz_grids
from webui.engine.output.writer import OutputWriter
from webui.engine.runtime.pipeline_manager import VAE_AUTOMATIC, VAE_NONE

if TYPE_CHECKING:  # the facade that inherits these methods
    from webui.services.core import Services

log = logging.getLogger(__name__)


class ScriptServices:
    """X/Y/Z plot, Prompt matrix and Ultimate SD upscale (mixed into `Services`)."""

    # A script is ONE executor job: no other generation runs between its cells and Interrupt/Skip reach every cell.
    # Inside that job each cell still goes through `submit_txt2img` unchanged (validation, styles, LoRAs, saving with
    # its own infotext), called on a view of these services whose executor runs jobs inline with the script's cancel
    # token and a progress tracker that counts the whole plot ("image i of N").

    def script_choices(self, source: str) -> list[str]:
        """The values an enumerable X/Y/Z axis offers as pickers (`webui.core.xyz.CHOICES_*`); [] for others."""
        table = {CHOICES_SAMPLERS: self.sampler_names, CHOICES_SCHEDULES: self.schedule_types,
                 CHOICES_CHECKPOINTS: self.checkpoint_titles, CHOICES_VAES: self.vae_titles,
                 CHOICES_STYLES: self.style_names, CHOICES_HIRES_UPSCALERS: self.hires_upscaler_names}
        return list(table[source]()) if source in table else []

    def submit_xyz_plot(self, base: GenerationRequest, axes: list[AxisInput],
                        options: XyzOptions | None = None) -> Future:
        """Expand and check the plot now (bad values fail before anything runs), then queue it as one job. The
        future yields a `ScriptResult`: the grids (saved to the grids folder) and every cell's images."""
        plan = expand_xyz(base, axes, options, self.seed_source)
        checked = [self._checked_cell(cell.request) for cell in plan.cells]
        plan = dataclasses.replace(plan, cells=tuple(dataclasses.replace(cell, request=request)
                                                     for cell, request in zip(plan.cells, checked, strict=True)))

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            order = plan.run_order(self.current_checkpoint(), self.current_vae())
            run = self._run_script_cells(XYZ_SCRIPT, [(cell.position, cell.request) for cell in order], token,
                                         progress)
            return self._xyz_result(plan, run)

        return self.executor.submit(job, label="xyz-plot")

    def run_xyz_plot(self, base: GenerationRequest, axes: list[AxisInput],
                     options: XyzOptions | None = None) -> ScriptResult:
        return self.submit_xyz_plot(base, axes, options).result()

    def submit_prompt_matrix(self, base: GenerationRequest, options: PromptMatrixOptions | None = None) -> Future:
        """`a|b|c` -> one image per combination and a grid with legends; the future yields a `ScriptResult`."""
        plan = expand_prompt_matrix(base, options, self.seed_source)
        check_script_size(MATRIX_SCRIPT, len(plan.requests), base.total_images)
        plan = dataclasses.replace(plan, requests=tuple(self._checked_cell(request) for request in plan.requests))

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            run = self._run_script_cells(MATRIX_SCRIPT, list(enumerate(plan.requests)), token, progress)
            return self._prompt_matrix_result(plan, run)

        return self.executor.submit(job, label="prompt-matrix")

    def run_prompt_matrix(self, base: GenerationRequest,
                          options: PromptMatrixOptions | None = None) -> ScriptResult:
        return self.submit_prompt_matrix(base, options).result()

    def submit_tiled_upscale(self, base: GenerationRequest, options: TiledUpscaleOptions) -> Future:
        """"Ultimate SD upscale" (img2img only): the init image upscaled with `options.upscaler`, then redrawn
        tile by tile (and seam by seam) with the request's img2img settings, as ONE executor job; every tile goes
        through `submit_txt2img` on the script view (same model, LoRAs, validation). The future yields a
        `ScriptResult` whose images are the upscaled result (and the seams-fixed one), saved to img2img-images."""
        from webui.core.tiled_upscale import SCRIPT_NAME as UPSCALE_SCRIPT
        from webui.core.tiled_upscale import plan_tiled_upscale, upscaled_infotext
        from webui.engine.upscale.tiled_redraw import run_tiled_upscale

        options.validate()
        if base.img2img is None or not base.img2img.init_images:
            raise ValidationError(f"{UPSCALE_SCRIPT} works on img2img: it needs an input image.")
        if options.upscaler not in self.upscalers.names():
            raise ModelNotFoundError(f"No upscaler named '{options.upscaler}'. Available: "
                                     f"{', '.join(self.upscaler_names())}.")
        request = self._checked_cell(dataclasses.replace(base, batch_size=1, n_iter=1, enable_hr=False))
        source = base.img2img.init_images[0]
        plan = plan_tiled_upscale(options.target_size(source.size, (base.width, base.height)), options)
        save = base.save_images and bool(self.options.get("samples_save"))
        writer = OutputWriter.from_options(self.options, self.settings.paths.data_dir, "outdir_img2img_samples")

        def job(token: CancelToken, progress: ProgressTracker) -> ScriptResult:
            seeded = fix_seeds(request, self.seed_source)
            progress.start(UPSCALE_SCRIPT, max(1, plan.patch_count), seeded.steps)
            tracker = _TileProgress(progress, UPSCALE_SCRIPT, plan.patch_count)
            view, run = self._script_view(token, tracker), _ScriptRun()

            def redraw(tile: GenerationRequest) -> GeneratedImage | None:
                tracker.begin_cell(len(run.results), len(run.results))
                result = view.submit_txt2img(tile).result()
                run.results[len(run.results)] = result
                run.warnings.update(dict.fromkeys(result.warnings))
                return result.images[0] if result.images and not result.interrupted else None

            output = run_tiled_upscale(source, seeded, options, plan, self.upscalers, redraw,
                                       lambda: token.interrupted)
            tile_info = output.last.infotext if output.last is not None else self._plain_infotext(seeded)
            infotext = upscaled_infotext(tile_info, plan.size, seeded.denoising_strength, options)
            images = [(output.upscaled, options.save_upscaled_image)]
            if output.seams_fixed is not None:
                images.append((output.seams_fixed, options.save_seams_fix_image))
            made = tuple(GeneratedImage(image, seeded.seed, infotext,
                                        writer.save(image, seeded.seed, infotext) if save and keep else None)
                         for image, keep in images)
            return ScriptResult(UPSCALE_SCRIPT, (), made, True, output.interrupted, tuple(run.warnings),
                                output.patches_done, plan.patch_count)

        return self.executor.submit(job, label="tiled-upscale")

    def _plain_infotext(self, request: GenerationRequest) -> str:
        """The infotext of a request no tile was generated for (redraw "None" without seams fix)."""
        from webui.core.generation_info import generation_params
        from webui.core.infotext import build_infotext

        labels = self.manager.ensure(request.checkpoint, request.vae).labels
        params = generation_params(request, seed=request.seed, subseed=request.subseed,
                                   sampler=request.sampler_name, schedule=request.scheduler,
                                   model_name=labels.model_name, model_hash=labels.model_hash,
                                   vae_name=labels.vae_name, vae_hash=labels.vae_hash)
        return build_infotext(request.prompt, request.negative_prompt, params)

    def _checked_cell(self, request: GenerationRequest) -> GenerationRequest:
        """A cell validated before the first one runs, its model names made canonical (titles): a typo in the last
        value must not fail a plot half-way, and the run order groups cells by model title."""
        request.validate()
        name, schedule = split_legacy_name(request.sampler_name, request.scheduler)
        resolve_schedule(get_sampler(name), schedule)
        self.apply_request_styles(request)  # raises for unknown styles
        checkpoint = self.registry.find_checkpoint(request.checkpoint).title if request.checkpoint else None
        vae = request.vae
        if vae and vae not in (VAE_AUTOMATIC, VAE_NONE):
            vae = self.registry.find_vae(vae).title
        return dataclasses.replace(request, checkpoint=checkpoint, vae=vae)

    def _script_view(self, token: CancelToken, progress: ProgressTracker) -> Services:
        """These services, but running every job at once in the calling thread (the script's job)."""
        view = copy.copy(self)
        view.executor = _InlineExecutor(token, progress)  # type: ignore[assignment]
        return view

    def _run_script_cells(self, script: str, cells: list[tuple[Any, GenerationRequest]], token: CancelToken,
                          progress: ProgressTracker) -> _ScriptRun:
        """Run cells in the given order until done or interrupted, then put back the checkpoint/VAE the script
        started with. Cells finished before an Interrupt keep their (saved) images."""
        total = sum(request.n_iter for _, request in cells)
        progress.start(script, total, cells[0][1].steps if cells else 1)
        tracker = _ScriptProgress(progress, script, len(cells))
        view = self._script_view(token, tracker)
        start_checkpoint, start_vae = self.current_checkpoint(), self.current_vae()
        run, batches_before = _ScriptRun(), 0
        try:
            for index, (key, request) in enumerate(cells):
                if token.interrupted:
                    break
                tracker.begin_cell(index, batches_before)
                result = view.submit_txt2img(request).result()
                run.results[key] = result
                run.warnings.update(dict.fromkeys(result.warnings))
                batches_before += request.n_iter
        finally:
            self._restore_models(view, start_checkpoint, start_vae)
        run.interrupted = token.interrupted
        return run

    def _restore_models(self, view: Services, checkpoint: str | None, vae: str) -> None:
        try:
            if checkpoint and self.current_checkpoint() != checkpoint:
                view.select_checkpoint(checkpoint)
            if self.current_vae() != vae:
                view.select_vae(vae)
        except WebUIError as exc:
            log.warning("Could not switch back to %s after the script: %s", checkpoint, exc)

    def _grid_folder(self, request: GenerationRequest) -> Path:
        """A1111's `outdir_txt2img_grids` / `outdir_img2img_grids`; default `outputs/txt2img-grids`."""
        kind = "txt2img" if request.img2img is None else "img2img"
        value = str(self.options.get(f"outdir_{kind}_grids") or "").strip()
        if not value:
            return self.settings.paths.outputs_dir / f"{kind}-grids"
        folder = Path(value).expanduser()
        return folder if folder.is_absolute() else self.settings.paths.data_dir / folder

    def _grid_image(self, image: Any, basename: str, plan: XyzPlan | PromptMatrixPlan,
                    cells: list[GeneratedImage | None], request: GenerationRequest) -> GeneratedImage | None:
        """A grid as a gallery item, with its first made cell's seed and infotext plus the script's keys; saved
        when the request saves and `grid_save` is on. None when none of its cells was made (interrupted)."""
        first = next((cell for cell in cells if cell is not None), None)
        if first is None:
            return None
        infotext = plan.grid_infotext(first.infotext)
        path = None
        if request.save_images and self.options.get("grid_save"):
            path = save_grid(image, self._grid_folder(request), basename, infotext,
                             str(self.options.get("grid_format") or "png"))
        return GeneratedImage(image=image, seed=first.seed, infotext=infotext, path=path)

    def _xyz_result(self, plan: XyzPlan, run: _ScriptRun) -> ScriptResult:
        firsts = [run.first_image(cell.position) for cell in plan.cells]
        grids = self._xyz_grid_images(plan, firsts) if any(firsts) else []
        return ScriptResult(XYZ_SCRIPT, tuple(grids), run.images([cell.position for cell in plan.cells]),
                            plan.options.include_sub_images, run.interrupted, tuple(run.warnings),
                            len(run.results), len(plan.cells))

    def _xyz_grid_images(self, plan: XyzPlan, firsts: list[GeneratedImage | None]) -> list[GeneratedImage]:
        """A1111's outputs: with several Z values the Z grid first, then (with "Include sub-grids") one grid per Z
        value; with one Z value just its grid. Cells an Interrupt never reached are grey."""
        x_axis, y_axis, z_axis = plan.axes
        drawn = xyz_grids([first.image if first else None for first in firsts], plan.shape,
                          (x_axis.legends(), y_axis.legends(), z_axis.legends()), plan.options.draw_legend,
                          plan.options.margin_size)
        request, depth, per_grid = plan.cells[0].request, plan.shape[2], plan.shape[0] * plan.shape[1]
        grids = [self._grid_image(drawn.z_grid, "xyz_grid", plan, firsts, request)] if depth > 1 else []
        if depth == 1 or plan.options.include_sub_grids:
            grids += [self._grid_image(grid, "xyz_grid", plan, firsts[z * per_grid:(z + 1) * per_grid], request)
                      for z, grid in enumerate(drawn.sub_grids)]
        return [grid for grid in grids if grid is not None]

    def _prompt_matrix_result(self, plan: PromptMatrixPlan, run: _ScriptRun) -> ScriptResult:
        """The grid first, then every image (A1111 shows the matrix's images after its grid)."""
        keys = list(range(len(plan.requests)))
        firsts = [run.first_image(key) for key in keys]
        grid = None
        if any(firsts):
            image = annotated_grid([first.image if first else None for first in firsts], plan.columns,
                                   plan.column_legends, plan.row_legends, plan.options.margin_size)
            grid = self._grid_image(image, "prompt_matrix", plan, firsts, plan.requests[0])
        return ScriptResult(MATRIX_SCRIPT, (grid,) if grid else (), run.images(keys), True, run.interrupted,
                            tuple(run.warnings), len(run.results), len(plan.requests))





class _InlineExecutor:
    """Stands in for the GPU executor inside a script's job: runs each job at once, in the worker thread that is
    already running the script, with the script's cancel token and progress."""

    def __init__(self, token: CancelToken, progress: ProgressTracker):
        self.token = token
        self.progress = progress

    def submit(self, fn: Callable[[CancelToken, ProgressTracker], Any], label: str = "job") -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(self.token, self.progress))
        except Exception as exc:  # noqa: BLE001 - delivered through the future, like the real executor
            future.set_exception(exc)
        return future

    def run(self, fn: Callable[[CancelToken, ProgressTracker], Any], label: str = "job") -> Any:
        return self.submit(fn, label).result()


class _ScriptProgress(ProgressTracker):
    """A cell's view of the script's progress: the cell's batches are numbered within the whole script, and the
    text says "image i of N"; a cell's start/finish never resets the script's totals or its Interrupt flag."""

    def __init__(self, outer: ProgressTracker, script: str, cells: int):
        super().__init__()
        self._outer = outer
        self._script = script
        self._cells = cells
        self._cell = 0
        self._offset = 0

    def begin_cell(self, index: int, batch_offset: int) -> None:
        self._cell, self._offset = index, batch_offset
        self._outer.update(job_no=batch_offset, sampling_step=0, textinfo=self.text())

    def text(self) -> str:
        return f"{self._script}: image {self._cell + 1} of {self._cells}"

    def start(self, job: str, job_count: int, sampling_steps: int) -> None:
        self._outer.update(sampling_steps=sampling_steps, sampling_step=0, job_no=self._offset, textinfo=self.text())

    def update(self, **fields: object) -> None:
        if "job_no" in fields:
            fields["job_no"] = self._offset + int(fields["job_no"])  # type: ignore[call-overload]
        if "textinfo" in fields:
            fields["textinfo"] = self.text()
        self._outer.update(**fields)

    def finish(self) -> None:
        """The script's job finishes the real tracker, not each cell."""

    def set_queued(self, count: int) -> None:
        self._outer.set_queued(count)

    def snapshot(self) -> ProgressSnapshot:
        return self._outer.snapshot()


class _TileProgress(_ScriptProgress):
    """The tiled upscale's progress: "tile i of N"."""

    def text(self) -> str:
        return f"{self._script}: tile {self._cell + 1} of {self._cells}"


@dataclass
class _ScriptRun:
    """What a script's cells produced, keyed by grid position (X/Y/Z) or combination number (Prompt matrix)."""

    results: dict[Any, GenerationResult] = field(default_factory=dict)
    warnings: dict[str, None] = field(default_factory=dict)
    interrupted: bool = False

    def first_image(self, key: Any) -> GeneratedImage | None:
        result = self.results.get(key)
        return result.images[0] if result is not None and result.images else None

    def images(self, keys: list[Any]) -> tuple[GeneratedImage, ...]:
        """Every image, in grid order."""
        return tuple(image for key in keys if key in self.results for image in self.results[key].images)


