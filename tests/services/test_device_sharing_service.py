"""Generation while a real training job runs on the same device (CPU here): the user is told, and with the
"wait" policy the generation starts only when training has ended."""
from __future__ import annotations

import time

import pytest

from tests.conftest import submit_form
from tests.services.test_training_service import form
from webui.core.device_policy import OFFLOAD, WAIT
from webui.core.errors import GenerationError
from webui.core.requests import GenerationRequest

REQUEST = GenerationRequest(prompt="a red circle", steps=2, width=32, height=32, seed=5, save_images=False)



def _running_job(services, dataset) -> str:
    job = submit_form(services, form(services, dataset, output_name="long", max_train_steps=5000))
    services.runtime.training_worker.wait(job.record.id, timeout=120, statuses=("running",))
    return job.record.id


def test_generation_during_training_tells_the_user_and_waits_when_asked(services, shapes_dataset):
    assert services.generation.txt2img(REQUEST).warnings == ()  # nothing trains yet
    job_id = _running_job(services, shapes_dataset)

    services.options.set_options({"training_device_policy": OFFLOAD})
    shared = services.generation.txt2img(REQUEST)
    assert any("'long'" in w and "share its cores" in w for w in shared.warnings), shared.warnings

    services.options.set_options({"training_device_policy": WAIT})
    waiting = services.generation.submit_txt2img(REQUEST)
    time.sleep(1.5)
    assert not waiting.done()
    assert "Waiting for training 'long'" in services.queue.progress().textinfo
    services.queue.interrupt()
    with pytest.raises(GenerationError, match="Interrupted while waiting"):
        waiting.result(timeout=30)

    held = services.generation.submit_txt2img(REQUEST)
    time.sleep(1.0)
    assert not held.done()
    services.training.cancel(job_id)
    result = held.result(timeout=60)  # training ended: the generation ran
    assert len(result.images) == 1
    assert any("'long'" in w for w in result.warnings), result.warnings  # it ran while the job still listed
    assert services.runtime.training_worker.get(job_id).status == "cancelled"
    assert services.generation.txt2img(REQUEST).warnings == ()
