"""Training size limits through the Train tab (gradio_client against the real app): processes, resolution and
network dim over their maxima get a readable message and no job; within them the job is queued."""
from __future__ import annotations

import pytest

from tests.conftest import serve_train_ui
from tests.ui.test_train_tab import form_args


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints, shapes_dataset):
    yield from serve_train_ui(tmp_path_factory.mktemp("train-limits"), tiny_checkpoints, shapes_dataset)


@pytest.mark.parametrize(("changes", "text"), [
    ({"num_processes": 1000}, "Number of processes must be between 1 and 16 (got 1000)."),
    ({"resolution": 65536, "max_bucket_reso": 65536}, "must be at most 4096"),
    ({"network_dim": 100_000}, "Network dim must be between 1 and 1024 (got 100000)."),
])
def test_train_tab_refuses_sizes_over_the_limits(ui, shapes_dataset, changes, text):
    services, client = ui
    message, _jobs = client.predict(*form_args(services, shapes_dataset, **changes), api_name="/train_submit")
    assert text in message
    assert services.training.jobs() == []
