"""Training size limits through the Train tab (gradio_client against the real app): processes, resolution and
network dim over their maxima get a readable message and no job; within them the job is queued."""
from __future__ import annotations

import pytest
from gradio_client import Client

from app import build_app
from tests.conftest import ServerThread, free_port, make_data_dir, make_settings
from tests.ui.test_train_tab import form_args


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_checkpoints, shapes_dataset):
    from webui.core.settings import SecuritySettings
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("train-limits"), tiny_checkpoints, ("sd1",))
    services = build_services(make_settings(data_dir, api=False,  # the dataset is outside the data folder
                                            security=SecuritySettings(allowed_paths=(shapes_dataset,))))
    with ServerThread(build_app(services), free_port()) as server:
        yield services, Client(server.url, verbose=False)
    services.runtime.training_worker.shutdown(terminate=True)
    services.runtime.executor.shutdown()


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
