"""txt2img and img2img: a request checked and resolved in the caller's thread, then run as one executor job.

Why one path: the UI, the API and every script cell (X/Y/Z, Prompt matrix, tiled upscale tiles) generate through
`submit_txt2img`, so validation, styles, LoRAs, saving and the infotext are the same everywhere. A script builds
this service with an inline executor (`with_executor`) to run its cells inside its own job.
"""
from __future__ import annotations

import dataclasses
import random
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

from webui.core.options import Options
from webui.core.progress import CancelToken, ProgressTracker
from webui.core.requests import GenerationRequest
from webui.core.resolve import ResolvedRequest, fix_seeds, resolve_request
from webui.core.results import GeneratedImage, GenerationResult
from webui.core.settings import Settings
from webui.engine.control.engine import ControlEngine
from webui.engine.generation.live_preview import LatentPreview
from webui.engine.generation.run import GenerationContext, run_generation
from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.output.writer import OutputWriter
from webui.engine.runtime.fast_paths import denoiser_of
from webui.engine.runtime.pipeline_manager import PipelineManager
from webui.engine.upscale.upscalers import UpscalerLibrary
from webui.extensions.registry import ExtensionRegistry
from webui.jobs.device_arbiter import DeviceShare
from webui.jobs.inline_executor import JobRunner
from webui.services.network_service import NetworkService
from webui.services.style_service import StyleService


@dataclasses.dataclass(frozen=True)
class GenerationParts:
    """The engine objects a generation job uses (what `GenerationService` needs besides its executor), and where
    -1 seeds are drawn from (`webui.core.resolve.system_seeds` in the app; tests may count the draws)."""

    settings: Settings
    options: Options
    manager: PipelineManager
    embeddings: EmbeddingLibrary
    upscalers: UpscalerLibrary
    previews: LatentPreview
    device_share: DeviceShare
    seeds: random.Random
    control: ControlEngine | None = None  # ControlNet units (None: requests with units are refused)


class GenerationService:
    """Generation requests -> queued jobs whose futures yield `GenerationResult`s."""

    def __init__(self, parts: GenerationParts, executor: JobRunner, styles: StyleService, networks: NetworkService,
                 extensions: ExtensionRegistry | None = None):
        self._parts = parts
        self._executor = executor
        self._styles = styles
        self._networks = networks
        self._extensions = extensions  # whose hooks run around every request (None: no extensions)

    def with_executor(self, executor: JobRunner) -> GenerationService:
        """The same service running its jobs through `executor` (a script's inline executor)."""
        return GenerationService(self._parts, executor, self._styles, self._networks, self._extensions)

    def default_request(self) -> GenerationRequest:
        return GenerationRequest(clip_skip=int(self._parts.options.get("CLIP_stop_at_last_layers") or 1),
                                 shift=float(self._parts.options.get("flow_shift") or 0.0))

    def txt2img(self, request: GenerationRequest) -> GenerationResult:
        return self.submit_txt2img(request).result()

    def submit_txt2img(self, request: GenerationRequest) -> Future:
        """Validate and resolve now (fast, in the caller's thread), then queue. The future yields a
        `GenerationResult`. An img2img request (`request.img2img` set) takes the same path."""
        return self.submit_resolved(self.resolve(request))

    def submit_resolved(self, resolved: ResolvedRequest) -> Future:
        """Queue a request resolved by `resolve` (a script resolves its cells before its job starts, so a bad
        value fails the whole script at once and every cell keeps the seeds the script fixed). When an extension
        split the request (`resolved.more`), the parts run one after another in this one job."""
        request = resolved.request
        parts = self._parts
        save = request.save_images and bool(parts.options.get("samples_save"))
        folder_key = "outdir_txt2img_samples" if request.img2img is None else "outdir_img2img_samples"
        sink = OutputWriter.from_options(parts.options, parts.settings.paths.data_dir, folder_key).save
        planned = [(part, *self._networks.resolve_loras(part.extra_networks)) for part in (resolved, *resolved.more)]

        def job(token: CancelToken, progress: ProgressTracker) -> GenerationResult:
            share_notice = [n for n in (parts.device_share.notice(),) if n]  # training on this device?
            images: list[GeneratedImage] = []
            warnings: list[str] = list(resolved.notes)
            interrupted, first = False, None
            maps: list = []  # ControlNet detected maps
            for part, adapter_requests, adapter_notes in planned:
                if images and token.interrupted:
                    break
                hooks = self._extensions.job_hooks(part.request, len(images), warnings) if self._extensions \
                    else None
                active = parts.manager.ensure(part.request.checkpoint, part.request.vae)
                control = ControlEngine.run_for(parts.control, part.request, active)
                context = GenerationContext(
                    labels=active.labels, token=token, progress=progress, sink=sink if save else None,
                    scheduler_config=active.scheduler_config, is_inpaint_model=active.loaded.is_inpaint,
                    embeddings=parts.embeddings.refresh(), short_hash=self._short_hash,
                    adapters=(active.adapters, adapter_requests), upscalers=parts.upscalers, hooks=hooks,
                    control=control)
                with parts.previews.capture(denoiser_of(active.pipeline), active.loaded.family,
                                            active.pipeline.vae.config.latent_channels, vae=active.pipeline.vae), \
                        ControlEngine.placed_for(parts.control, control, active.loaded.family):
                    made, interrupted, notes = run_generation(active.pipeline, part, context)
                maps += ControlEngine.finish(control, sink if save and parts.options.get(
                    "control_net_detectmap_autosaving") else None, part.request.seed)
                images += made
                warnings += [note for note in (*adapter_notes, *notes) if note not in warnings]
                first = first or active
            return GenerationResult(request=request, images=tuple(images), model_name=first.entry.name,
                                    model_hash=first.model_hash, vae_name=first.labels.vae_name,
                                    vae_hash=first.labels.vae_hash, inpainting_model=first.loaded.is_inpaint,
                                    interrupted=interrupted, warnings=(*warnings, *share_notice),
                                    control_maps=() if parts.options.get("control_net_no_detectmap") else tuple(maps),
                                    job_timestamp=datetime.now().strftime("%Y%m%d%H%M%S"))

        return self._executor.submit(job, label="txt2img")

    def resolve(self, request: GenerationRequest) -> ResolvedRequest:
        """The request as the engine runs it (`webui.core.resolve`): validated, styles merged into the prompts,
        sampler and schedule split, -1 seeds drawn, the prompt parsed once with its extra-network calls.
        Everything a generation decides before it runs is decided here, once."""
        styles = {style.name: style for style in self._styles.style_rows()}
        warnings: list[str] = []
        requests = [request]
        if self._extensions is not None and self._extensions.has_hooks("before_generation"):
            request.validate()  # the hooks see a valid request whose -1 seeds are drawn (once, here)
            requests = self._extensions.before_generation(fix_seeds(request, self._parts.seeds), warnings)
        resolved = [resolve_request(item, styles=styles, seeds=self._parts.seeds,
                                    styles_source=self._parts.settings.paths.styles_file.name) for item in requests]
        if len(resolved) == 1 and not warnings:
            return resolved[0]
        return dataclasses.replace(resolved[0], more=tuple(resolved[1:]), notes=tuple(warnings))

    def _short_hash(self, path: Path) -> str:
        """A1111's short hash of an extra-network file: the "addnet" hash of a safetensors file's tensor data."""
        hashes = self._parts.manager.hashes
        if path.suffix == ".safetensors":
            return hashes.addnet_hash(path)
        return hashes.sha256(path)[:12]
