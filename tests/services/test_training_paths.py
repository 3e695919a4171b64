"""Training forms are client input: the base model, dataset, output folder, sample-prompt file and imported config
files stay inside the data folder (or allowed folders), and a job never replaces a file it did not make."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import make_data_dir, make_settings, submit_form
from tests.services.test_training_service import form
from webui.core.errors import ValidationError
from webui.core.settings import SecuritySettings
from webui.training.config import LYCORIS_ALGOS


@pytest.fixture()
def outside(tmp_path_factory, shapes_dataset):
    """A dataset and some files in a folder that is neither the data folder nor allowed."""
    root = tmp_path_factory.mktemp("outside")
    shutil.copytree(shapes_dataset, root / "dataset")
    (root / "prompts.txt").write_text("a secret prompt\n")
    (root / "lycoris.json").write_text(json.dumps({"algo": LYCORIS_ALGOS[0], "multiplier": 1, "linear_dim": 4,
                                                   "linear_alpha": 1}))
    (root / "preset.json").write_text(json.dumps({"base_model": "tiny-sd1.safetensors"}))
    return root


def refused(call, *fragments: str) -> str:
    with pytest.raises(ValidationError) as caught:
        call()
    message = str(caught.value)
    assert all(fragment in message for fragment in fragments), message
    return message


def test_paths_outside_the_data_folder_are_refused(services, outside):
    data_dir = services.settings.paths.data_dir
    relative = f"../../{outside.relative_to(data_dir.parent.parent)}/dataset"
    refused(lambda: submit_form(services, form(services, outside / "dataset")),
            "Dataset folder", "is outside the data folder")
    refused(lambda: submit_form(services, form(services, relative)), "Dataset folder", "contains '..'")
    refused(lambda: services.training.dataset_preview(form(services, outside / "dataset")), "outside")
    refused(lambda: submit_form(services, form(services, "", subsets=[{"path": str(outside / "dataset")}])),
            "outside")
    dataset = services.settings.security.allowed_paths[0]  # allowed with --gradio-allowed-path
    refused(lambda: submit_form(services, form(services, dataset, output_dir=str(outside / "out"))),
            "Output folder", "outside")
    refused(lambda: submit_form(services, form(services, dataset, output_dir="../out")), "'..'")
    refused(lambda: submit_form(services, form(services, dataset, sample_prompts=str(outside / "prompts.txt"))),
            "Sample prompt file", "outside")
    refused(lambda: submit_form(services, form(services, dataset, base_model=str(outside / "m.safetensors"))),
            "Base model", "outside")
    refused(lambda: services.training.import_config(str(outside / "preset.json")), "Training config file")
    refused(lambda: services.training.import_config(json.dumps({
        "model_type": "lora", "lora_type": "lycoris", "lycoris_config": str(outside / "lycoris.json")})),
        "lycoris_config", "outside")
    refused(lambda: services.training.import_config(json.dumps({
        "model_type": "lora", "instance_data_dir": str(outside / "dataset")})), "instance_data_dir", "outside")
    assert services.training.jobs() == []
    assert not any(outside.glob("**/*.safetensors"))


def test_relative_paths_are_in_the_data_folder(services, shapes_dataset):
    data_dir = services.settings.paths.data_dir
    shutil.copytree(shapes_dataset, data_dir / "datasets" / "shapes")
    (data_dir / "presets").mkdir()
    (data_dir / "presets" / "p.json").write_text(json.dumps({"base_model": "tiny-sd1.safetensors",
                                                             "dataset_dir": "datasets/shapes"}))
    imported = services.training.import_config("presets/p.json")
    assert imported.values["dataset_dir"] == "datasets/shapes"
    config = services.training.form_config(form(services, "datasets/shapes", output_dir="my-loras",
                                           base_model="models/Stable-diffusion/tiny-sd1.safetensors"))
    assert config.dataset_dir == str(data_dir / "datasets" / "shapes")
    assert config.output_dir == str(data_dir / "my-loras")
    assert config.base_model == str(data_dir / "models" / "Stable-diffusion" / "tiny-sd1.safetensors")


def test_training_never_replaces_a_file_it_did_not_make(services, shapes_dataset):
    lora_dir = services.settings.paths.lora_dir
    mine = lora_dir / "svc.safetensors"
    mine.write_bytes(b"a LoRA the user downloaded")
    refused(lambda: submit_form(services, form(services, shapes_dataset)),
            "Output name 'svc' is taken", "svc.safetensors", "models/Lora")
    mine.unlink()
    (lora_dir / "svc-000002.safetensors").write_bytes(b"an epoch of an older run")  # "keep last K" would prune it
    refused(lambda: submit_form(services, form(services, shapes_dataset)), "svc-000002.safetensors")
    (lora_dir / "svc-000002.safetensors").unlink()
    (lora_dir / "svc-other.safetensors").write_bytes(b"another LoRA")  # not a name a run writes
    first = submit_form(services, form(services, shapes_dataset, max_train_steps=2000))
    refused(lambda: submit_form(services, form(services, shapes_dataset)), f"Job {first.record.id}", "too")
    services.training.cancel(first.record.id)
    assert (lora_dir / "svc-other.safetensors").read_bytes() == b"another LoRA"


def test_an_exposed_server_trains_on_listed_checkpoints_into_the_lora_folder(tmp_path, tiny_checkpoints,
                                                                             shapes_dataset):
    from webui.services import build_services

    settings = make_settings(make_data_dir(tmp_path, tiny_checkpoints, ("sd1",)), host="0.0.0.0",
                             security=SecuritySettings(allowed_paths=(shapes_dataset,)))
    services = build_services(settings)
    try:
        refused(lambda: services.training.form_config(form(services, shapes_dataset, output_dir="loras")),
                "output folder", "--enable-insecure-extension-access")
        refused(lambda: services.training.form_config(form(services, shapes_dataset,
                                                           base_model="models/x.safetensors")),
                "not a listed checkpoint")
        config = services.training.form_config(form(services, shapes_dataset))
        assert config.output_dir == str(settings.paths.lora_dir) and config.base_model.endswith("tiny-sd1.safetensors")
    finally:
        services.runtime.executor.shutdown()


def test_an_exposed_server_shows_jobs_without_server_paths(tmp_path, tiny_checkpoints, shapes_dataset):
    """The Train tab's job view (command line, result file) shows data-relative paths when folders are hidden."""
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path / "data", tiny_checkpoints, ("sd1",))
    for host, hidden in (("0.0.0.0", True), ("127.0.0.1", False)):
        services = build_services(make_settings(data_dir, host=host,
                                                security=SecuritySettings(allowed_paths=(shapes_dataset,))))
        try:
            job = submit_form(services, form(services, shapes_dataset, output_name=f"shown-{hidden}",
                                             max_train_steps=1))
            shown = services.training.job(job.record.id)
            assert (str(data_dir) in shown.command_text) is not hidden
            if hidden:
                assert " /" not in shown.command_text and not shown.command_text.startswith("/")
            services.training.cancel(job.record.id)
        finally:
            services.runtime.training_worker.shutdown(terminate=True)
            services.runtime.executor.shutdown()
