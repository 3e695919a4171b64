"""ControlNet units in core: name tables (name or index), validation, and the infotext entry round trip."""
from __future__ import annotations

import pytest

from webui.core.control import (
    CONTROL_MODES,
    CONTROL_RESIZE_MODES,
    ControlUnit,
    control_mode_name,
    infotext_entries,
    parse_unit_infotext,
    resize_mode_name,
    units_from_params,
)
from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext, parse_infotext
from webui.core.requests import GenerationRequest


def test_modes_by_name_index_and_case():
    assert control_mode_name(2) == "ControlNet is more important"
    assert control_mode_name("my prompt is more important") == CONTROL_MODES[1]
    assert resize_mode_name(0) == "Just Resize"
    assert resize_mode_name("1") == "Crop and Resize"
    assert resize_mode_name("Resize and fill") == CONTROL_RESIZE_MODES[2]
    with pytest.raises(ValidationError, match="Unknown ControlNet control mode"):
        control_mode_name("loud")
    with pytest.raises(ValidationError):
        resize_mode_name(7)


def test_the_entry_has_the_extension_shape_and_round_trips_through_an_infotext():
    unit = ControlUnit(module="canny", model="tiny", threshold_a=100.0, threshold_b=200.0, weight=0.75,
                       guidance_end=0.5, control_mode="My prompt is more important")
    off = ControlUnit(enabled=False, model="other")
    entries = infotext_entries([unit, off], ["tiny [0123abcd]", None])
    assert entries == [("ControlNet 0", "Module: canny, Model: tiny [0123abcd], Weight: 0.75, Resize Mode: Crop and "
                        "Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, "
                        "Guidance End: 0.5, Pixel Perfect: False, Control Mode: My prompt is more important")]
    text = build_infotext("a cat", "", {"Steps": 20, "Sampler": "Euler", "Seed": 1, **dict(entries)})
    (restored,) = units_from_params(parse_infotext(text).params)
    assert restored == ControlUnit(module="canny", model="tiny [0123abcd]", threshold_a=100.0, threshold_b=200.0,
                                   weight=0.75, guidance_end=0.5, control_mode="My prompt is more important")


def test_a_malformed_entry_keeps_defaults_for_what_it_cannot_read():
    unit = parse_unit_infotext("Module: depth, Weight: heavy, Control Mode: 9, Pixel Perfect: True")
    assert (unit.module, unit.weight, unit.control_mode, unit.pixel_perfect) == ("depth", 1.0, "Balanced", True)


def test_enabled_units_are_validated_in_the_request():
    bad = ControlUnit(model="m", weight=3.0, guidance_start=0.8, guidance_end=0.2)
    with pytest.raises(ValidationError, match="unit 0: weight") as info:
        GenerationRequest(control_units=(bad,)).validate()
    assert "guidance start/end" in str(info.value)
    GenerationRequest(control_units=(ControlUnit(enabled=False, weight=9.0),)).validate()
    with pytest.raises(ValidationError, match="has no model"):
        GenerationRequest(control_units=(ControlUnit(),)).validate()
