"""The size limits as pure logic: generation requests, X/Y/Z plans (refused from counts, never materialised),
images sent in, Extras settings, training settings, and the request-body cap as a bare ASGI middleware."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from types import SimpleNamespace

import pytest

from webui.api.body_limit import BodySizeLimit
from webui.core.errors import ValidationError
from webui.core.limits import (
    LIMITS,
    check_input_images,
    check_script_size,
    check_upscaled_size,
    job_images_problems,
    upscale_problems,
)
from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import expand_xyz
from webui.training.config import TrainingConfig

BASE = GenerationRequest(prompt="a cat", steps=2, width=64, height=64, seed=1)


def problems(request: GenerationRequest) -> str:
    with pytest.raises(ValidationError) as caught:
        request.validate()
    return str(caught.value)


# ----- generation requests ------------------------------------------------------------------------------------------

def test_limits_are_one_frozen_table():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LIMITS.max_pixels = 1  # type: ignore[misc]
    assert LIMITS.max_upload_bytes * 4 / 3 <= LIMITS.max_request_bytes  # an uploaded image fits a base64 body


def test_first_pass_pixels_are_capped_but_long_sides_pass():
    GenerationRequest(width=8192, height=2048).validate()
    assert "16,777,216 pixels (4096x4096)" in problems(GenerationRequest(width=8192, height=8192))


@pytest.mark.parametrize(("changes", "text"), [
    ({"hr_scale": 4.0, "width": 2048, "height": 2048}, "The hires fix size 8192x8192 has more than"),
    ({"hr_resize_x": -8}, "Hires resize x must be 0 (off) or at most 8192"),
    ({"hr_resize_y": 100_000}, "Hires resize y must be 0 (off) or at most 8192"),
    ({"hr_resize_x": 8192, "hr_resize_y": 8192}, "The hires fix size 8192x8192"),
    ({"hr_resize_x": 8192, "width": 64, "height": 4096}, "The hires fix size 8192x524288 is outside"),
    ({"hr_scale": math.nan}, "Hires upscale must be between 1 and 8 (got nan)"),
    ({"hr_scale": math.inf}, "Hires upscale must be between 1 and 8 (got inf)"),
    ({"hr_second_pass_steps": 5000}, "Hires steps must be between 0 and 1000"),
])
def test_hires_settings_and_final_size(changes, text):
    assert text in problems(dataclasses.replace(BASE, enable_hr=True, **changes))


def test_hires_limits_apply_only_with_hires_on():
    dataclasses.replace(BASE, hr_scale=math.nan, hr_resize_x=-8).validate()
    dataclasses.replace(BASE, enable_hr=True, hr_scale=2.0, width=2048, height=2048).validate()


def test_images_per_job():
    assert job_images_problems(64, 15) == []
    assert "makes 1024 images; one job makes at most 1000" in problems(dataclasses.replace(BASE, batch_size=64,
                                                                                          n_iter=16))
    assert job_images_problems(0, 1) and job_images_problems(1, 1001)


def test_img2img_inputs_count_and_pixels():
    image = SimpleNamespace(size=(8192, 8193))
    text = problems(dataclasses.replace(BASE, img2img=Img2ImgInputs(init_images=(image,))))
    assert "8192x8193" in text and "67,108,864 pixels (8192x8192)" in text
    many = tuple(SimpleNamespace(size=(8, 8)) for _ in range(LIMITS.max_input_images + 1))
    assert "65 input images were sent" in problems(dataclasses.replace(BASE, img2img=Img2ImgInputs(many)))


def test_input_images_total_pixels():
    check_input_images([(8192, 8192)] * 4)
    with pytest.raises(ValidationError, match="268,435,456 pixels"):
        check_input_images([(8192, 8192)] * 5)


# ----- X/Y/Z -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("axes", "text"), [
    ([AxisInput("Seed", "1-1000"), AxisInput("Steps", "1-1000"), AxisInput("CFG Scale", "1-1000")],
     "1000 x 1000 x 1000 makes 1000000000 cells; a plot has at most 1000"),
    ([AxisInput("Seed", "1-100000000")], "makes 100000000 values; an axis takes at most 1000"),
    ([AxisInput("Seed", "1-10 [100000000000]")], "an axis takes at most 1000"),
    ([AxisInput("CFG Scale", "0-1 (+0.0000000001)")], "an axis takes at most 1000"),
    ([AxisInput("Seed", "1-600, 1-600")], "More than 1000 values"),
    ([AxisInput("Seed", ",".join(str(i) for i in range(1001)))], "More than 1000 values"),
    ([AxisInput("Sampler", ",".join(["Euler"] * 1001))], "More than 1000 values"),
    ([AxisInput("Seed", "1," * 40_000)], "in at most 65,536 characters"),
    ([AxisInput("Sampler", "", ("Euler",) * 1001)], "too many values"),
])
def test_huge_plots_are_refused_fast(axes, text):
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        expand_xyz(BASE, axes)
    assert time.perf_counter() - started < 0.5
    assert text in str(caught.value)


def test_plot_images_count_cells_times_batch():
    expand_xyz(dataclasses.replace(BASE, n_iter=4), [AxisInput("Seed", "1-1000")])
    with pytest.raises(ValidationError, match="1000 cells x 5 image"):
        expand_xyz(dataclasses.replace(BASE, n_iter=5), [AxisInput("Seed", "1-1000")])
    with pytest.raises(ValidationError, match="at most 4000"):
        check_script_size("Prompt matrix", 1024, 4)


# ----- Extras ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [math.nan, math.inf, -math.inf, -2.0, 0.0, 8.5, 1e9])
def test_upscale_factor_must_be_a_sane_number(scale):
    assert "Upscale factor must be a number above 0 and at most 8" in " ".join(upscale_problems(scale, None, 0.0))


@pytest.mark.parametrize("size", [(0, 512), (-1, 512), (512, 8193), (512, 10**9)])
def test_upscale_target_sides(size):
    assert "outside 1-8192 pixels per side" in " ".join(upscale_problems(2.0, size, 0.0))


def test_upscale_visibility_and_result_size():
    assert upscale_problems(0.5, None, 1.0) == [] and upscale_problems(8, (64, 64), 0) == []
    assert "visibility" in " ".join(upscale_problems(2.0, None, math.nan))
    check_upscaled_size(8192, 8192)
    with pytest.raises(ValidationError, match="would be 8200x8192"):
        check_upscaled_size(8200, 8192)


# ----- training ----------------------------------------------------------------------------------------------------

GOOD = TrainingConfig(base_model="m.safetensors", dataset_dir="data")


@pytest.mark.parametrize(("changes", "text"), [
    ({"num_processes": 17}, "Number of processes must be between 1 and 16 (got 17)."),
    ({"num_processes": 0}, "Number of processes must be between 1 and 16 (got 0)."),
    ({"resolution": 8192, "max_bucket_reso": 8192}, "must be at most 4096"),
    ({"max_bucket_reso": 100_000}, "must be at most 4096"),
    ({"network_dim": 1025}, "Network dim must be between 1 and 1024 (got 1025)."),
    ({"network_dim": 0}, "Network dim must be between 1 and 1024 (got 0)."),
])
def test_training_limits(changes, text):
    assert GOOD.problems() == []
    assert text in dataclasses.replace(GOOD, **changes).problems()[0]
    with pytest.raises(ValidationError, match="Training settings are invalid"):
        dataclasses.replace(GOOD, **changes).validate()


def test_training_limits_at_the_maxima_pass():
    assert dataclasses.replace(GOOD, num_processes=16, resolution=4096, max_bucket_reso=4096,
                               network_dim=1024).problems() == []


# ----- the body cap as an ASGI middleware ---------------------------------------------------------------------------

def _run(middleware: BodySizeLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list, int]:
    """Drive one HTTP request through `middleware`; returns the messages sent and how many chunks were read."""
    sent: list[dict] = []
    read = 0

    async def receive():
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return sent, read


async def _echo_app(scope, receive, send):
    """Reads the whole body (as a route does), then answers 200; fails on a disconnect like Starlette does."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client disconnected")
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def test_declared_length_over_the_limit_is_refused_unread():
    sent, read = _run(BodySizeLimit(_echo_app, limit=100), [(b"content-length", b"101")], [b"x" * 101])
    assert read == 0 and sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert "larger than 100 bytes" in json.loads(sent[1]["body"])["detail"]


def test_chunked_body_stops_at_the_first_chunk_over_the_limit():
    sent, read = _run(BodySizeLimit(_echo_app, limit=100), [], [b"x" * 60] * 10)
    assert read == 2
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]


def test_bodies_within_the_limit_pass():
    sent, read = _run(BodySizeLimit(_echo_app, limit=100), [], [b"x" * 50, b"x" * 50])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100"
