"""`detect`: one control map from one image, for any module of the preprocessor table.

The map comes back at the processor resolution: its short side is `processor_res` and its aspect is the input's
(the extension's behaviour; the engine then fits it to the generation size with the unit's resize mode). Modules
without a resolution slider (none, tile, inpaint) keep the input's size (tile divides it by its rate).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from webui.core.control_modules import PreprocessorSpec, preprocessor_spec, resolve_params
from webui.engine.control.preprocessors import weight_free
from webui.engine.control.preprocessors.annotators import AnnotatorCache

# Arguments each controlnet-aux detector is called with, by module (thresholds are passed where the module has them).
_DETECTOR_ARGS: dict[str, dict] = {
    "hed_safe": {"safe": True}, "scribble_hed": {"scribble": True},
    "pidinet_safe": {"safe": True}, "pidinet_scribble": {"scribble": True, "safe": True},
    "lineart_coarse": {"coarse": True},
    "depth_leres++": {"boost": True},
    "openpose": {"include_body": True}, "openpose_hand": {"include_body": True, "include_hand": True},
    "openpose_face": {"include_body": True, "include_face": True},
    "openpose_faceonly": {"include_body": False, "include_face": True},
    "openpose_full": {"include_body": True, "include_hand": True, "include_face": True},
}
_THRESHOLD_ARGS: dict[str, tuple[str, str | None]] = {
    "mlsd": ("thr_v", "thr_d"), "depth_leres": ("thr_a", "thr_b"), "depth_leres++": ("thr_a", "thr_b"),
}


def map_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the short side at `resolution` and the aspect ratio kept."""
    scale = resolution / min(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def _resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area interpolation to shrink (no aliasing), cubic to enlarge, as the extension resizes its inputs."""
    height, width = array.shape[:2]
    if (width, height) == size:
        return array
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _weight_free(spec: PreprocessorSpec, rgb: np.ndarray, a: float, b: float, mask: np.ndarray | None,
                 seed: int) -> np.ndarray | None:
    """The map of a weight-free module, or None when the module needs an annotator."""
    table: dict[str, Callable[[], np.ndarray]] = {
        "none": lambda: rgb,
        "reference_only": lambda: rgb,  # the reference modules use the image itself (reference.py)
        "reference_adain": lambda: rgb,
        "reference_adain+attn": lambda: rgb,
        "canny": lambda: weight_free.canny(rgb, a, b),
        "invert": lambda: weight_free.invert(rgb),
        "threshold": lambda: weight_free.threshold(rgb, a),
        "blur_gaussian": lambda: weight_free.blur_gaussian(rgb, a),
        "color": lambda: weight_free.color_grid(rgb),
        "scribble_xdog": lambda: weight_free.scribble_xdog(rgb, a),
        "lineart_standard": lambda: weight_free.lineart_standard(rgb),
        "shuffle": lambda: weight_free.shuffle(rgb, seed),
        "tile_resample": lambda: weight_free.tile_resample(rgb, a),
        "inpaint": lambda: weight_free.inpaint_map(rgb, mask),
        "inpaint_only": lambda: weight_free.inpaint_map(rgb, mask),
    }
    make = table.get(spec.name)
    return make() if make is not None else None


def _with_annotator(spec: PreprocessorSpec, rgb: np.ndarray, a: float, b: float, folder: Path,
                    cache: AnnotatorCache, device: str) -> np.ndarray:
    detector = cache.get(spec, folder, device)
    resolution = min(rgb.shape[:2])
    kwargs = dict(_DETECTOR_ARGS.get(spec.name, {}))
    names = _THRESHOLD_ARGS.get(spec.name)
    if names is not None:
        kwargs[names[0]] = a
        if names[1] is not None:
            kwargs[names[1]] = b
    result = detector(rgb, detect_resolution=resolution, image_resolution=resolution, output_type="np", **kwargs)
    return weight_free.as_rgb(np.asarray(result, dtype=np.uint8))


def _mask_array(mask: Image.Image | None, image: Image.Image) -> np.ndarray | None:
    """The mask as HxW uint8 (255 = masked): the given mask, else the image's own alpha holes (transparent =
    masked, how the extension reads a mask painted into the control image), else None."""
    if mask is not None:
        return np.asarray(mask.convert("L"), dtype=np.uint8)
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"), dtype=np.uint8)
        if alpha.min() < 128:
            return np.where(alpha < 128, 255, 0).astype(np.uint8)
    return None


def detect(module: str, image: Image.Image, processor_res: float | None = None, threshold_a: float | None = None,
           threshold_b: float | None = None, annotators_dir: Path | None = None, mask: Image.Image | None = None,
           *, cache: AnnotatorCache | None = None, device: str = "cpu", seed: int = 0) -> Image.Image:
    """The control map of `image` for `module` (internal name or alias).

    Unset values (None or -1) take the module's slider defaults. `annotators_dir` is where the module's weight
    files are (`models/ControlNet/annotators`); `cache` keeps loaded detectors between calls (a throwaway one is
    used when None). `seed` drives the random modules (shuffle). Inpaint maps come back RGBA with the mask as alpha.
    """
    spec = preprocessor_spec(module)
    params = resolve_params(spec, processor_res, threshold_a, threshold_b)
    mask_array = _mask_array(mask, image)
    rgb = weight_free.as_rgb(np.asarray(image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else
                                        image.convert("RGB"), dtype=np.uint8))
    if spec.resolution is not None:
        size = map_size(rgb.shape[1], rgb.shape[0], params.resolution)
        rgb = _resized(rgb, size)
    else:
        size = (rgb.shape[1], rgb.shape[0])
    result = _weight_free(spec, rgb, params.threshold_a, params.threshold_b, mask_array, seed)
    if result is None:
        if annotators_dir is None:
            raise ValueError("annotators_dir is required for preprocessors with weight files")
        result = _with_annotator(spec, rgb, params.threshold_a, params.threshold_b, Path(annotators_dir),
                                 cache or AnnotatorCache(), device)
    if spec.resolution is not None and (result.shape[1], result.shape[0]) != size:
        result = cv2.resize(result, size, interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(np.ascontiguousarray(result), "RGBA" if result.shape[2] == 4 else "RGB")


def control_array(control_map: Image.Image) -> np.ndarray:
    """A map as the ControlNet input: HxWx3 float32 in [0, 1], masked pixels (alpha 255 of an inpaint map) at -1,
    which is what the ControlNet inpaint model was trained to read as "to be filled"."""
    rgba = control_map.mode == "RGBA"
    array = np.asarray(control_map.convert("RGBA" if rgba else "RGB"), dtype=np.float32) / 255.0
    if not rgba:
        return array
    pixels = array[:, :, :3].copy()
    pixels[array[:, :, 3] > 0.5] = -1.0
    return pixels
