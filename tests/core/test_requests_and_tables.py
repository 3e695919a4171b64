"""Core tables and request validation: what the user sees as a message for bad input."""
from __future__ import annotations

import pytest

from webui.core.errors import SamplerError, ValidationError
from webui.core.progress import ProgressTracker
from webui.core.requests import GenerationRequest
from webui.core.samplers import get_sampler, resolve_schedule, sampler_names, split_legacy_name
from webui.core.seeds import batch_seeds, resolve_seed

A1111_SAMPLERS = ["Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE",
                  "DPM++ 2M SDE", "DPM++ 3M SDE", "DDIM", "PLMS", "UniPC", "LCM"]


def test_every_a1111_sampler_name_is_known():
    assert set(A1111_SAMPLERS) <= set(sampler_names())
    for name in A1111_SAMPLERS:
        assert get_sampler(name.lower()).name == name


def test_unknown_sampler_message_lists_choices():
    with pytest.raises(SamplerError, match="Unknown sampler 'Foo'.*Euler a"):
        get_sampler("Foo")


@pytest.mark.parametrize(("legacy", "expected"), [
    ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
    ("DPM++ SDE Karras", ("DPM++ SDE", "Karras")),
    ("Euler a", ("Euler a", "Automatic")),
    ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
])
def test_legacy_sampler_names_split(legacy, expected):
    assert split_legacy_name(legacy) == expected


def test_automatic_schedule_resolves_per_sampler():
    assert resolve_schedule(get_sampler("DPM++ 2M"), "Automatic") == "Karras"
    assert resolve_schedule(get_sampler("DPM++ 2M SDE"), "Automatic") == "Exponential"
    assert resolve_schedule(get_sampler("Euler a"), "Automatic") == "Uniform"
    with pytest.raises(SamplerError):
        resolve_schedule(get_sampler("Euler"), "Wobbly")


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 500}, "Width must be divisible by 8"),
    ({"height": 333}, "Height must be divisible by 8"),
    ({"steps": 0}, "Steps must be between"),
    ({"batch_size": 0}, "Batch size"),
    ({"seed": -5}, "Seed must be"),
    ({"clip_skip": 0}, "Clip skip"),
])
def test_request_validation_messages(fields, message):
    with pytest.raises(ValidationError, match=message):
        GenerationRequest(**fields).validate()


def test_valid_request_passes():
    GenerationRequest(width=64, height=72, steps=1).validate()


def test_seeds():
    assert batch_seeds(10, 3) == [10, 11, 12]
    assert batch_seeds(2**32 - 1, 2) == [2**32 - 1, 0]
    assert resolve_seed(42) == 42
    assert 0 <= resolve_seed(-1) < 2**32


def test_progress_fraction_and_eta():
    tracker = ProgressTracker()
    tracker.start("txt2img", job_count=2, sampling_steps=10)
    tracker.update(job_no=1, sampling_step=5)
    snap = tracker.snapshot()
    assert snap.fraction == pytest.approx(0.75)
    assert snap.eta_seconds(now=snap.started_at + 3.0) == pytest.approx(1.0)
    tracker.finish()
    assert not tracker.snapshot().active
