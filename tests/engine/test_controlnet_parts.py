"""ControlNet parts without a pipeline: resize modes, pixel perfect, the control modes' scales and halves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from webui.core.control import ControlUnit
from webui.engine.control.engine import ControlEngine
from webui.engine.control.images import fit_map, map_tensor
from webui.engine.control.library import ControlNetLibrary
from webui.engine.control.modes import ModedMultiControlNet, soft_scales
from webui.engine.runtime.memory import MemoryOptimizer, MemoryOptions
from webui.testing.tiny_controlnet import build_tiny_controlnet


def wide() -> Image.Image:
    """100x50: left half red, right half blue, a white 1-px frame."""
    array = np.zeros((50, 100, 3), np.uint8)
    array[:, :50] = (200, 0, 0)
    array[:, 50:] = (0, 0, 200)
    array[0, :] = array[-1, :] = array[:, 0] = array[:, -1] = 255
    return Image.fromarray(array)


def test_resize_modes():
    stretched = np.asarray(fit_map(wide(), (40, 40), "Just Resize"))
    assert stretched.shape == (40, 40, 3)
    cropped = np.asarray(fit_map(wide(), (40, 40), "Crop and Resize"))
    assert cropped.shape == (40, 40, 3) and cropped[20, 19, 0] > 150 and cropped[20, 21, 2] > 150  # the middle
    filled = np.asarray(fit_map(wide(), (40, 40), "Resize and Fill"))
    assert filled.shape == (40, 40, 3)
    assert (filled[0, 20] == 255).all() and (filled[39, 20] == 255).all()  # border: the edges' median (white)
    rgba = Image.new("RGBA", (20, 10), (10, 10, 10, 255))
    padded = fit_map(rgba, (20, 20), "Resize and Fill")
    assert padded.mode == "RGBA" and padded.getpixel((0, 0))[3] == 0 and padded.getpixel((10, 10))[3] == 255


def test_map_tensor_marks_inpaint_pixels():
    rgba = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    rgba.putpixel((1, 1), (255, 255, 255, 255))
    tensor = map_tensor(rgba, torch.device("cpu"), torch.float32)
    assert tensor.shape == (1, 3, 4, 4) and tensor[0, :, 1, 1].tolist() == [-1, -1, -1]
    assert tensor[0, :, 0, 0].tolist() == [1, 1, 1]


def test_pixel_perfect_follows_the_target_size(tmp_path):
    engine = ControlEngine(ControlNetLibrary(tmp_path, lambda: 0), tmp_path / "annotators",
                           MemoryOptimizer(MemoryOptions()))
    unit = ControlUnit(module="canny", processor_res=512, pixel_perfect=True, model="m")
    assert engine.detect_map(unit, wide(), (64, 64)).size == (128, 64)  # short side 64: 64/50 * 50
    assert engine.detect_map(ControlUnit(module="canny", processor_res=100), wide(), (64, 64)).size == (200, 100)


def test_soft_injection_scales_are_the_extensions():
    scales = soft_scales(13)
    assert scales[-1] == 1.0 and scales[0] == pytest.approx(0.825 ** 12) and len(soft_scales(10)) == 10


def test_controlnet_is_more_important_controls_the_conditional_half_only():
    torch.manual_seed(0)
    nets = [build_tiny_controlnet(seed=1)]
    inputs = (torch.randn(2, 4, 16, 16), torch.tensor(10), torch.randn(2, 77, 32), [torch.rand(2, 3, 32, 32)], [1.0])
    with torch.inference_mode():
        balanced = ModedMultiControlNet(nets, ["Balanced"])(*inputs)
        prompt = ModedMultiControlNet(nets, ["My prompt is more important"])(*inputs)
        control = ModedMultiControlNet(nets, ["ControlNet is more important"])(*inputs)
    assert torch.allclose(prompt[1], balanced[1] * soft_scales(len(balanced[0]) + 1)[-1])
    assert torch.allclose(prompt[0][0], balanced[0][0] * soft_scales(len(balanced[0]) + 1)[0])
    assert torch.count_nonzero(control[1][0]) == 0 and torch.allclose(control[1][1], prompt[1][1], atol=1e-5)
