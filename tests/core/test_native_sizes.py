"""Native sizes (core/native_sizes.py, read from core/model_families.py's table) and the device note."""
from __future__ import annotations

from webui.core.model_families import FAMILIES
from webui.core.native_sizes import device_note, native_size
from webui.engine.models.detection import AURAFLOW, GENERATION_FAMILIES, SD1, SD2, SDXL


def test_each_family_has_its_native_size():
    assert native_size(None, demo=True).side == 64
    assert native_size(SD1, demo=True).side == 64  # the demo file is an SD1 checkpoint: the demo row wins
    assert native_size(SD1).side == 512
    assert native_size(SD2).side == 512
    assert native_size(SD2, "v_prediction").side == 768
    assert native_size(SD1, "v_prediction").side == 512  # no larger v variant for SD1: stays at its size
    assert native_size(SDXL).side == 1024 and native_size(AURAFLOW).side == 1024
    assert native_size("something-new").side == 512  # SD's size for a family the table does not know
    assert set(GENERATION_FAMILIES) <= set(FAMILIES)


def test_device_note_names_the_device_and_the_cpu_cost():
    demo = native_size(None, demo=True)
    text = device_note("cpu", "", 2, demo)
    assert text.startswith("Running on CPU (2 cores)") and "64x64" in text and "512x512" in text
    assert "several minutes" in device_note("cpu", "", 1, native_size(SDXL))
    assert "(1 core)" in device_note("cpu", "", 1, None)
    assert device_note("cuda", "NVIDIA H200", 16, native_size(SDXL)) == "Running on CUDA (NVIDIA H200)."
