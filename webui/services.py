"""The one facade the UI and the API call. Everything that touches the device goes through the executor.

Why a facade: the UI and the API must behave identically (same validation, same queue, same outputs), and
neither may reach into the engine directly (DESIGN.md layers).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from webui.core.device_sharing import RunningTraining
from webui.core.errors import ModelLoadError, ModelNotFoundError, ValidationError, WebUIError
from webui.core.infotext import parse_infotext
from webui.core.options import Options
from webui.core.progress import CancelToken, ProgressSnapshot, ProgressTracker
from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.prompt_matrix import PromptMatrixOptions, PromptMatrixPlan, expand_prompt_matrix
from webui.core.prompt_parser import LORA_KINDS, extract_extra_networks
from webui.core.requests import GenerationRequest
from webui.core.results import GeneratedImage, GenerationResult
from webui.core.samplers import SAMPLERS, SCHEDULE_TYPES, get_sampler, resolve_schedule, split_legacy_name
from webui.core.seeds import resolve_seed
from webui.core.settings import Settings
from webui.core.styles import Style, StyleStore, apply_styles
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
from webui.engine.adapters import AdapterRequest
from webui.engine.devices import DeviceConfig, configure_torch_threads, memory_stats
from webui.engine.embeddings import EmbeddingLibrary
from webui.engine.extras import ExtrasRequest, run_extras
from webui.engine.generation import GenerationContext, run_generation
from webui.engine.grids import annotated_grid, save_grid, xyz_grids
from webui.engine.hashing import HashCache
from webui.engine.images import read_infotext
from webui.engine.live_preview import LatentPreview
from webui.engine.lora_library import LoraLibrary
from webui.engine.memory import MemoryOptimizer, MemoryOptions
from webui.engine.outputs import OutputWriter
from webui.engine.pipeline_manager import VAE_AUTOMATIC, VAE_NONE, PipelineManager
from webui.engine.registry import ModelRegistry
from webui.engine.safetensors_header import read_safetensors_header
from webui.engine.sidecars import (
    CompanionFinder,
    clean_sidecar_values,
    preferred_weight,
    read_sidecar,
    tag_frequency,
    training_summary,
    write_sidecar,
)
from webui.engine.upscalers import BUILTIN as BUILTIN_UPSCALERS
from webui.engine.upscalers import LATENT_MODES, UpscalerLibrary
from webui.jobs.device_share import DeviceShare
from webui.jobs.executor import GpuExecutor

log = logging.getLogger(__name__)

DEMO_MODEL_PATH = Path(__file__).resolve().parent / "assets" / "demo" / "demo-shapes.safetensors"

# Infotext keys -> the always-present generation fields they fill (see `Services.infotext_fields`).
_CORE_INFOTEXT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Steps", ("steps",)), ("Sampler", ("sampler_name",)), ("CFG scale", ("cfg_scale",)), ("Seed", ("seed",)),
    ("Size", ("width", "height")),
)

# Extra Networks panel (issue 4): the libraries its tabs list, and the sort orders it offers.
EXTRA_NETWORK_KINDS: tuple[str, ...] = ("checkpoints", "textual_inversion", "lora")
EXTRA_NETWORK_SORTS: tuple[str, ...] = ("name", "date", "size")
_KIND_LABELS = {"checkpoints": "checkpoint", "textual_inversion": "embedding", "lora": "LoRA"}


@dataclass(frozen=True)
class _NetworkFile:
    """One file of an Extra Networks tab. `key` is what a click acts on (checkpoint title, embedding or LoRA name);
    `folder` is its folder label, e.g. "Lora/styles", which the folder filter matches by prefix."""

    key: str
    name: str
    path: Path
    folder: str
    size: int
    mtime_ns: int


@functools.lru_cache(maxsize=4096)
def _folder_label(roots: tuple[Path, ...], folder: Path) -> str:
    """The label `<root folder name>/<sub-folders>` of a folder under one of `roots`, else the folder's name.
    Cached: thousands of files share a few folders, and path arithmetic is most of a listing's cost."""
    for root in roots:
        if folder.is_relative_to(root):
            relative = folder.relative_to(root).as_posix()
            return root.name if relative == "." else f"{root.name}/{relative}"
    return folder.name


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed since the library scanned it
        return 0


class Services:
    def __init__(self, settings: Settings, registry: ModelRegistry, manager: PipelineManager,
                 executor: GpuExecutor, options: Options, styles: StyleStore, embeddings: EmbeddingLibrary,
                 loras: LoraLibrary, upscalers: UpscalerLibrary, previews: LatentPreview | None = None):
        self.settings = settings
        self.registry = registry
        self.manager = manager
        self.executor = executor
        self.options = options
        self.styles = styles
        self.embeddings = embeddings
        self.loras = loras
        self.upscalers = upscalers
        self.previews = previews or LatentPreview()  # issue 7: live preview for /sdapi/v1/progress
        self.startup_message = ""
        # issue 5: every executor job runs inside the generation/training device-sharing policy
        self.device_share = DeviceShare(str(manager.device.device),
                                        lambda: str(options.get("training_device_policy")),
                                        self._running_training, manager.park)
        executor.around = self.device_share.around

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
            share_notice = [n for n in (self.device_share.notice(),) if n]  # training on this device?
            active = self.manager.ensure(request.checkpoint, request.vae)
            first_seed = resolve_seed(request.seed)
            first_subseed = resolve_seed(request.subseed)
            resolved = dataclasses.replace(request, seed=first_seed, subseed=first_subseed)
            context = GenerationContext(
                labels=active.labels, token=token, progress=progress, sink=sink if save else None,
                scheduler_config=active.scheduler_config, is_inpaint_model=active.loaded.is_inpaint,
                embeddings=self.embeddings.refresh(), short_hash=self._short_hash,
                adapters=(active.adapters, adapter_requests), upscalers=self.upscalers)
            with self.previews.capture(active.pipeline.unet, active.loaded.family,
                                       active.pipeline.vae.config.latent_channels):
                images, interrupted, notes = run_generation(active.pipeline, resolved, context,
                                                            first_seed=first_seed, first_subseed=first_subseed)
            return GenerationResult(request=resolved, images=tuple(images), model_name=active.entry.name,
                                    model_hash=active.model_hash, interrupted=interrupted,
                                    warnings=(*adapter_notes, *notes, *share_notice),
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

    # ===== Extra Networks panel (issue 4): cards, sidecars, previews ================================= BEGIN =====
    def extra_network_cards(self, kind: str, search: str = "", sort: str = "name", descending: bool = False,
                            folder: str = "", refresh: bool = False) -> list[dict[str, Any]]:
        """The cards of one Extra Networks tab, filtered and sorted.

        Why here: the UI (and any API route) must list the same way, and listing only stats files: previews and
        sidecars come from one directory listing per folder, so thousands of files list in a fraction of a second.
        `search` matches every word against name, folder, description and activation text; `folder` matches a
        folder label and its sub-folders; `refresh` rescans the disk first.
        """
        if sort not in EXTRA_NETWORK_SORTS:
            raise ValidationError(f"Unknown sort '{sort}'. Use one of: {', '.join(EXTRA_NETWORK_SORTS)}.")
        finder = CompanionFinder()
        terms = search.casefold().split()
        active = self.current_checkpoint() if kind == "checkpoints" else None
        cards = []
        for item in self._network_files(kind, refresh):
            if folder and item.folder != folder and not item.folder.startswith(folder + "/"):
                continue
            sidecar = finder.sidecar(item.path)
            description = str(sidecar.get("description") or "")
            haystack = f"{item.key} {item.folder} {description} {sidecar.get('activation text') or ''}".casefold()
            if not all(term in haystack for term in terms):
                continue
            preview = finder.preview(item.path)
            cards.append({"key": item.key, "name": item.name, "folder": item.folder, "path": str(item.path),
                          "size": item.size, "mtime_ns": item.mtime_ns, "description": description,
                          "preview": str(preview) if preview else None, "active": item.key == active})
        orders = {"name": lambda c: (c["name"].casefold(), c["key"]),
                  "date": lambda c: (c["mtime_ns"], c["name"].casefold()),
                  "size": lambda c: (c["size"], c["name"].casefold())}
        return sorted(cards, key=orders[sort], reverse=descending)

    def extra_network_folders(self, kind: str) -> list[str]:
        """Every folder label of a tab with its parents ("Lora", "Lora/styles", ...), for the folder filter."""
        labels: set[str] = set()
        for item in self._network_files(kind, refresh=False):
            parts = item.folder.split("/")
            labels.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        return sorted(labels, key=str.casefold)

    def extra_network_sidecar(self, kind: str, key: str) -> dict[str, Any]:
        return read_sidecar(self._network_file(kind, key).path)

    def lora_prompt_parts(self, name: str) -> dict[str, str]:
        """What clicking a LoRA card adds: `<lora:name:W>` (W = the sidecar's preferred weight, else 1), the
        activation text for the prompt and the sidecar's negative text."""
        item = self._network_file("lora", name)
        sidecar = read_sidecar(item.path)
        return {"tag": f"<lora:{item.key}:{preferred_weight(sidecar):g}>",
                "activation": str(sidecar.get("activation text") or "").strip(),
                "negative": str(sidecar.get("negative text") or "").strip()}

    def extra_network_details(self, kind: str, key: str) -> dict[str, Any]:
        """A card's metadata view: the file, its sidecar, the kohya `ss_*` training summary and tag frequency
        (from the safetensors header only), and all raw metadata."""
        item = self._network_file(kind, key)
        info: list[tuple[str, str]] = [("File", str(item.path)), ("Size", f"{item.size:,} bytes"),
                                       ("Modified", datetime.fromtimestamp(item.mtime_ns / 1e9).isoformat(" ",
                                                                                                         "seconds"))]
        metadata: dict[str, str] = {}
        if item.path.suffix == ".safetensors":
            try:
                metadata, _ = read_safetensors_header(item.path)
            except ModelLoadError as exc:
                info.append(("Metadata", str(exc)))
        if kind == "textual_inversion" and (emb := self.embeddings.refresh().get(key)) is not None:
            info.append(("Vectors", f"{emb.token_count} (width {'/'.join(str(d) for d in emb.dims())})"))
        return {"key": item.key, "name": item.name, "kind": kind, "folder": item.folder, "info": info,
                "sidecar": read_sidecar(item.path), "training": training_summary(metadata),
                "tags": tag_frequency(metadata), "metadata": metadata}

    def save_extra_network_sidecar(self, kind: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
        """Write the editor's fields into `name.json` (atomically; keys other tools wrote are kept)."""
        return write_sidecar(self._network_file(kind, key).path, clean_sidecar_values(values))

    def _network_file(self, kind: str, key: str) -> _NetworkFile:
        for item in self._network_files(kind, refresh=False):
            if item.key == key:
                return item
        raise ModelNotFoundError(f"No {_KIND_LABELS[kind]} named '{key}'. Press refresh in the Extra Networks "
                                 f"panel to rescan the folders.")

    def _network_files(self, kind: str, refresh: bool) -> list[_NetworkFile]:
        """The files of one tab (a rescan first when `refresh`; embeddings rescan on every use anyway)."""
        if kind == "lora":
            if refresh:
                self.loras.refresh()
            return [_NetworkFile(e.name, e.name, e.path, _folder_label(self.loras.folders, e.path.parent), e.size,
                                 e.mtime_ns) for e in self.loras.entries()]
        if kind == "textual_inversion":
            root = (self.embeddings.folder,)
            return [_NetworkFile(name, name, emb.path, _folder_label(root, emb.path.parent), _file_size(emb.path),
                                 emb.mtime_ns) for name, emb in self.embeddings.refresh().items()]
        if kind == "checkpoints":
            if refresh:
                self.registry.refresh()
            roots = self.settings.paths.ckpt_dirs
            return [_NetworkFile(e.title, e.name, e.path, _folder_label(roots, e.path.parent), e.size, e.mtime_ns)
                    for e in self.registry.checkpoints()]
        raise ValidationError(f"Unknown extra network kind '{kind}'. Use one of: {', '.join(EXTRA_NETWORK_KINDS)}.")
    # ===== Extra Networks panel (issue 4) ============================================================ END =====

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

    # ----- extras "Batch from directory" (added for the img2img/extras UI, issue 8) -----------------------------
    EXTRAS_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

    def submit_extras_folder(self, input_dir: str, output_dir: str, request: ExtrasRequest) -> Future:
        """A1111's "Batch from directory": upscale every image in `input_dir` into `output_dir` (blank: the extras
        folder from the settings). Relative paths are inside the data dir, like the output-folder settings.

        Why here and not in the UI: reading and writing folders on the server is a service, and images are opened
        one at a time inside the job so a large folder never sits in memory at once.
        """
        from PIL import Image, UnidentifiedImageError

        source = self._data_path(input_dir)
        if not input_dir.strip() or not source.is_dir():
            raise ValidationError(f"Input directory '{input_dir}' does not exist.")
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in self.EXTRAS_IMAGE_SUFFIXES)
        if not files:
            raise ValidationError(f"No images ({', '.join(self.EXTRAS_IMAGE_SUFFIXES)}) in '{input_dir}'.")
        for name in (request.upscaler_1, request.upscaler_2):
            if name not in self.upscalers.names():
                raise ModelNotFoundError(f"No upscaler named '{name}'. Available: {', '.join(self.upscaler_names())}.")
        target = self._data_path(output_dir) if output_dir.strip() else \
            self.options.output_dir("outdir_extras_samples", self.settings.paths.data_dir)
        writer = OutputWriter(target, str(self.options.get("samples_format") or "png"))

        def job(token: CancelToken, progress: ProgressTracker) -> list[tuple[Any, Path | None, str]]:
            progress.start("extras", len(files), 1)
            results = []
            for index, path in enumerate(files):
                if token.interrupted:
                    break
                progress.update(job_no=index)
                try:
                    with Image.open(path) as image:
                        upscaled, info = run_extras(image, request, self.upscalers)
                except (OSError, UnidentifiedImageError) as exc:
                    log.warning("Extras: skipped %s: %s", path, exc)
                    continue
                results.append((upscaled, writer.save_extras(upscaled, info), info))
            return results

        return self.executor.submit(job, label="extras")

    def _data_path(self, value: str) -> Path:
        folder = Path(value.strip()).expanduser()
        return folder if folder.is_absolute() else self.settings.paths.data_dir / folder

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

    # ===== HTTP API helpers (issue 7) ============================================================== BEGIN =====
    def current_preview(self) -> Any | None:
        """The running job's live preview (a small PIL image of its current latents); None when idle."""
        return self.previews.image() if self.executor.busy else None

    def memory(self) -> dict[str, Any]:
        """RAM and GPU memory in A1111's /sdapi/v1/memory shape."""
        return memory_stats(self.manager.device.device)

    def reapply_memory_options(self) -> None:
        """Apply changed VAE tiling/slicing options to the loaded model (queued behind running jobs)."""
        def job(token: CancelToken, progress: ProgressTracker) -> None:
            active = self.manager.active
            if active is not None:
                self.manager.memory.apply(active.pipeline, active.loaded.family)

        self.executor.run(job, label="memory-options")

    def upscaler_rows(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/upscalers: the built-ins (None, Lanczos, Nearest), then model files in models/ESRGAN."""
        rows: list[dict[str, Any]] = [{"name": name, "model_name": None, "model_path": None, "model_url": None,
                                       "scale": 4} for name in BUILTIN_UPSCALERS]
        rows += [{"name": path.stem, "model_name": path.stem, "model_path": str(path), "model_url": None,
                  "scale": None} for path in self.upscalers.model_files()]
        return rows

    @staticmethod
    def latent_upscale_modes() -> list[str]:
        return list(LATENT_MODES)
    # ===== HTTP API helpers (issue 7) ================================================================ END =====

    def set_options(self, values: dict[str, Any]) -> None:
        """A1111's POST /options: model options switch the model (errors keep the old one), the rest persist."""
        values = dict(values)
        checkpoint = values.pop("sd_model_checkpoint", None)
        vae = values.pop("sd_vae", None)
        if values:
            self.options.update(values)
            if {"vae_tiling", "vae_slicing"} & values.keys():
                self.reapply_memory_options()
        if checkpoint:
            self.select_checkpoint(str(checkpoint))
        if vae:
            self.select_vae(str(vae))


    # ===== scripts: X/Y/Z plot and Prompt matrix (issue 9) ==========================================================
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
        plan = expand_xyz(base, axes, options)
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
        plan = expand_prompt_matrix(base, options)
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
        from webui.engine.tiled_upscale import run_tiled_upscale

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
            seeded = dataclasses.replace(request, seed=resolve_seed(request.seed),
                                         subseed=resolve_seed(request.subseed))
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


    # ===== training (issue 5) ========================================================================= BEGIN =====
    # LoRA / LyCORIS training jobs run in child processes owned by a `TrainingWorker` (webui/jobs/training_worker);
    # forms and presets travel as the preset JSON dict of `webui.training.config`. The worker is made on first use
    # (that also marks jobs left running by a dead app as interrupted); `start_training_worker` does it eagerly.
    @functools.cached_property
    def training(self):
        """The background training worker (job queue, cancel, resume, history in <data>/training/jobs.sqlite)."""
        import os

        from webui.jobs.job_store import JobStore
        from webui.jobs.training_worker import TrainingWorker, WorkerSettings

        data_dir = self.settings.paths.data_dir
        threads = self.settings.torch_threads or max(1, (os.cpu_count() or 2) // 2)
        worker = TrainingWorker(JobStore(data_dir / "training" / "jobs.sqlite"),
                                WorkerSettings.for_data_dir(data_dir, threads=threads),
                                on_change=self._training_changed)
        worker.start()
        return worker

    def start_training_worker(self) -> None:
        """Create the worker now (recovers interrupted jobs, starts queued ones)."""
        _ = self.training

    def _training_changed(self, job_id: str) -> None:
        """A finished job's LoRA appears in Extra Networks at once; a job that starts on the generation device gets
        it to itself per the sharing policy (Settings > Training)."""
        record = self.training.get(job_id)
        if record is not None and record.status == "done":
            self.loras.refresh()
        if record is not None and record.status == "running":
            self.device_share.training_changed(self.executor.submit)

    def _running_training(self) -> list[RunningTraining]:
        """Jobs running now, for the device-sharing policy; no worker is started just to ask."""
        if "training" not in self.__dict__:
            return []
        running = []
        for record in self.training.jobs():
            if record.status != "running":
                continue
            config = record.config_data
            running.append(RunningTraining(record.id, record.name, str(config.get("device") or "cpu"),
                                           record.step, record.total_steps, int(config.get("num_processes") or 1)))
        return running

    def training_defaults(self) -> dict[str, Any]:
        """The Train tab's initial form: every option with its default (preset JSON)."""
        from webui.training.config import TrainingConfig, config_to_json

        return config_to_json(TrainingConfig(device=self.settings.device))

    @staticmethod
    def training_choices() -> dict[str, list[str]]:
        """Dropdown values of the Train tab."""
        from webui.training import config as tc

        return {"network_type": list(tc.NETWORK_TYPES), "lycoris_algo": list(tc.LYCORIS_ALGOS),
                "optimizer": list(tc.OPTIMIZERS), "lr_scheduler": list(tc.SCHEDULERS),
                "mixed_precision": list(tc.MIXED_PRECISION), "model_family": list(tc.FAMILIES),
                "prediction_type": list(tc.PREDICTION_TYPES)}

    def training_config(self, values: dict[str, Any]):
        """Form/preset values -> a validated `TrainingConfig`: a checkpoint title becomes its file, the output goes
        to models/Lora (LoRA) or models/LyCORIS unless the form names a folder, the device defaults to the app's."""
        from webui.training.config import config_from_json

        config, _ = config_from_json(values)
        base = config.base_model
        if base and not Path(base).exists():
            base = str(self.registry.find_checkpoint(base).path)
        paths = self.settings.paths
        output_dir = config.output_dir or str(paths.lycoris_dir if config.is_lycoris else paths.lora_dir)
        device = values.get("device") or self.settings.device
        return dataclasses.replace(config, base_model=base, output_dir=output_dir, device=device).validate()

    def submit_training(self, values: dict[str, Any]) -> dict[str, Any]:
        """Queue a training job; returns its job view (see `training_job`)."""
        return self._training_view(self.training.submit(self.training_config(values)))

    def cancel_training(self, job_id: str) -> dict[str, Any]:
        """Cooperative cancel (resume state is saved), then SIGTERM/SIGKILL to the job's process group."""
        return self._training_view(self.training.cancel(job_id))

    def resume_training(self, job_id: str) -> dict[str, Any]:
        """Queue a cancelled/failed/interrupted job again; it continues from its last saved state."""
        return self._training_view(self.training.resume(job_id))

    def training_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Job history, newest first (survives app restarts)."""
        return [self._training_view(record) for record in self.training.jobs(limit)]

    def training_job(self, job_id: str) -> dict[str, Any]:
        record = self.training.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        return self._training_view(record)

    def training_events(self, job_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Progress events (JSON dicts) from byte `offset` of the job's event file, and the next offset."""
        return self.training.events(job_id, offset)

    def training_losses(self, job_id: str) -> list[tuple[int, float]]:
        """(step, loss) for the loss plot."""
        return self.training.losses(job_id)

    def training_log(self, job_id: str) -> str:
        """The end of the job's console log (stdout/stderr of its process)."""
        return self.training.log_tail(job_id)

    def training_dataset_preview(self, values: dict[str, Any]) -> dict[str, Any]:
        """Images per folder, repeats, steps per epoch and in total, caption samples, buckets, notes."""
        from webui.training.config import config_from_json
        from webui.training.dataset import preview

        config, _ = config_from_json({**values, "base_model": values.get("base_model") or "-"})
        return preview(config)

    def import_training_config(self, text: str) -> dict[str, Any]:
        """A preset or SimpleTuner config.json (its text, or a path to it) -> {"config": form values, "ignored":
        unknown keys, "notes": what is not applied here}."""
        import json

        from webui.training.config import config_to_json
        from webui.training.config_files import load_config_data, load_config_file

        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                loaded = load_config_data(json.loads(stripped), Path.cwd(), self.settings.device)
            except json.JSONDecodeError as err:
                raise ValidationError(f"The training config is not valid JSON: {err}") from err
        else:
            loaded = load_config_file(Path(stripped), self.settings.device)
        return {"config": config_to_json(loaded.config), "ignored": list(loaded.ignored),
                "notes": list(loaded.notes), "format": loaded.source_format}

    def training_preset_json(self, values: dict[str, Any]) -> str:
        """The whole form as a preset JSON text (for "save preset")."""
        import json

        from webui.training.config import config_from_json, config_to_json

        return json.dumps(config_to_json(config_from_json(values)[0]), indent=2)

    def compare_training_epochs(self, job_id: str, prompt: str = "", weight: float = 1.0) -> Future:
        """"Compare epochs": an X/Y/Z plot (Prompt S/R over `<lora:name-00000N:w>`) of the job's saved files on its
        base model, with the job's first sample prompt (its size, seed, steps, CFG) unless `prompt` is given. The
        future yields the X/Y/Z `ScriptResult` (grid saved like any X/Y/Z grid)."""
        from webui.core.epoch_compare import plan_compare, saved_files
        from webui.training.samples import SamplePrompt, parse_prompt_text

        record = self.training.get(job_id)
        if record is None:
            raise ValidationError(f"No training job with id '{job_id}'.")
        events = self.training.events(job_id)[0]
        candidates = [Path(e["path"]) for e in events if e.get("type") == "saved"] + \
            ([Path(record.final_file)] if record.final_file else [])
        files = saved_files(events, record.final_file, [p for p in candidates if p.is_file()])
        self.loras.refresh()
        outside = [f.path.name for f in files if (entry := self.loras.find(f.name)) is None or entry.path != f.path]
        if outside:
            raise ValidationError(f"{', '.join(outside)} are not in models/Lora or models/LyCORIS (or another file "
                                  f"there has the same name), so a prompt cannot load them; move them there to "
                                  f"compare.")
        config = record.config_data
        samples = parse_prompt_text(str(config.get("sample_prompt_text") or ""))
        sample = samples[0] if samples else SamplePrompt(prompt=str(config.get("output_name") or ""),
                                                         seed=int(config.get("seed") or 0))
        plan = plan_compare(files, prompt or sample.prompt, weight)
        size = int(config.get("resolution") or 512)
        base = self.registry.find_checkpoint(str(config["base_model"]))
        request = dataclasses.replace(
            self.default_request(), prompt=plan.prompt, negative_prompt=sample.negative,
            width=sample.width or size, height=sample.height or size, seed=sample.seed, steps=sample.steps,
            cfg_scale=sample.cfg_scale, checkpoint=base.title, save_images=False)
        return self.submit_xyz_plot(request, [plan.x_axis])

    def _training_view(self, record) -> dict[str, Any]:
        view = record.as_dict()
        view["config"] = record.config_data
        view["command_text"] = self.training.command_text(record)
        return view
    # ===== training (issue 5) =========================================================================== END =====

# ===== scripts helpers (issue 9) ==================================================================================


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


def checkpoint_cache_limits(options: Options) -> tuple[int, int]:
    """(A1111's sd_checkpoints_limit, byte budget): the budget defaults to half of the machine's RAM."""
    import psutil

    limit = int(options.get("sd_checkpoints_limit") or 1)
    budget = options.get("sd_checkpoints_cache_bytes")
    return limit, int(budget) if budget else psutil.virtual_memory().total // 2


def option_flag(options: Options, key: str) -> bool:
    """A boolean option without a spec in `OPTION_SPECS` yet (issue 7's vae_tiling/vae_slicing), stored as given."""
    value = options.get(key)
    return value is True or value == 1 or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def build_services(settings: Settings) -> Services:
    """The one wiring point below the UI: everything the app needs, built from `settings`."""
    settings.paths.ensure()
    configure_torch_threads(settings.torch_threads)
    builtin = (DEMO_MODEL_PATH,) if settings.include_demo_model and DEMO_MODEL_PATH.is_file() else ()
    registry = ModelRegistry(settings.paths.ckpt_dirs, settings.paths.vae_dir, builtin=builtin)
    hashes = HashCache(settings.paths.cache_dir / "hashes.json")
    device = DeviceConfig.from_settings(settings.device, settings.half_precision)
    options = Options(settings.paths.config_file)
    memory = MemoryOptimizer(MemoryOptions.from_settings(settings, device), vae_options=lambda: (
        option_flag(options, "vae_tiling"), option_flag(options, "vae_slicing")))
    manager = PipelineManager(registry, device, settings.paths.cache_dir, hashes,
                              limits=lambda: checkpoint_cache_limits(options), memory=memory)
    threads = settings.torch_threads
    executor = GpuExecutor(on_worker_start=(lambda: configure_torch_threads(threads)) if threads else None)
    styles = StyleStore(settings.paths.styles_file)
    styles.load()
    embeddings = EmbeddingLibrary(settings.paths.embeddings_dir)
    loras = LoraLibrary((settings.paths.lora_dir, settings.paths.lycoris_dir))
    upscalers = UpscalerLibrary(
        (settings.paths.esrgan_dir, settings.paths.models_dir / "RealESRGAN"), device.device,
        tiling=lambda: (int(options.get("ESRGAN_tile")), int(options.get("ESRGAN_tile_overlap"))))
    return Services(settings, registry, manager, executor, options, styles, embeddings, loras, upscalers)


__all__ = ["Services", "build_services", "ModelLoadError", "ExtrasRequest"]
