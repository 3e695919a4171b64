"""The grids of a finished script: X/Y/Z plot grids and the Prompt matrix grid, as gallery items and files.

Why apart from running the cells: drawing and saving grids depends only on the plan, the cells' first images and
the grid options (`grid_save`, `grid_format`, `outdir_*_grids`), not on how the cells were generated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from webui.core.options import Options
from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.prompt_matrix import PromptMatrixPlan
from webui.core.requests import GenerationRequest
from webui.core.results import GeneratedImage
from webui.core.script_results import ScriptResult
from webui.core.settings import Paths
from webui.core.xyz_plan import SCRIPT_NAME as XYZ_SCRIPT
from webui.core.xyz_plan import XyzPlan
from webui.engine.output.grids import annotated_grid, save_grid, xyz_grids
from webui.services.script_progress import ScriptRun


class ScriptGrids:
    """Turns a script's plan and run into its `ScriptResult`, saving grids where the options say."""

    def __init__(self, options: Options, paths: Paths):
        self._options = options
        self._paths = paths

    def xyz_result(self, plan: XyzPlan, run: ScriptRun) -> ScriptResult:
        firsts = [run.first_image(cell.position) for cell in plan.cells]
        grids = self._xyz_grid_images(plan, firsts) if any(firsts) else []
        return ScriptResult(XYZ_SCRIPT, tuple(grids), run.images([cell.position for cell in plan.cells]),
                            plan.options.include_sub_images, run.interrupted, tuple(run.warnings),
                            len(run.results), len(plan.cells))

    def prompt_matrix_result(self, plan: PromptMatrixPlan, run: ScriptRun) -> ScriptResult:
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

    def _grid_folder(self, request: GenerationRequest) -> Path:
        """A1111's `outdir_txt2img_grids` / `outdir_img2img_grids`; default `outputs/txt2img-grids`."""
        kind = "txt2img" if request.img2img is None else "img2img"
        value = str(self._options.get(f"outdir_{kind}_grids") or "").strip()
        if not value:
            return self._paths.outputs_dir / f"{kind}-grids"
        folder = Path(value).expanduser()
        return folder if folder.is_absolute() else self._paths.data_dir / folder

    def _grid_image(self, image: Any, basename: str, plan: XyzPlan | PromptMatrixPlan,
                    cells: list[GeneratedImage | None], request: GenerationRequest) -> GeneratedImage | None:
        """A grid as a gallery item, with its first made cell's seed and infotext plus the script's keys; saved
        when the request saves and `grid_save` is on. None when none of its cells was made (interrupted)."""
        first = next((cell for cell in cells if cell is not None), None)
        if first is None:
            return None
        infotext = plan.grid_infotext(first.infotext)
        path = None
        if request.save_images and self._options.get("grid_save"):
            path = save_grid(image, self._grid_folder(request), basename, infotext,
                             str(self._options.get("grid_format") or "png"))
        return GeneratedImage(image=image, seed=first.seed, infotext=infotext, path=path)
