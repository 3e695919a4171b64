"""Generation tasks through the real services on the tiny SD1 model: the stored request comes back identical, a
finished task's images and infotexts are read back from the store and its files, img2img inputs and scripts
survive the round trip, and the sync path and the queue share one store."""
from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from webui.core.errors import ValidationError
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.request_builder import build_request
from webui.core.script_spec import ScriptSpec
from webui.services import ExtrasRequest
from webui.services.task_payloads import GenerationPayload, decode_payload, encode_payload

SMALL = {"width": 64, "height": 64, "steps": 2}


def test_a_plain_task_stores_its_resolved_request_and_reads_back_its_result(sd1_services):
    tasks = sd1_services.tasks
    request = build_request({"prompt": "a red circle", "seed": -1, "save_images": False, **SMALL})
    handle = tasks.submit_generation(request, source="test")
    result = handle.future.result(120)
    view = tasks.task(handle.id)
    assert view.state == "done" and view.progress == 1.0 and view.source == "test"
    assert "a red circle" in view.summary and "64x64" in view.summary
    stored = json.loads(tasks._store.get(handle.id).request)  # the frozen request with its real seed
    assert stored["request"]["seed"] == result.images[0].seed
    again = tasks.generation_result(handle.id)
    assert again.infotexts == result.infotexts and again.seeds == result.seeds
    assert list(again.images[0].image.getdata()) == list(result.images[0].image.getdata())
    assert all(path.is_file() for path in (img.path for img in again.images))  # saving was off: kept by the task


def test_img2img_and_script_payloads_round_trip_with_their_images(tmp_path):
    init = Image.new("RGB", (64, 64), (200, 10, 10))
    mask = Image.new("L", (64, 64), 255)
    request = build_request({"prompt": "a|b", "init_images": (init,), "mask": mask, **SMALL})
    payload = GenerationPayload(request, ScriptSpec.prompt_matrix(PromptMatrixOptions(put_at_start=True)))
    data = json.loads(json.dumps(encode_payload(payload, tmp_path)))
    back = decode_payload("img2img", data, tmp_path)
    assert back.script == payload.script
    assert back.request.img2img.init_images[0].tobytes() == init.tobytes()
    assert back.request.img2img.mask.mode == "L"
    assert back.request == dataclasses.replace(payload.request, img2img=back.request.img2img)
    inputs = back.request.img2img
    assert inputs == dataclasses.replace(payload.request.img2img, init_images=inputs.init_images, mask=inputs.mask)


def test_bad_requests_fail_when_queued_not_later(sd1_services):
    with pytest.raises(ValidationError, match="divisible by 8"):
        sd1_services.tasks.submit_generation(build_request({"width": 65, "height": 64, "steps": 2}))
    with pytest.raises(Exception, match="upscaler"):
        sd1_services.tasks.submit_extras([Image.new("RGB", (8, 8))], ExtrasRequest(upscaler_1="nope"))


def test_an_extras_task_keeps_its_result(sd1_services):
    image = Image.new("RGB", (16, 16), (0, 0, 255))
    handle = sd1_services.tasks.submit_extras([image], ExtrasRequest(scale_by=2.0, upscaler_1="Nearest"), save=False)
    (upscaled, _, info), = handle.future.result(60)
    assert upscaled.size == (32, 32)
    paths, infos = sd1_services.tasks.extras_result(handle.id)
    assert Image.open(paths[0]).size == (32, 32) and infos == [info]
