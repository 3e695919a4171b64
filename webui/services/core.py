"""The one facade the UI and the API call. Everything that touches the device goes through the executor.

Why a facade: the UI and the API must behave identically (same validation, same queue, same outputs), and
neither may reach into the engine directly (DESIGN.md layers). Scripts (`scripts.py`) and training
(`training.py`) are parts of the same facade, kept in their own modules; `Services` inherits them.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from webui.core.errors import ModelLoadError, ModelNotFoundError, ValidationError, WebUIError
from webui.core.infotext import parse_infotext
from webui.core.infotext_params import parse_generation_parameters
from webui.core.limits import check_input_images, check_upscaled_size, upscale_problems
from webui.core.options import Options, option_spec
from webui.core.path_policy import PathPolicy
from webui.core.progress import CancelToken, ProgressSnapshot, ProgressTracker
from webui.core.prompt_parser import LORA_KINDS, ExtraNetworkCall
from webui.core.requests import GenerationRequest
from webui.core.resolve import resolve_request, system_seeds
from webui.core.results import GenerationResult
from webui.core.samplers import SAMPLERS, SCHEDULE_TYPES
from webui.core.settings import Settings
from webui.core.styles import Style, StyleStore, apply_styles
from webui.engine.generation.live_preview import LatentPreview
from webui.engine.generation.run import GenerationContext, run_generation
from webui.engine.models.hashing import HashCache
from webui.engine.models.registry import ModelRegistry
from webui.engine.models.safetensors_header import read_safetensors_header
from webui.engine.models.sidecars import (
    CompanionFinder,
    clean_sidecar_values,
    preferred_weight,
    read_sidecar,
    tag_frequency,
    training_summary,
    write_sidecar,
)
from webui.engine.networks.adapters import AdapterRequest
from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.networks.lora_library import LoraLibrary
from webui.engine.output.png import read_infotext
from webui.engine.output.writer import OutputWriter
from webui.engine.runtime.devices import DeviceConfig, configure_torch_threads, memory_stats
from webui.engine.runtime.memory import MemoryOptimizer, MemoryOptions
from webui.engine.runtime.pipeline_manager import VAE_AUTOMATIC, VAE_NONE, PipelineManager
from webui.engine.upscale.postprocess import ExtrasRequest, run_extras, work_size
from webui.engine.upscale.upscalers import BUILTIN as BUILTIN_UPSCALERS
from webui.engine.upscale.upscalers import LATENT_MODES, UpscalerLibrary
from webui.jobs.device_share import DeviceShare
from webui.jobs.executor import GpuExecutor
from webui.services.scripts import ScriptServices
from webui.services.training import TrainingServices

log = logging.getLogger(__name__)

DEMO_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo" / "demo-shapes.safetensors"

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


class Services(ScriptServices, TrainingServices):
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
        self.seed_source = system_seeds()  # where -1 seeds are drawn from (tests count the draws)
        self.path_policy = PathPolicy.from_settings(settings)
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
                "filename": self.shown_path(entry.path),
                "config": None,
            })
        return rows

    def sd_vaes(self) -> list[dict[str, Any]]:
        return [{"model_name": e.title, "filename": self.shown_path(e.path)} for e in self.registry.vaes()]

    def shown_path(self, path: Path) -> str:
        """A model file's path as the API shows it: absolute for a local server (A1111's answers), relative to
        the data folder when server folders are hidden (an exposed server must not reveal its file system)."""
        if not self.path_policy.hide_dir_config:
            return str(path)
        paths = self.settings.paths
        return self.path_policy.public_path(path, (*paths.ckpt_dirs, paths.vae_dir, paths.lora_dir,
                                                   paths.lycoris_dir, paths.esrgan_dir, paths.models_dir))

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
        self.styles.load()
        resolved = resolve_request(request, styles={style.name: style for style in self.styles.styles()},
                                   seeds=self.seed_source, styles_source=self.settings.paths.styles_file.name)
        request = resolved.request
        save = request.save_images and bool(self.options.get("samples_save"))
        folder_key = "outdir_txt2img_samples" if request.img2img is None else "outdir_img2img_samples"
        writer = OutputWriter.from_options(self.options, self.settings.paths.data_dir, folder_key)
        sink = writer.save

        adapter_requests, adapter_notes = self.resolve_loras(resolved.extra_networks)

        def job(token: CancelToken, progress: ProgressTracker) -> GenerationResult:
            share_notice = [n for n in (self.device_share.notice(),) if n]  # training on this device?
            active = self.manager.ensure(request.checkpoint, request.vae)
            context = GenerationContext(
                labels=active.labels, token=token, progress=progress, sink=sink if save else None,
                scheduler_config=active.scheduler_config, is_inpaint_model=active.loaded.is_inpaint,
                embeddings=self.embeddings.refresh(), short_hash=self._short_hash,
                adapters=(active.adapters, adapter_requests), upscalers=self.upscalers)
            with self.previews.capture(active.pipeline.unet, active.loaded.family,
                                       active.pipeline.vae.config.latent_channels):
                images, interrupted, notes = run_generation(active.pipeline, resolved, context)
            return GenerationResult(request=request, images=tuple(images), model_name=active.entry.name,
                                    model_hash=active.model_hash, vae_name=active.labels.vae_name,
                                    vae_hash=active.labels.vae_hash, inpainting_model=active.loaded.is_inpaint,
                                    interrupted=interrupted,
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

    def resolve_loras(self, calls: Sequence[ExtraNetworkCall]) -> tuple[list[AdapterRequest], list[str]]:
        """`<lora:name:te:unet>` / `<lyco:...>` calls -> files; unknown names become notes, never errors."""
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
        return [{"name": e.name, "alias": e.metadata().get("ss_output_name", e.name), "path": self.shown_path(e.path),
                 "metadata": e.metadata()} for e in self.loras.entries()]

    def embedding_list(self) -> dict[str, Any]:
        """A1111's /sdapi/v1/embeddings shape: loaded (fitting the current model) and skipped ones."""
        from webui.engine.generation.prompt_encoding import encoder_dims

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
        """A1111's PNG Info: the infotext (PNG chunk or EXIF UserComment), other text items, and `parameters`:
        the infotext as A1111's parameter dict (infotext labels, A1111's value types and defaults)."""
        infotext = read_infotext(image) or ""
        items = {k: v for k, v in getattr(image, "info", {}).items() if isinstance(v, str) and k != "parameters"}
        return {"info": infotext, "items": items, "parameters": parse_generation_parameters(infotext)}

    # ----- extras (upscaling) -------------------------------------------------------------------------------
    def upscaler_names(self) -> list[str]:
        return self.upscalers.names()

    def hires_upscaler_names(self) -> list[str]:
        return [*LATENT_MODES, *(n for n in self.upscalers.names() if n != "None")]

    def submit_extras(self, images: list[Any], request: ExtrasRequest, save: bool = True) -> Future:
        """Upscale images on the GPU executor; the future yields [(image, path or None, parameters)]."""
        if not images:
            raise ValidationError("Extras needs at least one image.")
        check_extras_request(request, [image.size for image in images])
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
        folder from the settings). Both are client paths: inside the data folder (relative to it) or a folder
        allowed with --gradio-allowed-path, and refused altogether when server folders are hidden.

        Why here and not in the UI: reading and writing folders on the server is a service, and images are opened
        one at a time inside the job so a large folder never sits in memory at once.
        """
        from PIL import Image, UnidentifiedImageError

        self.path_policy.refuse_if_hidden("Batch from directory")
        if not input_dir.strip():
            raise ValidationError("Batch from directory needs an input directory.")
        source = self.path_policy.resolve(input_dir, "Input directory")
        if not source.is_dir():
            raise ValidationError(f"Input directory '{input_dir}' does not exist.")
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in self.EXTRAS_IMAGE_SUFFIXES)
        if not files:
            raise ValidationError(f"No images ({', '.join(self.EXTRAS_IMAGE_SUFFIXES)}) in '{input_dir}'.")
        for name in (request.upscaler_1, request.upscaler_2):
            if name not in self.upscalers.names():
                raise ModelNotFoundError(f"No upscaler named '{name}'. Available: {', '.join(self.upscaler_names())}.")
        check_extras_request(request, [])
        target = self.path_policy.resolve(output_dir, "Output directory") if output_dir.strip() else \
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
                        check_extras_request(request, [image.size])  # from the header, before decoding
                        upscaled, info = run_extras(image, request, self.upscalers)
                except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValidationError) as exc:
                    log.warning("Extras: skipped %s: %s", path, exc)
                    continue
                results.append((upscaled, writer.save_extras(upscaled, info), info))
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

    def options_warning(self) -> str:
        """Why config.json could not be used at startup ("" when it could); the Settings tab shows it."""
        return self.options.load_warning

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
        rows += [{"name": path.stem, "model_name": path.stem, "model_path": self.shown_path(path), "model_url": None,
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
            self._check_client_folders(values)
            self.options.update(values)
            if {"vae_tiling", "vae_slicing"} & values.keys():
                self.reapply_memory_options()
        if checkpoint:
            self.select_checkpoint(str(checkpoint))
        if vae:
            self.select_vae(str(vae))

    def _check_client_folders(self, values: dict[str, Any]) -> None:
        """Output folders (`outdir_*`) a client changes must stay inside the data folder (or an allowed one), and
        cannot be changed at all while server folders are hidden. A value equal to the stored one passes: A1111
        clients post every option back, including folders the owner set by hand in config.json."""
        for key, value in values.items():
            if not key.startswith("outdir_") or value is None or (isinstance(value, str) and not value.strip()):
                continue  # empty: the default folder
            current = self.options.get(key)
            if isinstance(value, str) and isinstance(current, str) and value.strip() == current.strip():
                continue
            spec = option_spec(key)
            what = f"{spec.label} ({key})" if spec is not None else key
            self.path_policy.refuse_if_hidden(what)
            self.path_policy.resolve(value, what)



def check_extras_request(request: ExtrasRequest, sizes: list[tuple[int, int]]) -> None:
    """Extras settings, the images' sizes and each result's size, before anything is queued or decoded: a NaN,
    infinite or huge factor (or a thin image "scaled to" a square) would otherwise fail inside the job or ask the
    upscaler for an image no machine holds."""
    problems = upscale_problems(request.scale_by, request.resize_to, request.upscaler_2_visibility)
    if problems:
        raise ValidationError(" ".join(problems))
    check_input_images(sizes)
    for size in sizes:
        check_upscaled_size(*work_size(size, request))


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
