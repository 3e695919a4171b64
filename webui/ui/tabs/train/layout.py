"""The Train LoRA tab: a kohya-style form (dataset, network, options, samples), a dataset preview, presets and
SimpleTuner import, and a job list with live progress, loss plot, samples, log, cancel and resume.

Why a field table: the form is the preset JSON of `webui.training.config`, one widget per key, so "save preset",
"import" and "train" all read or fill the same list in the same order. Everything goes through the training service.

Folder fields are client paths, confined by the services to the data folder. While server folders are hidden (an
exposed server) the output folder is not shown (results go to models/Lora or models/LyCORIS) and the base model is
one of the listed checkpoints; the dataset folder and the sample-prompt file stay, as the only way to name them.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.core.errors import WebUIError
from webui.services.training_service import TrainingJob, TrainingService
from webui.ui.tabs.train.dataset_preview import build_dataset_preview, wire_preview_view

EXAMPLE_LYCORIS = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "linear_alpha": 1, "factor": 16,
                   "apply_preset": {"target_module": ["Attention", "FeedForward"],
                                    "module_algo_map": {"Attention": {"factor": 16}, "FeedForward": {"factor": 8}}}}
REFRESH_SECONDS = 2.0
CHECKBOX_MIN_WIDTH = 220
LYCORIS = "lycoris"


@dataclass(frozen=True)
class Field:
    """One preset key: its label and kind ("int", "float", "bool", "text", "lines" or "choice:<name>")."""

    key: str
    label: str
    kind: str = "int"

    def widget(self, value: Any, choices: dict[str, list[str]], visible: bool = True) -> gr.components.Component:
        elem_id = f"train_field_{self.key}"
        if self.kind == "int":
            return gr.Number(label=self.label, value=value, precision=0, elem_id=elem_id)
        if self.kind == "float":
            return gr.Number(label=self.label, value=value, elem_id=elem_id)
        if self.kind == "bool":
            # min_width: in a row of number boxes a checkbox was squeezed until its label was cut ("Grad chec")
            return gr.Checkbox(label=self.label, value=bool(value), min_width=CHECKBOX_MIN_WIDTH, elem_id=elem_id,
                               elem_classes=["train-checkbox"])
        if self.kind.startswith("choice:"):
            return gr.Dropdown(label=self.label, value=value, choices=choices[self.kind.split(":", 1)[1]],
                               elem_id=elem_id)
        return gr.Textbox(label=self.label, value=value or "", lines=3 if self.kind == "lines" else 1,
                          visible=visible, elem_id=elem_id)


GROUPS: tuple[tuple[str, tuple[Field, ...]], ...] = (
    ("Network", (
        Field("network_type", "Network", "choice:network_type"), Field("network_dim", "Network dim"),
        Field("network_alpha", "Network alpha", "float"), Field("train_unet", "Train UNet", "bool"),
        Field("train_text_encoder", "Train text encoder", "bool"))),
    ("Length and batches", (
        Field("epochs", "Epochs"), Field("max_train_steps", "Max train steps (0: use epochs)"),
        Field("batch_size", "Batch size"),
        Field("gradient_accumulation_steps", "Gradient accumulation"))),
    ("Images and captions", (
        Field("resolution", "Resolution"), Field("enable_bucket", "Aspect buckets", "bool"),
        Field("min_bucket_reso", "Min bucket"), Field("max_bucket_reso", "Max bucket"),
        Field("bucket_reso_steps", "Bucket step"), Field("bucket_no_upscale", "No upscale", "bool"),
        Field("keep_tokens", "Keep tokens"), Field("shuffle_caption", "Shuffle captions", "bool"),
        Field("caption_dropout_rate", "Caption dropout", "float"),
        Field("caption_extension", "Caption extension", "text"))),
    ("Optimisation", (
        Field("learning_rate", "UNet learning rate", "float"),
        Field("text_encoder_lr", "Text encoder learning rate", "float"),
        Field("optimizer", "Optimizer", "choice:optimizer"), Field("lr_scheduler", "Scheduler", "choice:lr_scheduler"),
        Field("lr_warmup_steps", "Warmup steps"), Field("max_grad_norm", "Max grad norm", "float"),
        Field("mixed_precision", "Mixed precision", "choice:mixed_precision"),
        Field("gradient_checkpointing", "Gradient checkpointing", "bool"),
        Field("cache_latents", "Cache latents (disk)", "bool"),
        Field("cache_text_embeddings", "Cache text embeddings (disk)", "bool"), Field("seed", "Seed"),
        Field("flow_shift", "Flow shift (flow models)", "float"))),
    ("Saving and samples", (
        Field("save_every_n_epochs", "Save every N epochs"),
        Field("save_every_n_steps", "Save every N steps"), Field("save_last_k", "Keep last K"),
        Field("save_state_every_n_steps", "Resume state every N steps"),
        Field("sample_every_n_epochs", "Sample every N epochs"),
        Field("sample_every_n_steps", "Sample every N steps"),
        Field("sample_prompt_text", "Sample prompts (kohya lines: --n --w --h --d --l --s)", "lines"),
        Field("sample_prompts", "…or a prompt file (.txt lines / prompt-library .json)", "text"))),
    ("Advanced", (
        Field("model_family", "Model family", "choice:model_family"),
        Field("prediction_type", "Prediction type", "choice:prediction_type"),
        Field("output_dir", "Output folder (empty: models/Lora or models/LyCORIS)", "text"),
        Field("num_processes", "Processes (accelerate launch)"))),
)
INT_KEYS = frozenset(f.key for _, fields in GROUPS for f in fields if f.kind == "int")
# Fields that name a server folder the job writes to: hidden while server folders are hidden.
OUTPUT_FOLDER_KEYS = frozenset({"output_dir"})


@dataclass
class TrainForm:
    """The form widgets in preset-key order (the same order every handler reads and fills)."""

    keys: list[str]
    widgets: list[gr.components.Component]
    lycoris: gr.Code

    def values(self, raw: tuple[Any, ...], lycoris_text: str) -> dict[str, Any]:
        values = dict(zip(self.keys, raw, strict=True))
        for key in INT_KEYS & set(values):
            values[key] = int(values[key] or 0)
        if values.get("network_type") == "lycoris":
            try:
                values["lycoris"] = json.loads(lycoris_text or "{}")
            except json.JSONDecodeError as err:
                raise WebUIError(f"The LyCORIS config is not valid JSON: {err}") from err
        return values

    def fill(self, values: dict[str, Any]) -> list[Any]:
        lycoris = values.get("lycoris")
        # a key the imported file leaves empty (no base model, no dataset) keeps what the form has
        return [gr.update(value=values[key]) if values.get(key) not in (None, "") else gr.update()
                for key in self.keys] + [
            gr.update(value=json.dumps(lycoris, indent=2)) if lycoris else gr.update()]


def _build_form(training: TrainingService, base_models: list[str], hidden: bool) -> TrainForm:
    """The form; `base_models` are the checkpoint titles offered (free values too unless folders are `hidden`)."""
    defaults = training.defaults()
    choices = training.choices()
    keys, widgets = [], []
    with gr.Row():
        keys.append("output_name")
        widgets.append(gr.Textbox(label="Output name", value=defaults["output_name"], elem_id="train_output_name"))
        keys.append("base_model")
        widgets.append(gr.Dropdown(label="Base model", choices=base_models,
                                   value=base_models[0] if base_models else None,
                                   allow_custom_value=not hidden, elem_id="train_base_model"))
        keys.append("dataset_dir")
        widgets.append(gr.Textbox(label="Dataset folder (<repeats>_<name>/ sub-folders)", elem_id="train_dataset"))
    for title, fields in GROUPS:
        with gr.Accordion(title, open=title == "Network"):
            with gr.Row():
                for field in fields:
                    keys.append(field.key)
                    widgets.append(field.widget(defaults[field.key], choices,
                                                visible=not (hidden and field.key in OUTPUT_FOLDER_KEYS)))
            if title == "Network":
                lycoris = gr.Code(json.dumps(EXAMPLE_LYCORIS, indent=2), language="json",
                                  label="LyCORIS config (SimpleTuner lycoris_config.json; used when Network is "
                                        "lycoris)", elem_id="train_lycoris_config",
                                  visible=defaults["network_type"] == LYCORIS)
    network_type = widgets[keys.index("network_type")]
    # the LyCORIS editor only for LyCORIS networks (for plain LoRA it was a page of JSON that does nothing)
    network_type.change(lambda kind: gr.update(visible=kind == LYCORIS), inputs=[network_type], outputs=[lycoris],
                        api_name=False, show_progress="hidden")
    return TrainForm(keys, widgets, lycoris)


def _job_label(job: TrainingJob) -> str:
    return f"{job.record.name} · {job.record.status} · {job.record.id}"


def _job_markdown(job: TrainingJob) -> str:
    def fmt(value: Any, pattern: str) -> str:
        return pattern.format(value) if value is not None else "-"

    record = job.record
    eta = fmt(record.eta_s, "{:.0f} s")
    lines = [f"**{record.name}** — {record.status}", f"step {record.step}/{record.total_steps} · epoch "
             f"{record.epoch}/{record.total_epochs} · loss {fmt(record.loss, '{:.4f}')} · "
             f"{fmt(record.its, '{:.2f}')} it/s · ETA {eta}", record.message or "",
             f"`{job.command_text}`"]
    if job.final_file_text:
        lines.append(f"Result: `{job.final_file_text}`")
    return "\n\n".join(line for line in lines if line)


def _loss_frame(losses: list[tuple[int, float]]):
    import pandas as pd

    return pd.DataFrame({"step": [s for s, _ in losses], "loss": [v for _, v in losses]})


def _samples(training: TrainingService, job_id: str) -> list[tuple[str, str]]:
    found = []
    for event in training.events(job_id)[0]:
        if event["type"] == "sample":
            found += [(path, f"step {event['step']}") for path in event["paths"]]
    return found[-12:]


def build_train_tab(training: TrainingService, base_models: list[str], hide_dir_config: bool) -> None:
    """The tab: the form with its buttons, the jobs list with the selected job's view, and "Compare epochs".
    `base_models` are the checkpoint titles the form offers; `hide_dir_config` refuses free base-model values."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, variant="panel"):
            form = _build_form(training, base_models, hide_dir_config)
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train_start")
                preview_button = gr.Button("Preview dataset", elem_id="train_preview")
            preview = build_dataset_preview()
            with gr.Accordion("Presets and SimpleTuner import", open=False):
                preset_text = gr.Code(label="Preset JSON (paste a preset, a SimpleTuner config.json, or a path)",
                                      language="json", elem_id="train_preset_text")
                with gr.Row():
                    save_preset = gr.Button("Show form as preset", elem_id="train_save_preset")
                    import_preset = gr.Button("Load into form", elem_id="train_import_preset")
            message = gr.Markdown("", elem_id="train_message")
        with gr.Column(scale=2, variant="panel"):
            with gr.Row():
                jobs = gr.Dropdown(label="Jobs", choices=[], elem_id="train_jobs", scale=4)
                refresh = gr.Button("Refresh", elem_id="train_refresh", scale=1)
            status = gr.Markdown("No job selected.", elem_id="train_status")
            with gr.Row():
                # shown only when they apply to the selected job (a red Cancel with no job looked like an error)
                cancel = gr.Button("Cancel", variant="stop", elem_id="train_cancel", visible=False)
                resume = gr.Button("Resume", elem_id="train_resume", visible=False)
            # hidden until the job has losses: an empty Vega plot logs "Infinite extent" warnings
            plot = gr.LinePlot(x="step", y="loss", label="Loss", elem_id="train_loss_plot", visible=False)
            gallery = gr.Gallery(label="Samples", columns=4, height=260, elem_id="train_samples")
            with gr.Accordion("Compare epochs (X/Y/Z plot over the saved files)", open=False):
                with gr.Row():
                    compare_prompt = gr.Textbox(label="Prompt (empty: the job's first sample prompt)", scale=4,
                                                elem_id="train_compare_prompt")
                    compare = gr.Button("Compare epochs", scale=1, elem_id="train_compare")
                compare_grid = gr.Image(label="Epochs", type="pil", interactive=False, elem_id="train_compare_grid")
            log = gr.Textbox(label="Log", lines=8, max_lines=8, elem_id="train_log")
    _wire_form(training, form, train, preview_button, preview, preset_text, save_preset, import_preset, message,
               jobs)
    _wire_jobs(training, jobs, refresh, (cancel, resume), message, [status, plot, gallery, log])
    _wire_compare(training, jobs, compare_prompt, compare, compare_grid, message)


def _wire_compare(training: TrainingService, jobs, prompt, button, grid, message) -> None:
    """"Compare epochs": the job's saved files side by side on its base model (an X/Y/Z grid, saved with the
    X/Y/Z plot's grids); errors (no job, fewer than two files) go to the message line."""

    def on_compare(job_id: str | None, text: str) -> list[Any]:
        if not job_id:
            return [None, "Select a job first."]
        try:
            result = training.compare_epochs(job_id, text or "").result()
        except WebUIError as err:
            return [None, f"**Cannot compare:** {err}"]
        if not result.grids:
            return [None, "Nothing was generated (interrupted)."]
        notes = " ".join(result.warnings)
        return [result.grids[0].image, f"Compared {result.cells_done} files. {notes}".strip()]

    button.click(on_compare, inputs=[jobs, prompt], outputs=[grid, message], api_name="train_compare_epochs")


def _job_choices(training: TrainingService, selected: str | None = None) -> gr.Dropdown:
    """The jobs list, keeping `selected` when it still exists (else the newest job)."""
    rows = training.jobs()
    choices = [(_job_label(job), job.record.id) for job in rows]
    value = selected if selected in {job.record.id for job in rows} else (rows[0].record.id if rows else None)
    return gr.Dropdown(choices=choices, value=value)


def _wire_form(training: TrainingService, form: TrainForm, train, preview_button, preview, preset_text, save_preset,
               import_preset, message, jobs) -> None:
    """Train, dataset preview, and presets out of / into the form."""
    inputs = [*form.widgets, form.lycoris]

    def on_train(*raw: Any) -> list[Any]:
        try:
            job = training.submit(training.form_config(form.values(raw[:-1], raw[-1])))
        except WebUIError as err:
            return [f"**Not started:** {err}", gr.update()]
        return [f"Queued job `{job.record.id}`.", _job_choices(training, job.record.id)]

    def on_preview(*raw: Any) -> list[Any]:
        try:
            return [training.dataset_preview(form.values(raw[:-1], raw[-1])), ""]
        except WebUIError as err:
            return [None, f"**Preview failed:** {err}"]

    def on_save(*raw: Any) -> list[Any]:
        try:
            return [training.preset_json(form.values(raw[:-1], raw[-1])), ""]
        except WebUIError as err:
            return [gr.update(), f"**Cannot save:** {err}"]

    def on_import(text: str) -> list[Any]:
        try:
            imported = training.import_config(text or "")
        except WebUIError as err:
            return [*(gr.update() for _ in inputs), f"**Cannot import:** {err}"]
        notes = list(imported.notes) + ([f"Ignored keys: {', '.join(imported.ignored)}"] if imported.ignored
                                     else [])
        return [*form.fill(imported.values), "Loaded. " + " ".join(notes)]

    train.click(on_train, inputs=inputs, outputs=[message, jobs], api_name="train_submit")
    previewed = preview_button.click(on_preview, inputs=inputs, outputs=[preview.summary_json, message],
                                     api_name="train_preview")
    wire_preview_view(training, previewed, lambda raw: form.values(raw[:-1], raw[-1]), inputs, preview)
    save_preset.click(on_save, inputs=inputs, outputs=[preset_text, message], api_name="train_save_preset")
    import_preset.click(on_import, inputs=[preset_text], outputs=[*inputs, message], api_name="train_import_preset")


def _loss_plot(losses: list[tuple[int, float]]) -> Any:
    """The loss plot's update: hidden (and empty) until there is a loss to draw."""
    return gr.update(value=_loss_frame(losses), visible=True) if losses else gr.update(value=None, visible=False)


def _job_buttons(training: TrainingService, job_id: str | None) -> list[Any]:
    """(Cancel, Resume) visibility for the selected job."""
    try:
        job = training.job(job_id) if job_id else None
    except WebUIError:
        job = None
    return [gr.update(visible=bool(job and job.can_cancel)), gr.update(visible=bool(job and job.can_resume))]


def _wire_jobs(training: TrainingService, jobs, refresh, buttons: tuple[gr.Button, gr.Button], message,
               view_outputs: list[Any]) -> None:
    """The jobs list and the selected job's view (status, loss plot, samples, log), refreshed on a timer; Cancel and
    Resume show when they apply to the selected job."""
    cancel, resume = buttons

    def job_view(job_id: str | None) -> list[Any]:
        if not job_id:
            return ["No job selected.", _loss_plot([]), [], ""]
        try:
            job = training.job(job_id)
        except WebUIError as err:
            return [str(err), _loss_plot([]), [], ""]
        return [_job_markdown(job), _loss_plot(training.losses(job_id)), _samples(training, job_id),
                training.log(job_id)]

    def on_action(action: Callable[[str], TrainingJob], job_id: str | None) -> list[Any]:
        if not job_id:
            return ["Select a job first.", gr.update()]
        try:
            action(job_id)
        except WebUIError as err:
            return [str(err), gr.update()]
        return ["", _job_choices(training, job_id)]

    refresh.click(lambda selected: _job_choices(training, selected), inputs=[jobs], outputs=[jobs],
                  api_name="train_jobs")
    jobs.change(job_view, inputs=[jobs], outputs=view_outputs, api_name="train_job_view")
    jobs.change(lambda j: _job_buttons(training, j), inputs=[jobs], outputs=[cancel, resume], api_name=False,
                show_progress="hidden")
    cancel.click(lambda j: on_action(training.cancel, j), inputs=[jobs], outputs=[message, jobs],
                 api_name="train_cancel")
    resume.click(lambda j: on_action(training.resume, j), inputs=[jobs], outputs=[message, jobs],
                 api_name="train_resume")
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(lambda j: [_job_choices(training, j), *job_view(j), *_job_buttons(training, j)], inputs=[jobs],
               outputs=[jobs, *view_outputs, cancel, resume], api_name=False, show_progress="hidden")
