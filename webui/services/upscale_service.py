"""Extras (upscaling): single images, a batch, or "Batch from directory"; the upscaler lists.

Why a service: the checks run in the caller's thread before anything is queued (a bad factor fails at once), the
client's folders are resolved by the path policy, and the upscaling runs on the GPU executor behind generations.
The loops themselves are engine work (`webui.engine.upscale.batch`).
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.options import Options
from webui.core.path_policy import PathPolicy
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.settings import Settings
from webui.engine.output.writer import OutputWriter
from webui.engine.upscale.batch import (
    IMAGE_SUFFIXES,
    Upscaled,
    check_extras_request,
    folder_images,
    upscale_files,
    upscale_images,
)
from webui.engine.upscale.postprocess import ExtrasRequest
from webui.engine.upscale.upscalers import BUILTIN as BUILTIN_UPSCALERS
from webui.engine.upscale.upscalers import LATENT_MODES, UpscalerLibrary
from webui.jobs.inline_executor import JobRunner
from webui.services.shown_paths import ShownPaths


class UpscaleService:
    """The Extras tab's and /sdapi/v1/extra-* work, and the upscaler choices of hires fix and scripts."""

    def __init__(self, settings: Settings, options: Options, upscalers: UpscalerLibrary, executor: JobRunner,
                 policy: PathPolicy, shown: ShownPaths):
        self._settings = settings
        self._options = options
        self._upscalers = upscalers
        self._executor = executor
        self._policy = policy
        self._shown = shown

    def upscaler_names(self) -> list[str]:
        return self._upscalers.names()

    def hires_upscaler_names(self) -> list[str]:
        return [*LATENT_MODES, *(n for n in self._upscalers.names() if n != "None")]

    @staticmethod
    def latent_upscale_modes() -> list[str]:
        return list(LATENT_MODES)

    def upscaler_rows(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/upscalers: the built-ins (None, Lanczos, Nearest), then model files in models/ESRGAN."""
        rows: list[dict[str, Any]] = [{"name": name, "model_name": None, "model_path": None, "model_url": None,
                                       "scale": 4} for name in BUILTIN_UPSCALERS]
        rows += [{"name": path.stem, "model_name": path.stem, "model_path": self._shown(path), "model_url": None,
                  "scale": None} for path in self._upscalers.model_files()]
        return rows

    def with_executor(self, executor: JobRunner) -> UpscaleService:
        """The same service running its jobs through `executor` (a queued task's inline executor)."""
        return UpscaleService(self._settings, self._options, self._upscalers, executor, self._policy, self._shown)

    def check_extras(self, images: list[Any], request: ExtrasRequest) -> None:
        """Refuse a bad Extras request before it is queued (no image, a bad factor, an unknown upscaler)."""
        if not images:
            raise ValidationError("Extras needs at least one image.")
        check_extras_request(request, [image.size for image in images])
        self._check_upscalers(request)

    def submit_extras(self, images: list[Any], request: ExtrasRequest, save: bool = True) -> Future:
        """Upscale images on the GPU executor; the future yields [(image, path or None, parameters)]."""
        self.check_extras(images, request)
        writer = OutputWriter.from_options(self._options, self._settings.paths.data_dir, "outdir_extras_samples")
        upscalers = self._upscalers

        def job(token: CancelToken, progress: ProgressTracker) -> list[Upscaled]:
            return upscale_images(images, request, upscalers, writer.save_extras if save else None, token, progress)

        return self._executor.submit(job, label="extras")

    def submit_extras_folder(self, input_dir: str, output_dir: str, request: ExtrasRequest) -> Future:
        """A1111's "Batch from directory": upscale every image in `input_dir` into `output_dir` (blank: the extras
        folder from the settings). Both are client paths: inside the data folder (relative to it) or a folder
        allowed with --gradio-allowed-path, and refused altogether when server folders are hidden."""
        self._policy.refuse_if_hidden("Batch from directory")
        if not input_dir.strip():
            raise ValidationError("Batch from directory needs an input directory.")
        source = self._policy.resolve(input_dir, "Input directory")
        if not source.is_dir():
            raise ValidationError(f"Input directory '{input_dir}' does not exist.")
        files = folder_images(source)
        if not files:
            raise ValidationError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in '{input_dir}'.")
        self._check_upscalers(request)
        check_extras_request(request, [])
        target = self._policy.resolve(output_dir, "Output directory") if output_dir.strip() else \
            self._options.output_dir("outdir_extras_samples", self._settings.paths.data_dir)
        writer = OutputWriter(target, str(self._options.get("samples_format") or "png"))
        upscalers = self._upscalers

        def job(token: CancelToken, progress: ProgressTracker) -> list[Upscaled]:
            return upscale_files(files, request, upscalers, writer.save_extras, token, progress)

        return self._executor.submit(job, label="extras")

    def _check_upscalers(self, request: ExtrasRequest) -> None:
        for name in (request.upscaler_1, request.upscaler_2):
            if name not in self._upscalers.names():
                raise ModelNotFoundError(f"No upscaler named '{name}'. Available: {', '.join(self.upscaler_names())}.")
