"""ControlNet unit widget values -> request units, and infotext -> widget values (no server needed)."""
from __future__ import annotations

import pytest

from webui.core.control import ControlUnit, infotext_entries
from webui.core.errors import ValidationError
from webui.core.infotext import build_infotext
from webui.ui.controlnet.unit_values import UNIT_FIELDS, UnitValues, pasted_units, units_from_values, widget_values

IMAGE = object()  # the UI hands PIL images through untouched


def _values(**changes) -> list:
    unit = UnitValues(**changes)
    return [getattr(unit, name) for name in UNIT_FIELDS]


def test_enabled_units_only_with_the_sliders_their_preprocessor_has():
    values = (_values(enabled=True, image=IMAGE, module="canny", model="cn [abc]", threshold_a=50.0,
                      threshold_b=150.0, processor_res=256.0)
              + _values(enabled=False, image=IMAGE, module="canny", model="cn [abc]")
              + _values(enabled=True, image=IMAGE, module="softedge_hed", model="hed", threshold_a=50.0))
    units = units_from_values(values, img2img=False)
    assert len(units) == 2
    canny, hed = units
    assert (canny.module, canny.model, canny.threshold_a, canny.threshold_b, canny.processor_res) == \
        ("canny", "cn [abc]", 50.0, 150.0, 256)
    assert canny.image is IMAGE and canny.resize_mode == "Crop and Resize" and canny.control_mode == "Balanced"
    assert (hed.threshold_a, hed.threshold_b) == (-1.0, -1.0)  # HED has no thresholds: "default", as the extension
    tile = UnitValues(enabled=True, image=IMAGE, module="tile_resample", processor_res=999).unit(0, img2img=False)
    assert tile.processor_res == -1 and tile.threshold_a == -1.0  # no resolution slider; rate left unset


def test_missing_trailing_values_mean_no_units_and_txt2img_needs_an_image():
    assert units_from_values([], img2img=False) == ()
    assert units_from_values(_values()[:5], img2img=False) == ()
    with pytest.raises(ValidationError, match="unit 0 is enabled but has no control image"):
        units_from_values(_values(enabled=True, module="canny", model="m"), img2img=False)


def test_img2img_input_means_no_image_on_the_unit():
    (unit,) = units_from_values(_values(enabled=True, image=IMAGE, use_input=True, module="depth_midas",
                                        model="m"), img2img=True)
    assert unit.image is None and unit.module == "depth_midas"
    (unit,) = units_from_values(_values(enabled=True, module="canny", model="m"), img2img=True)
    assert unit.image is None


def test_an_infotexts_units_fill_the_widgets():
    units = (ControlUnit(module="depth", model="control_depth [1234abcd]", weight=0.8, processor_res=384,
                         guidance_end=0.6, control_mode="ControlNet is more important", pixel_perfect=True),
             ControlUnit(module="canny", model="cn", threshold_a=80.0, threshold_b=160.0,
                         resize_mode="Resize and Fill"))
    text = build_infotext("a cat", "", {"Steps": 20, **dict(infotext_entries(units))})
    first, second = pasted_units(text)
    values = widget_values(first, ["None", "control_depth [99999999]", "cn [aaaa]"])
    assert values["module"] == "depth_midas" and values["model"] == "control_depth [99999999]"
    assert (values["weight"], values["guidance_end"], values["processor_res"]) == (0.8, 0.6, 384)
    assert values["control_mode"] == "ControlNet is more important" and values["pixel_perfect"] is True
    assert values["threshold_a"] is None  # -1 in the infotext: the slider keeps its preprocessor default
    second_values = widget_values(second, ["None", "cn [aaaa]"])
    assert (second_values["threshold_a"], second_values["threshold_b"]) == (80.0, 160.0)
    assert second_values["model"] == "cn [aaaa]" and second_values["resize_mode"] == "Resize and Fill"
    assert widget_values(second, ["None"])["model"] is None
    assert pasted_units("a cat\nSteps: 20") == ()
