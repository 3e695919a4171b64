"""The services a generation tab (txt2img, img2img) calls, handed out by `app_ui.build_ui`.

Why a bundle of its own: these tabs really use almost every service (prompt bar, samplers, scripts, progress,
paste), but not training nor the engine objects behind the services; naming exactly what they get keeps the tab
builders from reaching for anything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webui.services.control_service import ControlService
from webui.services.extension_service import ExtensionService
from webui.services.generation_service import GenerationService
from webui.services.info_service import InfoService
from webui.services.model_defaults_service import ModelDefaultsService
from webui.services.model_service import ModelService
from webui.services.network_service import NetworkService
from webui.services.option_service import OptionsService
from webui.services.queue_service import QueueService
from webui.services.script_service import ScriptService
from webui.services.style_service import StyleService
from webui.services.task_service import TaskService
from webui.services.upscale_service import UpscaleService


@dataclass(frozen=True)
class GenerationTabServices:
    """What txt2img and img2img call; `outputs_dir` is where saved images may be served from (`shown_image`)."""

    models: ModelService
    generation: GenerationService
    queue: QueueService
    networks: NetworkService
    styles: StyleService
    upscale: UpscaleService
    scripts: ScriptService
    options: OptionsService
    info: InfoService
    outputs_dir: Path
    tasks: TaskService  # Generate queues a task and waits for it (the one queue)
    control: ControlService | None = None  # the ControlNet section's model list and preview (None: no section)
    extensions: ExtensionService | None = None  # the extensions' always-visible controls (None: none)
    defaults: ModelDefaultsService | None = None  # the model's family: sampler list and family-only sliders
