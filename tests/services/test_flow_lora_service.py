"""LoRAs on AuraFlow and Flux through the services, as a user drives them: `<lora:name:1>` in txt2img changes the
image and the next prompt without it gives the base image again; Extra Networks lists only the LoRAs made for the
loaded model's family; a LoRA of another family is a warning, not a crash; the Train tab's AuraFlow job makes
sample images and its epochs compare in an X/Y/Z plot."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import FORMATS_LOKR, make_settings
from webui.core.requests import GenerationRequest

torch.set_num_threads(1)

AURA, FLUX, SD1 = "tiny-auraflow", "tiny-flux", "tiny-sd1.safetensors"
LORAS = {"aura-lokr": "aura", "aura-peft": "aura", "flux-kohya": "flux", "flux-xlabs": "flux", "sd-lora": "sd",
         "mystery": None}


@pytest.fixture(scope="module")
def services(tmp_path_factory, tiny_auraflow, tiny_checkpoints):
    from webui.engine.models.loader import load_checkpoint
    from webui.services import build_services
    from webui.testing.flow_lora_files import write_flow_lora
    from webui.testing.lora_files import write_adapter
    from webui.testing.tiny_auraflow import build_tiny_auraflow
    from webui.testing.tiny_flux import build_tiny_flux, write_tiny_flux_folder

    root = tmp_path_factory.mktemp("flow-lora-data")
    ckpt, lora_dir = root / "models" / "Stable-diffusion", root / "models" / "Lora"
    ckpt.mkdir(parents=True)
    shutil.copytree(tiny_auraflow, ckpt / AURA)
    write_tiny_flux_folder(ckpt / FLUX)
    shutil.copy(tiny_checkpoints["sd1"], ckpt / SD1)
    aura, flux = build_tiny_auraflow(0), build_tiny_flux(0, tokenizer_dir=root / ".tok")
    write_flow_lora(lora_dir / "aura-lokr.safetensors", aura, "lycoris_lokr")
    write_flow_lora(lora_dir / "aura-peft.safetensors", aura, "peft", seed=1)
    write_flow_lora(lora_dir / "flux-kohya.safetensors", flux, "kohya")
    write_flow_lora(lora_dir / "flux-xlabs.safetensors", flux, "xlabs", seed=2)
    write_adapter(lora_dir / "sd-lora.safetensors", load_checkpoint(ckpt / SD1, cache_dir=root / "cache").pipeline,
                  "lora")
    save_file({"something.weight": torch.zeros(4)}, str(lora_dir / "mystery.safetensors"))
    services = build_services(make_settings(root))
    yield services
    services.runtime.training_worker.shutdown(terminate=True)
    services.runtime.executor.shutdown()


def request(checkpoint: str, prompt: str = "a red circle", **fields) -> GenerationRequest:
    base = dict(prompt=prompt, steps=3, width=32, height=32, seed=5, sampler_name="Euler", cfg_scale=2.0,
                checkpoint=checkpoint, save_images=False)
    return GenerationRequest(**{**base, **fields})


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].image)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [AURA, FLUX, SD1])
def test_extra_networks_list_the_loras_of_the_loaded_family(services, checkpoint):
    services.models.select_checkpoint(checkpoint)
    family = {AURA: "aura", FLUX: "flux", SD1: "sd"}[checkpoint]
    shown = [card["name"] for card in services.networks.extra_network_cards("lora")]
    assert shown == sorted(name for name, of in LORAS.items() if of in (family, None))
    assert {row["name"] for row in services.networks.lora_list()} == set(LORAS)  # the API lists all, as A1111
    made_for = dict(services.networks.extra_network_details("lora", "flux-xlabs")["info"])["Made for"]
    assert made_for == "Flux"
    assert dict(services.networks.extra_network_details("lora", "mystery")["info"])["Made for"] == \
        "an unknown model family"


@pytest.mark.slow
@pytest.mark.parametrize(("checkpoint", "lora"), [(AURA, "aura-lokr"), (AURA, "aura-peft"), (FLUX, "flux-kohya"),
                                                  (FLUX, "flux-xlabs")])
def test_lora_in_the_prompt_changes_the_image_and_leaves_no_trace(services, checkpoint, lora):
    plain = pixels(services.generation.txt2img(request(checkpoint)))
    tagged = services.generation.txt2img(request(checkpoint, f"a red circle <lora:{lora}:1>"))
    assert tagged.warnings == () and f'Lora hashes: "{lora}: ' in tagged.infotexts[0]
    assert not np.array_equal(plain, pixels(tagged))
    zero = services.generation.txt2img(request(checkpoint, f"a red circle <lora:{lora}:0>"))
    assert np.array_equal(plain, pixels(zero))
    assert np.array_equal(plain, pixels(services.generation.txt2img(request(checkpoint))))


@pytest.mark.slow
def test_a_lora_of_another_family_is_a_warning(services):
    plain = pixels(services.generation.txt2img(request(AURA)))
    result = services.generation.txt2img(request(AURA, "a red circle <lora:flux-kohya:1> <lora:sd-lora:1>"))
    assert np.array_equal(plain, pixels(result))
    text = " ".join(result.warnings)
    assert "'flux-kohya.safetensors' is made for Flux and the loaded model is AuraFlow" in text
    assert "'sd-lora.safetensors' is made for Stable Diffusion and the loaded model is AuraFlow" in text


@pytest.mark.slow
def test_auraflow_training_job_samples_and_compares_epochs(services, shapes_dataset):
    """A LoKr job on the tiny AuraFlow from the Train tab's form: sample images each epoch, then "Compare epochs"
    draws its two saved files through the generation path; the cells differ from each other."""
    shutil.copytree(shapes_dataset, services.settings.paths.data_dir / "datasets" / "shapes")
    values = services.training.defaults()
    values.update({"output_name": "aura-job", "base_model": AURA, "dataset_dir": "datasets/shapes",
                   "resolution": 32, "min_bucket_reso": 32, "max_bucket_reso": 64, "bucket_reso_steps": 32,
                   "epochs": 2, "batch_size": 2, "network_type": "lycoris", "lycoris": FORMATS_LOKR,
                   "learning_rate": 3e-2, "save_every_n_epochs": 1, "sample_every_n_epochs": 1,
                   "sample_prompt_text": "a disc --w 32 --h 32 --s 3 --l 2"})
    job = services.training.submit(services.training.form_config(values))
    record = services.runtime.training_worker.wait(job.record.id, timeout=600)
    assert record.status == "done", (record.message, services.training.log(job.record.id))
    events, _ = services.training.events(job.record.id)
    samples = [Path(path) for e in events if e.get("type") == "sample" for path in e.get("paths", [])]
    assert len(samples) >= 2 and all(p.is_file() for p in samples), events
    result = services.training.compare_epochs(job.record.id).result()
    cells = [np.asarray(image.image) for image in result.sub_images]
    assert [image.image.size for image in result.sub_images] == [(32, 32), (32, 32)]
    assert "<lora:aura-job-000001:1>" in result.sub_images[0].infotext
    assert "Model: tiny-auraflow" in result.sub_images[1].infotext
    assert not np.array_equal(cells[0], cells[1])
    assert not any("LoRA" in warning for warning in result.warnings), result.warnings
