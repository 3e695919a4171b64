"""The one wiring point below the UI: `build_services(settings)` builds every engine object, the GPU executor,
the device arbiter, the training worker and the services, and returns them in one frozen `Services` container.

Why here and only here: each service takes what it needs in its constructor, so nothing is looked up, assigned
later or built on first use elsewhere; two apps with different settings live side by side in one process.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from webui.core.options import Options
from webui.core.path_policy import PathPolicy
from webui.core.preview_settings import preview_settings
from webui.core.resolve import system_seeds
from webui.core.settings import Settings
from webui.core.styles import StyleStore
from webui.engine.control.engine import ControlEngine
from webui.engine.control.library import ControlNetLibrary
from webui.engine.families.loading import FlowParts
from webui.engine.generation.live_preview import LatentPreview
from webui.engine.generation.preview_decoders import TaesdLibrary
from webui.engine.models.hashing import HashCache
from webui.engine.models.registry import ModelRegistry
from webui.engine.networks.cards import NetworkCatalog
from webui.engine.networks.embeddings import EmbeddingLibrary
from webui.engine.networks.lora_library import LoraLibrary
from webui.engine.runtime.devices import DeviceConfig, configure_torch_threads
from webui.engine.runtime.memory import MemoryOptimizer, MemoryOptions
from webui.engine.runtime.pipeline_manager import PipelineManager
from webui.engine.upscale.upscalers import UpscalerLibrary
from webui.extensions.registry import ExtensionRegistry
from webui.jobs.device_arbiter import DeviceShare
from webui.jobs.executor import GpuExecutor
from webui.jobs.job_store import JobStore
from webui.jobs.task_queue import TaskQueue
from webui.jobs.task_store import TaskStore
from webui.jobs.training_worker import TrainingWorker, WorkerSettings
from webui.services.control_service import ControlService
from webui.services.extension_service import ExtensionService
from webui.services.generation_service import GenerationParts, GenerationService
from webui.services.info_service import InfoService
from webui.services.model_defaults_service import ModelDefaultsService
from webui.services.model_service import ModelService
from webui.services.network_service import NetworkService
from webui.services.option_service import OptionsService
from webui.services.queue_service import QueueService
from webui.services.script_service import ScriptParts, ScriptService, ScriptUsing
from webui.services.server_restart import ServerRestart
from webui.services.shown_paths import ShownPaths
from webui.services.style_service import StyleService
from webui.services.task_service import TaskService, TaskUsing
from webui.services.training_forms import TrainingForms
from webui.services.training_service import TrainingNeighbours, TrainingService
from webui.services.upscale_service import UpscaleService

EXTENSION_SERVICES = ("models", "generation", "queue", "networks", "styles", "upscale", "scripts", "options", "info")
DEMO_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo" / "demo-shapes.safetensors"


@dataclass(frozen=True)
class Runtime:
    """The engine and job objects behind the services, for shutdown, tests and benchmarks; the UI and the API use
    the services only."""

    executor: GpuExecutor
    manager: PipelineManager
    registry: ModelRegistry
    options: Options
    styles: StyleStore
    embeddings: EmbeddingLibrary
    loras: LoraLibrary
    upscalers: UpscalerLibrary
    previews: LatentPreview
    training_worker: TrainingWorker
    device_share: DeviceShare
    path_policy: PathPolicy
    seeds: random.Random
    extensions: ExtensionRegistry  # the extensions' hooks; the generation service runs them

    def shutdown(self, terminate_training: bool = True) -> None:
        """Stop the training worker's watchers (and its children when asked) and the GPU executor."""
        self.training_worker.shutdown(terminate=terminate_training)
        self.executor.shutdown()


@dataclass(frozen=True)
class Services:
    """Everything the UI and the API call, one service per concern, plus the settings they were built from."""

    settings: Settings
    models: ModelService
    generation: GenerationService
    queue: QueueService
    networks: NetworkService
    styles: StyleService
    upscale: UpscaleService
    scripts: ScriptService
    training: TrainingService
    options: OptionsService
    info: InfoService
    runtime: Runtime
    defaults: ModelDefaultsService  # native sizes and the device note for the UI
    tasks: TaskService  # the persistent generation queue (task store + GPU executor)
    extensions: ExtensionService  # extension folders, installs, and what the active ones registered
    control: ControlService  # ControlNet model/module lists and detection (units run inside generation jobs)
    restart: ServerRestart  # "Apply and restart UI": a clean stop and a new process (when app.main serves)


def checkpoint_cache_limits(options: Options) -> tuple[int, int]:
    """(A1111's sd_checkpoints_limit, byte budget): the budget defaults to half of the machine's RAM."""
    limit = int(options.get("sd_checkpoints_limit") or 1)
    budget = options.get("sd_checkpoints_cache_bytes")
    return limit, int(budget) if budget else psutil.virtual_memory().total // 2


def option_flag(options: Options, key: str) -> bool:
    """A boolean option without a spec in `OPTION_SPECS` (vae_tiling/vae_slicing), stored as given."""
    value = options.get(key)
    return value is True or value == 1 or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def build_services(settings: Settings, *, seeds: random.Random | None = None) -> Services:
    """Everything the app needs, built from `settings`. `seeds` is where -1 seeds are drawn from: the OS's
    randomness unless a test passes a source that counts its draws.

    The device arbiter asks the training service which jobs run, and the training worker tells it when a job
    changes; the service is built last (it needs the executor, which needs the arbiter), so these two callbacks
    look it up when they are called. Neither is called before this function returns: no executor job is queued
    and the worker starts on the first use of training."""
    settings.paths.ensure()
    configure_torch_threads(settings.torch_threads)
    options = Options(settings.paths.config_file)
    manager = _pipeline_manager(settings, options)
    worker = _training_worker(settings, on_change=lambda job_id: services.training.job_changed(job_id))
    share = DeviceShare(str(manager.device.device), lambda: str(options.get("training_device_policy")),
                        lambda: services.training.running_jobs(), manager.park)
    threads = settings.torch_threads
    executor = GpuExecutor(on_worker_start=(lambda: configure_torch_threads(threads)) if threads else None,
                           around=share.around)
    styles = StyleStore(settings.paths.styles_file)
    styles.load()
    upscalers = UpscalerLibrary(
        (settings.paths.esrgan_dir, settings.paths.models_dir / "RealESRGAN"), manager.device.device,
        tiling=lambda: (int(options.get("ESRGAN_tile")), int(options.get("ESRGAN_tile_overlap"))))
    runtime = Runtime(executor=executor, manager=manager, registry=manager.registry, options=options, styles=styles,
                      embeddings=EmbeddingLibrary(settings.paths.embeddings_dir),
                      loras=LoraLibrary((settings.paths.lora_dir, settings.paths.lycoris_dir)), upscalers=upscalers,
                      previews=_live_previews(settings, options), training_worker=worker, device_share=share,
                      path_policy=PathPolicy.from_settings(settings), seeds=seeds or system_seeds(),
                      extensions=ExtensionRegistry())
    services = _services(settings, runtime)  # named: the two callbacks above read it
    services.extensions.load({name: getattr(services, name) for name in EXTENSION_SERVICES})
    services.tasks.start()  # tasks left by the previous run: a crashed one fails (or is retried), queued ones run
    return services


def _live_previews(settings: Settings, options: Options) -> LatentPreview:
    """Live previews with A1111's settings (read at each job's start) and TAESD files from models/VAE-approx."""
    return LatentPreview(lambda: preview_settings(options.get),
                         TaesdLibrary(settings.paths.models_dir / "VAE-approx"))


def _pipeline_manager(settings: Settings, options: Options) -> PipelineManager:
    """The model registry, the hash cache, the device and its memory policy, and the manager holding them."""
    builtin = (DEMO_MODEL_PATH,) if settings.include_demo_model and DEMO_MODEL_PATH.is_file() else ()
    registry = ModelRegistry(settings.paths.ckpt_dirs, settings.paths.vae_dir, builtin=builtin)
    hashes = HashCache(settings.paths.cache_dir / "hashes.json")
    device = DeviceConfig.from_settings(settings.device, settings.half_precision, settings.cpu_precision)
    memory = MemoryOptimizer(MemoryOptions.from_settings(settings, device), vae_options=lambda: (
        option_flag(options, "vae_tiling"), option_flag(options, "vae_slicing")),
        compile_cache=settings.paths.cache_dir / "inductor")
    return PipelineManager(registry, device, settings.paths.cache_dir, hashes,
                           limits=lambda: checkpoint_cache_limits(options), memory=memory,
                           flow_parts=lambda: FlowParts(settings.paths.models_dir / "text_encoder",
                                                        settings.paths.vae_dir,
                                                        tuple(options.get("forge_additional_modules") or ())))


def _training_worker(settings: Settings, on_change: Callable[[str], None]) -> TrainingWorker:
    """The training worker (job queue, cancel, resume, history in <data>/training/jobs.sqlite), not started."""
    data_dir = settings.paths.data_dir
    threads = settings.torch_threads or max(1, (os.cpu_count() or 2) // 2)
    return TrainingWorker(JobStore(data_dir / "training" / "jobs.sqlite"),
                          WorkerSettings.for_data_dir(data_dir, threads=threads), on_change=on_change)


def _services(settings: Settings, runtime: Runtime) -> Services:
    """The services over the runtime, each built from what it needs (lower ones first)."""
    shown = ShownPaths(runtime.path_policy, settings.paths)
    manager, executor, policy = runtime.manager, runtime.executor, runtime.path_policy
    models = ModelService(settings, runtime.registry, manager, executor, runtime.options, shown)
    styles = StyleService(runtime.styles)
    catalog = NetworkCatalog(runtime.registry, settings.paths.ckpt_dirs, runtime.loras, runtime.embeddings)
    networks = NetworkService(catalog, runtime.loras, runtime.embeddings, manager, models, shown)
    upscale = UpscaleService(settings, runtime.options, runtime.upscalers, executor, policy, shown)
    control = _control_engine(settings, runtime)
    control_service = ControlService(control, manager, executor)
    generation = GenerationService(
        GenerationParts(settings, runtime.options, manager, runtime.embeddings, runtime.upscalers, runtime.previews,
                        runtime.device_share, runtime.seeds, control), executor, styles, networks,
        runtime.extensions)
    scripts = ScriptService(ScriptParts(settings, runtime.options, runtime.registry, manager, runtime.upscalers,
                                        runtime.seeds, extensions=runtime.extensions),
                            executor, ScriptUsing(generation, models, styles, upscale, control_service))
    training = TrainingService(
        TrainingForms(settings, policy, runtime.registry), runtime.training_worker, policy, settings.paths,
        TrainingNeighbours(runtime.loras, runtime.registry, runtime.device_share, executor, generation, scripts))
    restart = ServerRestart(executor, training.running_jobs)
    return Services(settings=settings, models=models, generation=generation, queue=QueueService(executor,
                    runtime.previews), networks=networks, styles=styles, upscale=upscale, scripts=scripts,
                    training=training, options=OptionsService(runtime.options, models, manager, executor, policy),
                    info=InfoService(runtime.registry, manager.hashes), runtime=runtime,
                    extensions=ExtensionService(settings, runtime.options, runtime.extensions, restart),
                    defaults=ModelDefaultsService(runtime.registry, manager, runtime.options),
                    tasks=_task_service(settings, runtime, TaskUsing(generation, scripts, upscale, models,
                                                                     runtime.device_share,
                                                                     runtime.training_worker.jobs)),
                    control=control_service, restart=restart)


def _control_engine(settings: Settings, runtime: Runtime) -> ControlEngine:
    """ControlNet models from <models>/ControlNet (cached within the checkpoint cache's byte budget), annotator
    weights from its `annotators` folder, placed on the device by the same memory flags as the pipeline."""
    folder = settings.paths.models_dir / "ControlNet"
    library = ControlNetLibrary(folder, budget=lambda: checkpoint_cache_limits(runtime.options)[1])
    return ControlEngine(library, folder / "annotators", runtime.manager.memory)


def _task_service(settings: Settings, runtime: Runtime, using: TaskUsing) -> TaskService:
    """Generation tasks in the training job store's database (<data>/training/jobs.sqlite), their files in
    <data>/queue, run by the GPU executor."""
    data_dir, options = settings.paths.data_dir, runtime.options
    store = TaskStore(data_dir / "training" / "jobs.sqlite", data_dir / "queue")
    return TaskService(TaskQueue(store, runtime.executor,
                                 retry_once=lambda: option_flag(options, "queue_retry_interrupted")), using)
