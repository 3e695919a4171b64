"""The task codec: frozen requests (nested dataclasses, tuples, images through callbacks) survive JSON exactly,
and a stored row can only name the classes the caller allows."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from webui.core.requests import GenerationRequest, Img2ImgInputs
from webui.core.script_spec import ScriptSpec, XyzPlotOptions
from webui.core.task_codec import TaskCodecError, class_table, decode_value, encode_value
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import XyzOptions

CLASSES = class_table((GenerationRequest, Img2ImgInputs, ScriptSpec, XyzPlotOptions, AxisInput, XyzOptions))


class FakeImage:
    """Duck-typed like a PIL image (core does not import PIL)."""

    def __init__(self, name: str):
        self.name, self.size, self.mode = name, (8, 8), "RGB"

    def save(self, *args, **kwargs) -> None:  # pragma: no cover - never called by the codec itself
        raise AssertionError


def test_requests_scripts_and_images_round_trip_through_json():
    images = {"a": FakeImage("a"), "m": FakeImage("m")}
    request = GenerationRequest(prompt="x", styles=("s1", "s2"), extra_params=(("k", "v"),), seed=5,
                                img2img=Img2ImgInputs(init_images=(images["a"],), mask=images["m"]))
    spec = ScriptSpec.xyz_plot((AxisInput("Steps", "1,2"), AxisInput(), AxisInput()),
                               XyzOptions(vary_seeds=(True, False, True)))
    saved: list[str] = []
    data = json.loads(json.dumps(encode_value({"r": request, "s": spec},
                                              lambda image: saved.append(image.name) or image.name)))
    back = decode_value(data, CLASSES, lambda name: images[name])
    assert saved == ["a", "m"]
    assert back == {"r": request, "s": spec}
    assert isinstance(back["r"].styles, tuple) and back["r"].img2img.init_images[0] is images["a"]


def test_unknown_classes_fields_and_values_are_refused():
    with pytest.raises(TaskCodecError, match="unknown request type"):
        decode_value({"__type__": "os.system"}, CLASSES, str)
    with pytest.raises(TaskCodecError, match="unknown fields"):
        decode_value({"__type__": "AxisInput", "type": "Steps", "evil": 1}, CLASSES, str)
    with pytest.raises(TaskCodecError, match="Cannot store"):
        encode_value({1, 2}, str)

    @dataclass(frozen=True)
    class AxisInput2:
        value: int = 0

    AxisInput2.__name__ = "AxisInput"
    with pytest.raises(ValueError, match="Two task classes"):
        class_table((AxisInput, AxisInput2))
