"""The one place a `ScriptSpec` becomes a queued job: the UI and the API both call `submit_script`.

Why a protocol instead of the services class: the dispatcher needs only the four submit methods, so it does not
care how the services are split or wired.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol

from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.requests import GenerationRequest
from webui.core.script_spec import ScriptSpec, XyzPlotOptions
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz import AxisInput, XyzOptions


class ScriptRunner(Protocol):
    """What running a script needs: the plain generation and the three built-in scripts."""

    def submit_txt2img(self, request: GenerationRequest) -> Future: ...

    def submit_xyz_plot(self, base: GenerationRequest, axes: list[AxisInput],
                        options: XyzOptions | None = None) -> Future: ...

    def submit_prompt_matrix(self, base: GenerationRequest, options: PromptMatrixOptions | None = None) -> Future: ...

    def submit_tiled_upscale(self, base: GenerationRequest, options: TiledUpscaleOptions) -> Future: ...


def submit_script(runner: ScriptRunner, request: GenerationRequest, spec: ScriptSpec) -> Future:
    """Queue `spec`'s script over `request`, or the plain generation for `SCRIPT_NONE`. The future yields a
    `GenerationResult`-like result (grids first for scripts)."""
    options = spec.options
    if isinstance(options, XyzPlotOptions):
        return runner.submit_xyz_plot(request, list(options.axes), options.options)
    if isinstance(options, PromptMatrixOptions):
        return runner.submit_prompt_matrix(request, options)
    if isinstance(options, TiledUpscaleOptions):
        return runner.submit_tiled_upscale(request, options)
    return runner.submit_txt2img(request)
