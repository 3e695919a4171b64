"""The Train tab's form values (the preset JSON dict of `webui.training.config`) <-> a checked `TrainingConfig`.

Why one place: every path in a form is a client's. It becomes an absolute path inside the data folder (or a folder
allowed with --gradio-allowed-path; the base model may also be in the model folders), else the form is refused
with a message. While server folders are hidden the output folder cannot be chosen and the base model must be a
listed checkpoint. The UI cannot build a `TrainingConfig` itself (it may not import the training layer), so every
config that reaches the training service has passed through `TrainingForms.config`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from webui.core.errors import ModelNotFoundError, ValidationError
from webui.core.path_policy import PathNotAllowedError, PathPolicy
from webui.core.settings import Settings
from webui.engine.models.registry import ModelEntry, ModelRegistry
from webui.training import config as training_config
from webui.training.config import TrainingConfig, config_from_json, config_to_json
from webui.training.config_files import load_config_data, load_config_file
from webui.training.dataset import preview, scan_dataset


@dataclass(frozen=True)
class ImportedTrainingConfig:
    """A preset or SimpleTuner config read for the form: its form values, the keys nobody used, notes on what is
    not applied here, and which format it was."""

    values: dict[str, Any]
    ignored: tuple[str, ...]
    notes: tuple[str, ...]
    source_format: str


class TrainingForms:
    """Form values -> checked configs, and the form's defaults, choices, presets and imports."""

    def __init__(self, settings: Settings, policy: PathPolicy, registry: ModelRegistry):
        self._settings = settings
        self._policy = policy
        self._registry = registry

    def defaults(self) -> dict[str, Any]:
        """The Train tab's initial form: every option with its default (preset JSON)."""
        return config_to_json(TrainingConfig(device=self._settings.device))

    @staticmethod
    def choices() -> dict[str, list[str]]:
        """Dropdown values of the Train tab."""
        tc = training_config
        return {"network_type": list(tc.NETWORK_TYPES), "lycoris_algo": list(tc.LYCORIS_ALGOS),
                "optimizer": list(tc.OPTIMIZERS), "lr_scheduler": list(tc.SCHEDULERS),
                "mixed_precision": list(tc.MIXED_PRECISION), "model_family": list(tc.FAMILIES),
                "prediction_type": list(tc.PREDICTION_TYPES)}

    def config(self, values: dict[str, Any]) -> TrainingConfig:
        """Form/preset values -> a validated `TrainingConfig`: a checkpoint title becomes its file, the output goes
        to models/Lora (LoRA) or models/LyCORIS unless the form names a folder, the device defaults to the app's;
        every path confined as the module says."""
        config, _ = config_from_json(values)
        paths = self._settings.paths
        if config.output_dir.strip():
            self._policy.refuse_if_hidden("The training output folder")
            output_dir = str(self._policy.with_roots((paths.lora_dir, paths.lycoris_dir)).resolve(
                config.output_dir, "Output folder"))
        else:
            output_dir = str(paths.lycoris_dir if config.is_lycoris else paths.lora_dir)
        device = values.get("device") or self._settings.device
        config = dataclasses.replace(self._confined_inputs(config), base_model=self._base_model(config.base_model),
                                     output_dir=output_dir, device=device)
        return config.validate()

    def dataset_preview(self, values: dict[str, Any]) -> dict[str, Any]:
        """Images per folder, repeats, steps per epoch and in total, caption samples, buckets, notes."""
        config, _ = config_from_json({**values, "base_model": values.get("base_model") or "-"})
        return preview(self._confined_inputs(config))

    def dataset_samples(self, values: dict[str, Any], limit: int) -> list[tuple[Path, str]]:
        """The first `limit` images of the form's dataset with their captions (for the preview gallery)."""
        config, _ = config_from_json({**values, "base_model": values.get("base_model") or "-"})
        dataset = scan_dataset(self._confined_inputs(config))
        return [(item.path, item.caption) for item in dataset.items[:limit]]

    @staticmethod
    def preset_json(values: dict[str, Any]) -> str:
        """The whole form as a preset JSON text (for "save preset")."""
        return json.dumps(config_to_json(config_from_json(values)[0]), indent=2)

    def import_config(self, text: str) -> ImportedTrainingConfig:
        """A preset or SimpleTuner config.json (its text, or a path to it) -> form values. The file, and the files
        and folders it names, are client paths: relative to the data folder (or beside the file) and confined
        like every form path."""
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise ValidationError(f"The training config is not valid JSON: {err}") from err
            loaded = load_config_data(data, self._settings.paths.data_dir, self._settings.device,
                                      policy=self._policy)
        else:
            loaded = load_config_file(self._policy.resolve(stripped, "Training config file"), self._settings.device,
                                      policy=self._policy)
        form = config_to_json(loaded.config)
        try:
            listed = self.listed_checkpoint(form["base_model"]) if form.get("base_model") else None
        except ValidationError:  # an unusable path: the form shows it, and "Train" says what is wrong
            listed = None
        if listed is not None:  # the form's base model list shows titles
            form["base_model"] = listed.title
        return ImportedTrainingConfig(form, tuple(loaded.ignored), tuple(loaded.notes), loaded.source_format)

    def listed_checkpoint(self, value: str) -> ModelEntry | None:
        """The registry's checkpoint `value` names: by title or name, or by a path ending like its file's (a
        preset's `models/Stable-diffusion/x.safetensors` or `webui/assets/demo/...`); None when none does."""
        try:
            return self._registry.find_checkpoint(value)
        except ModelNotFoundError:
            pass
        parts = PurePosixPath(self._policy.check_text(value, "Base model")).parts
        return next((entry for entry in self._registry.checkpoints() if entry.path.parts[-len(parts):] == parts),
                    None)

    def _confined_inputs(self, config: TrainingConfig) -> TrainingConfig:
        """The dataset folders, the sample-prompt file and a resume folder as absolute paths the policy allows."""
        policy = self._policy

        def confined(value: str, what: str) -> str:
            return str(policy.resolve(value, what)) if value.strip() else value

        subsets = tuple(dataclasses.replace(s, path=confined(s.path, f"Dataset folder '{s.name or s.path}'"))
                        for s in config.subsets)
        resume = config.resume if config.resume in ("", "latest") else confined(config.resume, "Resume folder")
        return dataclasses.replace(config, dataset_dir=confined(config.dataset_dir, "Dataset folder"),
                                   subsets=subsets, sample_prompts=confined(config.sample_prompts,
                                                                            "Sample prompt file"),
                                   resume=resume)

    def _base_model(self, value: str) -> str:
        """A listed checkpoint (title, name, or a path ending like its file's), else a file or diffusers folder in
        the data folder, the model folders or an allowed folder (not while server folders are hidden)."""
        if not value.strip():
            return value
        listed = self.listed_checkpoint(value)
        if listed is not None:
            return str(listed.path)
        if self._policy.hide_dir_config:
            raise PathNotAllowedError(f"Base model '{value}' is not a listed checkpoint; this server only trains "
                                      "on the listed checkpoints.")
        paths = self._settings.paths
        path = self._policy.with_roots((paths.models_dir, *paths.ckpt_dirs)).resolve(value, "Base model")
        if not path.exists():
            raise ValidationError(f"Base model '{value}' is neither a listed checkpoint nor a file in the data "
                                  "folder. Put it in models/Stable-diffusion and press refresh.")
        return str(path)
