"""The one facade the UI and the API call. Everything that touches the device goes through the executor.

Why a facade: the UI and the API must behave identically (same validation, same queue, same outputs), and
neither may reach into the engine directly (DESIGN.md layers).
"""
from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from webui.core.errors import ModelLoadError, ModelNotFoundError, ValidationError, WebUIError
from webui.core.infotext import parse_infotext
from webui.core.options import Options
from webui.core.progress import CancelToken, ProgressSnapshot, ProgressTracker
from webui.core.prompt_parser import LORA_KINDS, extract_extra_networks
from webui.core.requests import GenerationRequest
from webui.core.results import GenerationResult
from webui.core.samplers import SAMPLERS, SCHEDULE_TYPES, get_sampler, resolve_schedule, split_legacy_name
from webui.core.seeds import resolve_seed
from webui.core.settings import Settings
from webui.core.styles import Style, StyleStore, apply_styles
from webui.engine.adapters import AdapterRequest
from webui.engine.devices import DeviceConfig, configure_torch_threads
from webui.engine.embeddings import EmbeddingLibrary
from webui.engine.extras import ExtrasRequest, run_extras
from webui.engine.generation import GenerationContext, run_generation
from webui.engine.hashing import HashCache
from webui.engine.images import read_infotext
from webui.engine.lora_library import LoraLibrary
from webui.engine.outputs import OutputWriter
from webui.engine.pipeline_manager import VAE_AUTOMATIC, VAE_NONE, PipelineManager
from webui.engine.registry import ModelRegistry
from webui.engine.upscalers import LATENT_MODES, UpscalerLibrary
from webui.jobs.executor import GpuExecutor

log = logging.getLogger(__name__)

DEMO_MODEL_PATH = Path(__file__).resolve().parent / "assets" / "demo" / "demo-shapes.safetensors"

# Infotext keys -> the always-present generation fields they fill (see `Services.infotext_fields`).
_CORE_INFOTEXT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Steps", ("steps",)), ("Sampler", ("sampler_name",)), ("CFG scale", ("cfg_scale",)), ("Seed", ("seed",)),
    ("Size", ("width", "height")),
)


class Services:
    def __init__(self, settings: Settings, registry: ModelRegistry, manager: PipelineManager,
                 executor: GpuExecutor, options: Options, styles: StyleStore, embeddings: EmbeddingLibrary,
                 loras: LoraLibrary, upscalers: UpscalerLibrary):
        self.settings = settings
        self.registry = registry
        self.manager = manager
        self.executor = executor
        self.options = options
        self.styles = styles
        self.embeddings = embeddings
        self.loras = loras
        self.upscalers = upscalers
        self.startup_message = ""

    # ----- models -------------------------------------------------------------------------------------------
    def checkpoint_titles(self) -> list[str]:
        return [entry.title for entry in self.registry.checkpoints()]

    def vae_titles(self) -> list[str]:
        return [VAE_AUTOMATIC, VAE_NONE, *(entry.title for entry in self.registry.vaes())]

    def refresh_models(self) -> None:
        self.registry.refresh()

    def current_checkpoint(self) -> str | None:
        active = self.manager.active
        return active.entry.title if active is not None else None

    def current_vae(self) -> str:
        return self.manager.vae_choice

    def is_demo_model(self, title: str | None) -> bool:
        if not title:
            return False
        return any(entry.builtin and entry.title == title for entry in self.registry.checkpoints())

    def select_checkpoint(self, title: str) -> str:
        """Load a checkpoint (queued behind running generations). Raises a `WebUIError` on failure; the
        previous model stays loaded."""
        def job(token: CancelToken, progress: ProgressTracker) -> str:
            progress.start(f"Loading {title}", 1, 1)
            return self.manager.ensure(title).entry.title

        loaded = self.executor.run(job, label="load-checkpoint")
        self.options.update({"sd_model_checkpoint": loaded})
        return loaded

    def select_vae(self, title: str) -> str:
        def job(token: CancelToken, progress: ProgressTracker) -> str:
            self.manager.set_vae(title)
            return self.manager.vae_choice

        chosen = self.executor.run(job, label="load-vae")
        self.options.update({"sd_vae": chosen})
        return chosen

    def sd_models(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/sd-models entries (hashes only where already known; never computed here)."""
        rows = []
        for entry in self.registry.checkpoints():
            short = self.manager.hashes.cached_model_hash(entry.path) if entry.kind != "diffusers" else None
            rows.append({
                "title": f"{entry.title} [{short}]" if short else entry.title,
                "model_name": entry.model_name,
                "hash": short,
                "sha256": None,
                "filename": str(entry.path),
                "config": None,
            })
        return rows

    def sd_vaes(self) -> list[dict[str, Any]]:
        return [{"model_name": e.title, "filename": str(e.path)} for e in self.registry.vaes()]

    def load_startup_model(self) -> Future:
        """Queue the start-up load: --ckpt, else the last used checkpoint, else the first listed."""
        wanted = self.settings.ckpt and str(self.settings.ckpt)
        if wanted and Path(wanted).is_file():
            self.registry.add_external_checkpoint(Path(wanted))
        wanted = wanted or self.options.get("sd_model_checkpoint")

        def job(token: CancelToken, progress: ProgressTracker) -> str | None:
            candidates = [wanted] if wanted else []
            candidates += [e.title for e in self.registry.checkpoints() if e.title != wanted]
            for title in candidates:
                try:
                    return self.manager.ensure(title, self.options.get("sd_vae")).entry.title
                except WebUIError as exc:
                    log.warning("Could not load %s at start: %s", title, exc)
                    self.startup_message = str(exc)
            return None

        return self.executor.submit(job, label="startup-load")

    # ----- generation ---------------------------------------------------------------------------------------
    def default_request(self) -> GenerationRequest:
        return GenerationRequest(clip_skip=int(self.options.get("CLIP_stop_at_last_layers") or 1))

    def submit_txt2img(self, request: GenerationRequest) -> Future:
        """Validate now (fast, in the caller's thread), then queue. The future yields a `GenerationResult`."""
        request.validate()
        request = self.apply_request_styles(request)
        name, schedule = split_legacy_name(request.sampler_name, request.scheduler)
        resolve_schedule(get_sampler(name), schedule)
        request = dataclasses.replace(request, sampler_name=name, scheduler=schedule)
        save = request.save_images and bool(self.options.get("samples_save"))
        folder_key = "outdir_txt2img_samples" if request.img2img is None else "outdir_img2img_samples"
        writer = OutputWriter.from_options(self.options, self.settings.paths.data_dir, folder_key)
        sink = writer.save

        adapter_requests, adapter_notes = self.resolve_loras(request.prompt)

        def job(token: CancelToken, progress: ProgressTracker) -> GenerationResult:
            active = self.manager.ensure(request.checkpoint, request.vae)
            first_seed = resolve_seed(request.seed)
            first_subseed = resolve_seed(request.subseed)
            resolved = dataclasses.replace(request, seed=first_seed, subseed=first_subseed)
            context = GenerationContext(
                labels=active.labels, token=token, progress=progress, sink=sink if save else None,
                scheduler_config=active.scheduler_config, is_inpaint_model=active.loaded.is_inpaint,
                embeddings=self.embeddings.refresh(), short_hash=self._short_hash,
                adapters=(active.adapters, adapter_requests), upscalers=self.upscalers)
            images, interrupted, notes = run_generation(active.pipeline, resolved, context, first_seed=first_seed,
                                                        first_subseed=first_subseed)
            return GenerationResult(request=resolved, images=tuple(images), model_name=active.entry.name,
                                    model_hash=active.model_hash, interrupted=interrupted,
                                    warnings=(*adapter_notes, *notes),
                                    job_timestamp=datetime.now().strftime("%Y%m%d%H%M%S"))

        return self.executor.submit(job, label="txt2img")

    def txt2img(self, request: GenerationRequest) -> GenerationResult:
        return self.submit_txt2img(request).result()

    def progress(self) -> ProgressSnapshot:
        return self.executor.progress.snapshot()

    def interrupt(self) -> bool:
        return self.executor.interrupt()

    def skip(self) -> bool:
        return self.executor.skip()

    def _short_hash(self, path: Path) -> str:
        """A1111's short hash of an extra-network file: the "addnet" hash of a safetensors file's tensor data."""
        if path.suffix == ".safetensors":
            return self.manager.hashes.addnet_hash(path)
        return self.manager.hashes.sha256(path)[:12]

    def resolve_loras(self, prompt: str) -> tuple[list[AdapterRequest], list[str]]:
        """`<lora:name:te:unet>` / `<lyco:...>` tags -> files; unknown names become notes, never errors."""
        _, calls = extract_extra_networks(prompt)
        requests: list[AdapterRequest] = []
        notes: list[str] = []
        self.loras.refresh()
        for call in calls:
            if call.kind not in LORA_KINDS:
                notes.append(f"Extra network type '{call.kind}' is not supported; <{call.kind}:{call.name}> ignored.")
                continue
            entry = self.loras.find(call.name)
            if entry is None:
                notes.append(f"LoRA '{call.name}' not found in models/Lora or models/LyCORIS.")
                continue
            requests.append(AdapterRequest(entry.name, entry.path, entry.version_key, call.te_weight,
                                           call.unet_weight))
        return requests, notes

    def lora_list(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/loras shape."""
        self.loras.refresh()
        return [{"name": e.name, "alias": e.metadata().get("ss_output_name", e.name), "path": str(e.path),
                 "metadata": e.metadata()} for e in self.loras.entries()]

    def embedding_list(self) -> dict[str, Any]:
        """A1111's /sdapi/v1/embeddings shape: loaded (fitting the current model) and skipped ones."""
        from webui.engine.prompt_encoding import encoder_dims

        library = self.embeddings.refresh()
        active = self.manager.active
        dims = encoder_dims(active.pipeline) if active is not None else None
        loaded, skipped = {}, {}
        for name, emb in library.items():
            row = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": emb.dims()[-1],
                   "vectors": emb.token_count}
            (loaded if dims is None or emb.vectors_for(dims) is not None else skipped)[name] = row
        return {"loaded": loaded, "skipped": skipped}

    # ----- styles, infotext, PNG info ------------------------------------------------------------------------
    def style_names(self) -> list[str]:
        self.styles.load()
        return self.styles.names()

    def style_rows(self) -> list[Style]:
        self.styles.load()
        return self.styles.styles()

    def apply_styles_to_prompt(self, prompt: str, negative: str, names: list[str]) -> tuple[str, str]:
        """A1111's "apply styles" button: the styles' text merged into the prompt boxes."""
        chosen = [style for name in names if (style := self.styles.get(name)) is not None]
        return apply_styles(prompt, negative, chosen)

    def apply_request_styles(self, request: GenerationRequest) -> GenerationRequest:
        """Styles selected for a generation are merged into its prompts before anything else sees them."""
        if not request.styles:
            return request
        self.styles.load()
        missing = [name for name in request.styles if self.styles.get(name) is None]
        if missing:
            raise ValidationError(f"Unknown style(s): {', '.join(missing)}. Styles come from "
                                  f"{self.settings.paths.styles_file.name}.")
        prompt, negative = self.apply_styles_to_prompt(request.prompt, request.negative_prompt, list(request.styles))
        return dataclasses.replace(request, prompt=prompt, negative_prompt=negative, styles=())

    def save_style(self, name: str, prompt: str, negative: str) -> list[str]:
        self.styles.save_style(Style(name.strip(), prompt, negative))
        return self.styles.names()

    def delete_style(self, name: str) -> list[str]:
        self.styles.delete(name)
        return self.styles.names()

    @staticmethod
    def parse_infotext(text: str) -> dict[str, Any]:
        """Infotext -> generation fields (A1111 API names), for "send to" and the paste button."""
        return parse_infotext(text).to_generation_fields()

    @staticmethod
    def infotext_fields(text: str) -> dict[str, Any]:
        """Like `parse_infotext`, but only the fields the text names (plus A1111's implied defaults for clip
        skip and schedule type), so that pasting a partial infotext leaves the other UI fields alone."""
        parsed = parse_infotext(text)
        if not parsed.params:
            return {"prompt": parsed.prompt, "negative_prompt": parsed.negative_prompt}
        fields = parsed.to_generation_fields()
        for key, names in _CORE_INFOTEXT_KEYS:
            if key not in parsed.params:
                for name in names:
                    fields.pop(name, None)
        return fields

    def find_checkpoint_title(self, name: str | None, model_hash: str | None) -> str | None:
        """The listed checkpoint an infotext's `Model hash` / `Model` names: by a hash already known (exact file),
        else by name. Files are never hashed here: that would read gigabytes to fill a form."""
        wanted = (model_hash or "").strip().lower()
        if wanted:
            for entry in self.registry.checkpoints():
                known = self.manager.hashes.cached_model_hash(entry.path) if entry.kind != "diffusers" else None
                if known and known.lower() == wanted:
                    return entry.title
        if name:
            try:
                return self.registry.find_checkpoint(name).title
            except ModelNotFoundError:
                return None
        return None

    @staticmethod
    def png_info(image: Any) -> dict[str, Any]:
        """A1111's PNG Info: the infotext (PNG chunk or EXIF UserComment), other text items, parsed fields."""
        infotext = read_infotext(image) or ""
        items = {k: v for k, v in getattr(image, "info", {}).items() if isinstance(v, str) and k != "parameters"}
        fields = parse_infotext(infotext).to_generation_fields() if infotext else {}
        return {"info": infotext, "items": items, "parameters": fields}

    # ----- extras (upscaling) -------------------------------------------------------------------------------
    def upscaler_names(self) -> list[str]:
        return self.upscalers.names()

    def hires_upscaler_names(self) -> list[str]:
        return [*LATENT_MODES, *(n for n in self.upscalers.names() if n != "None")]

    def submit_extras(self, images: list[Any], request: ExtrasRequest, save: bool = True) -> Future:
        """Upscale images on the GPU executor; the future yields [(image, path or None, parameters)]."""
        if not images:
            raise ValidationError("Extras needs at least one image.")
        for name in (request.upscaler_1, request.upscaler_2):
            if name not in self.upscalers.names():
                raise ModelNotFoundError(f"No upscaler named '{name}'. Available: {', '.join(self.upscaler_names())}.")
        writer = OutputWriter.from_options(self.options, self.settings.paths.data_dir, "outdir_extras_samples")

        def job(token: CancelToken, progress: ProgressTracker) -> list[tuple[Any, Path | None, str]]:
            progress.start("extras", len(images), 1)
            results = []
            for index, image in enumerate(images):
                if token.interrupted:
                    break
                progress.update(job_no=index)
                upscaled, info = run_extras(image, request, self.upscalers)
                path = writer.save_extras(upscaled, info) if save else None
                results.append((upscaled, path, info))
            return results

        return self.executor.submit(job, label="extras")

    # ----- tables -------------------------------------------------------------------------------------------
    @staticmethod
    def samplers() -> list[dict[str, Any]]:
        return [{"name": s.name, "aliases": list(s.aliases), "options": {"scheduler": s.scheduler_class}}
                for s in SAMPLERS]

    @staticmethod
    def sampler_names() -> list[str]:
        return [s.name for s in SAMPLERS]

    @staticmethod
    def schedule_types() -> list[str]:
        return list(SCHEDULE_TYPES)

    # ----- options ------------------------------------------------------------------------------------------
    def get_options(self) -> dict[str, Any]:
        values = self.options.as_dict()
        values["sd_model_checkpoint"] = self.current_checkpoint() or values.get("sd_model_checkpoint")
        values["sd_vae"] = self.current_vae()
        return values

    def set_options(self, values: dict[str, Any]) -> None:
        """A1111's POST /options: model options switch the model (errors keep the old one), the rest persist."""
        values = dict(values)
        checkpoint = values.pop("sd_model_checkpoint", None)
        vae = values.pop("sd_vae", None)
        if values:
            self.options.update(values)
        if checkpoint:
            self.select_checkpoint(str(checkpoint))
        if vae:
            self.select_vae(str(vae))


def checkpoint_cache_limits(options: Options) -> tuple[int, int]:
    """(A1111's sd_checkpoints_limit, byte budget): the budget defaults to half of the machine's RAM."""
    import psutil

    limit = int(options.get("sd_checkpoints_limit") or 1)
    budget = options.get("sd_checkpoints_cache_bytes")
    return limit, int(budget) if budget else psutil.virtual_memory().total // 2


def build_services(settings: Settings) -> Services:
    """The one wiring point below the UI: everything the app needs, built from `settings`."""
    settings.paths.ensure()
    configure_torch_threads(settings.torch_threads)
    builtin = (DEMO_MODEL_PATH,) if settings.include_demo_model and DEMO_MODEL_PATH.is_file() else ()
    registry = ModelRegistry(settings.paths.ckpt_dirs, settings.paths.vae_dir, builtin=builtin)
    hashes = HashCache(settings.paths.cache_dir / "hashes.json")
    device = DeviceConfig.from_settings(settings.device, settings.half_precision)
    options = Options(settings.paths.config_file)
    manager = PipelineManager(registry, device, settings.paths.cache_dir, hashes,
                              limits=lambda: checkpoint_cache_limits(options))
    threads = settings.torch_threads
    executor = GpuExecutor(on_worker_start=(lambda: configure_torch_threads(threads)) if threads else None)
    styles = StyleStore(settings.paths.styles_file)
    styles.load()
    embeddings = EmbeddingLibrary(settings.paths.embeddings_dir)
    loras = LoraLibrary((settings.paths.lora_dir, settings.paths.lycoris_dir))
    upscalers = UpscalerLibrary((settings.paths.esrgan_dir, settings.paths.models_dir / "RealESRGAN"), device.device)
    return Services(settings, registry, manager, executor, options, styles, embeddings, loras, upscalers)


__all__ = ["Services", "build_services", "ModelLoadError"]
