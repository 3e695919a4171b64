"""ControlNet preprocessors: weight-free maps (size and content), annotators from local files, clear errors."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from webui.core.control_modules import PREPROCESSORS, module_detail, module_list, pixel_perfect_resolution
from webui.core.errors import ModelLoadError, ModelNotFoundError, ValidationError
from webui.engine.control.preprocessors import AnnotatorCache, control_array, detect, map_size

WEIGHT_FREE = [spec.ui_name for spec in PREPROCESSORS if not spec.annotator_files]


@pytest.fixture(scope="module")
def square() -> Image.Image:
    """A white square on black, 300x200 (not square, so aspect handling shows)."""
    image = Image.new("RGB", (300, 200), "black")
    ImageDraw.Draw(image).rectangle((100, 50, 200, 150), fill="white")
    return image


@pytest.fixture(scope="module")
def drawing() -> Image.Image:
    """Black lines on white, like a sketch."""
    image = Image.new("RGB", (160, 160), "white")
    ImageDraw.Draw(image).line((20, 20, 140, 140), fill="black", width=3)
    ImageDraw.Draw(image).line((20, 140, 140, 20), fill="black", width=3)
    return image


@pytest.fixture(scope="module")
def mask() -> Image.Image:
    image = Image.new("L", (300, 200), 0)
    ImageDraw.Draw(image).rectangle((0, 0, 60, 60), fill=255)
    return image


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("module", WEIGHT_FREE)
def test_each_weight_free_module_gives_a_map_of_the_right_size(module, square, mask):
    out = detect(module, square, 256, -1, -1, mask=mask)
    spec = next(s for s in PREPROCESSORS if s.ui_name == module)
    if spec.resolution is not None:
        assert out.size == (384, 256)  # short side = processor res, aspect 3:2 kept
    elif module == "tile_resample":
        assert out.size == square.size  # default rate 1 keeps the image
    else:
        assert out.size == square.size
    assert out.mode == ("RGBA" if spec.needs_mask else "RGB")


def test_canny_finds_the_square_edges_and_thresholds_matter(square):
    edges = _array(detect("canny", square, 200, 100, 200))[:, :, 0]
    assert edges.shape == (200, 300)
    rows, cols = np.nonzero(edges)
    assert rows.size > 300  # four sides of a 100 px square
    assert abs(rows.min() - 50) <= 2 and abs(rows.max() - 150) <= 2
    assert abs(cols.min() - 100) <= 2 and abs(cols.max() - 200) <= 2
    assert edges[100, 150] == 0 and edges[10, 10] == 0  # inside and outside are flat
    faint = square.point(lambda v: v // 8)  # contrast 31: above both thresholds only when they are low
    assert _array(detect("canny", faint, 200, 100, 200)).max() == 0
    assert _array(detect("canny", faint, 200, 10, 20)).max() == 255


def test_invert_inverts_and_threshold_binarises(drawing):
    inverted = _array(detect("invert", drawing, 160))
    assert np.array_equal(inverted, 255 - _array(drawing))
    grey = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
    binary = _array(detect("threshold", grey, 64, 127))
    assert set(np.unique(binary)) == {0, 255}
    assert binary[:10].max() == 0 and binary[-10:].min() == 255  # the gradient runs dark (top) to light


def test_lineart_standard_and_xdog_draw_white_lines_where_the_sketch_is_black(drawing):
    for module in ("lineart_standard", "scribble_xdog"):
        lines = _array(detect(module, drawing, 160, 32))[:, :, 0]
        assert lines[40, 40] > 100 and lines[80, 80] > 50, module  # on a line, at the crossing
        assert lines[10, 80] == 0 and lines[150, 80] == 0, module  # plain paper


def test_shuffle_keeps_colours_scrambles_layout_and_is_seeded(square):
    first = _array(detect("shuffle", square, 200, seed=1))
    assert np.array_equal(first, _array(detect("shuffle", square, 200, seed=1)))
    assert not np.array_equal(first, _array(detect("shuffle", square, 200, seed=2)))
    assert not np.array_equal(first, _array(square))
    assert set(np.unique(first)) <= set(range(256)) and first.max() > 200 and first.min() < 50


def test_tile_downsamples_by_the_rate_and_blur_smooths(square):
    assert detect("tile_resample", square, -1, 2.0).size == (150, 100)
    assert detect("tile_resample", square, -1, 1.0).size == (300, 200)
    blurred = _array(detect("blur_gaussian", square, 200, 5.0))
    assert 0 < blurred[50, 150, 0] < 255  # the square's border is soft now


def test_inpaint_carries_the_mask_and_becomes_minus_one(square, mask):
    out = detect("inpaint_only", square, mask=mask)
    alpha = np.asarray(out.getchannel("A"))
    assert alpha[10, 10] == 255 and alpha[150, 250] == 0
    control = control_array(out)
    assert control.shape == (200, 300, 3)
    assert (control[10, 10] == -1).all() and control[100, 150].min() == 1.0 and control[190, 290].max() == 0.0
    with pytest.raises(ValidationError, match="mask"):
        detect("inpaint", square)


def test_none_passes_the_image_and_module_names_resolve_both_ways(square):
    assert np.array_equal(_array(detect("none", square)), _array(square))
    assert np.array_equal(_array(detect("invert", square, 200)),
                          _array(detect("invert (from white bg & black line)", square, 200)))
    with pytest.raises(ValidationError, match="Unknown ControlNet preprocessor"):
        detect("no-such-module", square)


def test_module_table_is_the_extensions_shape():
    names, aliases = module_list(), module_list(alias_names=True)
    assert names[0] == aliases[0] == "none" and len(names) == len(set(names))
    assert {"canny", "depth", "hed", "openpose_full", "lineart", "mlsd", "normal_bae", "shuffle"} <= set(names)
    assert {"depth_midas", "softedge_hed", "lineart_realistic", "scribble_pidinet"} <= set(aliases)
    detail = module_detail()
    assert detail["canny"]["sliders"][1] == {"name": "Canny Low Threshold", "value": 100, "min": 1, "max": 255,
                                             "step": 1}
    assert detail["tile_resample"]["sliders"][0] is None  # no resolution slider, as the extension sends it
    assert detail["none"]["sliders"] == []
    assert map_size(300, 200, 512) == (768, 512)
    assert pixel_perfect_resolution((300, 200), (512, 512), "Crop and Resize") == 512
    assert pixel_perfect_resolution((300, 200), (512, 512), "Resize and Fill") == 341


# --- annotators from local files ---------------------------------------------------------------------------------

def _hed_file(folder):
    from controlnet_aux.hed import ControlNetHED_Apache2

    torch.manual_seed(0)
    network = ControlNetHED_Apache2()
    torch.save(network.state_dict(), folder / "ControlNetHED.pth")  # the real file: a plain state dict
    return network.state_dict()


def _pidinet_file(folder):
    from controlnet_aux.pidi.model import pidinet

    torch.manual_seed(1)
    network = pidinet()
    # The real table5_pidinet.pth: {"state_dict": ...} saved from a DataParallel model ("module." prefixes).
    torch.save({"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}},
               folder / "table5_pidinet.pth")
    return network.state_dict()


def _lineart_file(folder):
    from controlnet_aux.lineart import Generator

    torch.manual_seed(2)
    network = Generator(3, 1, 3)
    torch.save(network.state_dict(), folder / "sk_model.pth")  # plain state dict, as released
    return network.state_dict()


def _mlsd_file(folder):
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

    torch.manual_seed(3)
    network = MobileV2_MLSD_Large()
    torch.save(network.state_dict(), folder / "mlsd_large_512_fp32.pth")
    return network.state_dict()


@pytest.fixture(scope="module")
def annotators_dir(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("annotators")
    return folder, {"hed": _hed_file(folder), "pidinet": _pidinet_file(folder), "lineart": _lineart_file(folder),
                    "mlsd": _mlsd_file(folder)}


@pytest.fixture
def no_hub(monkeypatch):
    """Any hub download fails the test loudly (the detectors must only read local files)."""
    import controlnet_aux.hed
    import controlnet_aux.lineart
    import controlnet_aux.mlsd
    import controlnet_aux.pidi

    def refuse(*args, **kwargs):
        raise AssertionError(f"hub download attempted: {args}")

    for module in (controlnet_aux.hed, controlnet_aux.pidi, controlnet_aux.lineart, controlnet_aux.mlsd):
        monkeypatch.setattr(module, "hf_hub_download", refuse)


@pytest.mark.parametrize(("module", "key", "attribute"), [
    ("softedge_hed", "hed", "netNetwork"), ("scribble_pidinet", "pidinet", "netNetwork"),
    ("lineart_realistic", "lineart", "model"), ("mlsd", "mlsd", "model")])
def test_annotators_load_from_the_real_file_layout(annotators_dir, no_hub, square, module, key, attribute):
    folder, saved = annotators_dir
    cache = AnnotatorCache()
    out = detect(module, square, 128, annotators_dir=folder, cache=cache)
    assert out.size == (192, 128) and out.mode == "RGB"
    detector = cache.get(next(s for s in PREPROCESSORS if s.ui_name == module), folder)
    loaded = getattr(detector, attribute).state_dict()
    assert all(torch.equal(loaded[name], saved[key][name]) for name in saved[key])  # the file's weights
    assert detect(module, square, 128, annotators_dir=folder, cache=cache).size == (192, 128)


def test_hed_map_follows_the_image(annotators_dir, no_hub, square):
    folder, _ = annotators_dir
    cache = AnnotatorCache()
    blank = _array(detect("softedge_hed", Image.new("RGB", (300, 200)), 128, annotators_dir=folder, cache=cache))
    shaped = _array(detect("softedge_hed", square, 128, annotators_dir=folder, cache=cache))
    assert not np.array_equal(blank, shaped)


@pytest.mark.parametrize("module", [s.ui_name for s in PREPROCESSORS if s.annotator_files])
def test_a_missing_annotator_file_is_a_clear_fast_error(tmp_path, no_hub, square, module):
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as error:
        detect(module, square, 128, annotators_dir=tmp_path / "annotators")
    assert time.monotonic() - started < 2.0
    message = str(error.value)
    spec = next(s for s in PREPROCESSORS if s.ui_name == module)
    assert spec.annotator_files[0] in message and str(tmp_path / "annotators") in message


def test_a_corrupt_annotator_file_is_a_load_error(tmp_path, square):
    (tmp_path / "ControlNetHED.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="ControlNetHED.pth"):
        detect("softedge_hed", square, 128, annotators_dir=tmp_path)
