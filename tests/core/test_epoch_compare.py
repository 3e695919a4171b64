"""Which saved files "Compare epochs" shows, and the X/Y/Z plot it builds."""
from __future__ import annotations

from pathlib import Path

import pytest

from webui.core.epoch_compare import plan_compare, saved_files
from webui.core.errors import ValidationError
from webui.core.requests import GenerationRequest
from webui.core.xyz_plan import expand_xyz

OUT = Path("/models/Lora")


def saved(name: str, step: int, removed: bool = False) -> dict:
    return {"type": "saved", "path": str(OUT / f"{name}.safetensors"), "step": step, "removed": removed}


def test_pruned_and_deleted_files_are_left_out_and_final_comes_last():
    events = [saved("z-000001", 4), {"type": "step", "step": 5}, saved("z-000002", 8), saved("z-000003", 12),
              saved("z-000001", 12, removed=True), saved("z-000003", 12)]  # a resumed job saved 3 again
    exists = [OUT / "z-000002.safetensors", OUT / "z-000003.safetensors", OUT / "z.safetensors"]
    files = saved_files(events, str(OUT / "z.safetensors"), exists)
    assert [(f.name, f.step, f.final) for f in files] == [("z-000002", 8, False), ("z-000003", 12, False),
                                                         ("z", 13, True)]
    assert [f.name for f in saved_files(events, str(OUT / "z.safetensors"), exists[1:])] == ["z-000003", "z"]


def test_plan_is_a_prompt_sr_axis_over_the_file_names():
    files = saved_files([saved("my,lora-000001", 4)], str(OUT / "my,lora.safetensors"),
                        [OUT / "my,lora-000001.safetensors", OUT / "my,lora.safetensors"])
    plan = plan_compare(files, "  a   zorb  ", weight=0.8)
    assert plan.prompt == "a zorb <lora:my,lora-000001:0.8>"
    cells = expand_xyz(GenerationRequest(prompt=plan.prompt, seed=1), [plan.x_axis]).cells
    assert [cell.request.prompt for cell in cells] == ["a zorb <lora:my,lora-000001:0.8>",
                                                       "a zorb <lora:my,lora:0.8>"]


def test_too_few_files_is_a_clear_error():
    with pytest.raises(ValidationError, match="no saved network files"):
        plan_compare([], "x")
    one = saved_files([], str(OUT / "z.safetensors"), [OUT / "z.safetensors"])
    with pytest.raises(ValidationError, match="at least two"):
        plan_compare(one, "x")
