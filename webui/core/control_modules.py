"""The ControlNet preprocessor table: names, annotator files and slider specs, as the A1111 extension shows them.

One table serves the UI (dropdown, slider labels and ranges), the API's `/controlnet/module_list` and the engine's
`detect`, so a preprocessor is added in one place. Names follow sd-webui-controlnet: `name` is the extension's
internal module name (what `module_list` returns without `alias_names`), `ui_name` the alias its dropdown shows
(`depth` -> `depth_midas`, `hed` -> `softedge_hed`, ...). Either is accepted wherever a module is named. Slider
values follow the extension's `preprocessor_sliders_config` (label, default, min, max, step). `annotator_files` are
the file names the lllyasviel/Annotators repository uses; they are read from `models/ControlNet/annotators/`.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.errors import ValidationError

RESOLUTION_LABEL = "Preprocessor Resolution"


@dataclass(frozen=True)
class Slider:
    """One slider of a preprocessor: its label and range as the extension shows them."""

    name: str
    value: float
    minimum: float
    maximum: float
    step: float = 1.0

    def as_api(self) -> dict:
        """The extension's slider dict (`name`, `value`, `min`, `max`, `step`)."""
        return {"name": self.name, "value": self.value, "min": self.minimum, "max": self.maximum, "step": self.step}


@dataclass(frozen=True)
class PreprocessorSpec:
    """A preprocessor: its names, the local weight files it reads, and its resolution/threshold sliders.

    `resolution` is None when the module does not resize to a processor resolution (none, tile, inpaint);
    `threshold_a`/`threshold_b` are None when the module has no such parameter (the UI hides the slider).
    """

    name: str
    ui_name: str
    resolution: Slider | None
    threshold_a: Slider | None = None
    threshold_b: Slider | None = None
    annotator_files: tuple[str, ...] = ()
    needs_mask: bool = False
    model_free: bool = False  # works without a ControlNet model (the reference modules)

    @property
    def sliders(self) -> list[dict | None]:
        """The extension's `sliders` list: resolution first (None when absent), then the thresholds present."""
        if self.resolution is None and self.threshold_a is None and self.threshold_b is None:
            return []
        first = self.resolution.as_api() if self.resolution else None
        return [first] + [s.as_api() for s in (self.threshold_a, self.threshold_b) if s is not None]


def _res(value: int = 512) -> Slider:
    return Slider(RESOLUTION_LABEL, value, 64, 2048, 1)


_LERES_NEAR = Slider("Remove Near %", 0, 0, 100, 0.1)
_LERES_BACKGROUND = Slider("Remove Background %", 0, 0, 100, 0.1)
_HED = ("ControlNetHED.pth",)
_PIDI = ("table5_pidinet.pth",)
_BODY = "body_pose_model.pth"
_HAND = "hand_pose_model.pth"
_FACE = "facenet.pth"
_FIDELITY = Slider('Style Fidelity (only for "Balanced" mode)', 0.5, 0.0, 1.0, 0.01)

# Order: "none" first, then as the extension's dropdown sorts them (by the alias shown).
PREPROCESSORS: tuple[PreprocessorSpec, ...] = (
    PreprocessorSpec("none", "none", None),
    PreprocessorSpec("blur_gaussian", "blur_gaussian", _res(), Slider("Sigma", 9.0, 0.01, 64.0, 0.01)),
    PreprocessorSpec("canny", "canny", _res(), Slider("Canny Low Threshold", 100, 1, 255, 1),
                     Slider("Canny High Threshold", 200, 1, 255, 1)),
    PreprocessorSpec("depth_leres", "depth_leres", _res(), _LERES_NEAR, _LERES_BACKGROUND,
                     annotator_files=("res101.pth",)),
    PreprocessorSpec("depth_leres++", "depth_leres++", _res(), _LERES_NEAR, _LERES_BACKGROUND,
                     annotator_files=("res101.pth", "latest_net_G.pth")),
    PreprocessorSpec("depth", "depth_midas", _res(), annotator_files=("dpt_hybrid-midas-501f0c75.pt",)),
    PreprocessorSpec("depth_zoe", "depth_zoe", _res(), annotator_files=("ZoeD_M12_N.pt",)),
    PreprocessorSpec("inpaint", "inpaint_global_harmonious", None, needs_mask=True),
    PreprocessorSpec("inpaint_only", "inpaint_only", None, needs_mask=True),
    PreprocessorSpec("invert", "invert (from white bg & black line)", _res()),
    PreprocessorSpec("lineart_anime", "lineart_anime", _res(), annotator_files=("netG.pth",)),
    PreprocessorSpec("lineart_coarse", "lineart_coarse", _res(), annotator_files=("sk_model2.pth",)),
    PreprocessorSpec("lineart", "lineart_realistic", _res(), annotator_files=("sk_model.pth",)),
    PreprocessorSpec("lineart_standard", "lineart_standard (from white bg & black line)", _res()),
    PreprocessorSpec("mlsd", "mlsd", _res(), Slider("MLSD Value Threshold", 0.1, 0.01, 2.0, 0.01),
                     Slider("MLSD Distance Threshold", 0.1, 0.01, 20.0, 0.01),
                     annotator_files=("mlsd_large_512_fp32.pth",)),
    PreprocessorSpec("normal_bae", "normal_bae", _res(), annotator_files=("scannet.pt",)),
    PreprocessorSpec("openpose", "openpose", _res(), annotator_files=(_BODY,)),
    PreprocessorSpec("reference_adain", "reference_adain", None, _FIDELITY, model_free=True),
    PreprocessorSpec("reference_adain+attn", "reference_adain+attn", None, _FIDELITY, model_free=True),
    PreprocessorSpec("reference_only", "reference_only", None, _FIDELITY, model_free=True),
    PreprocessorSpec("openpose_face", "openpose_face", _res(), annotator_files=(_BODY, _FACE)),
    PreprocessorSpec("openpose_faceonly", "openpose_faceonly", _res(), annotator_files=(_BODY, _FACE)),
    PreprocessorSpec("openpose_full", "openpose_full", _res(), annotator_files=(_BODY, _HAND, _FACE)),
    PreprocessorSpec("openpose_hand", "openpose_hand", _res(), annotator_files=(_BODY, _HAND)),
    PreprocessorSpec("scribble_hed", "scribble_hed", _res(), annotator_files=_HED),
    PreprocessorSpec("pidinet_scribble", "scribble_pidinet", _res(), annotator_files=_PIDI),
    PreprocessorSpec("scribble_xdog", "scribble_xdog", _res(), Slider("XDoG Threshold", 32, 1, 64, 1)),
    PreprocessorSpec("shuffle", "shuffle", _res()),
    PreprocessorSpec("hed", "softedge_hed", _res(), annotator_files=_HED),
    PreprocessorSpec("hed_safe", "softedge_hedsafe", _res(), annotator_files=_HED),
    PreprocessorSpec("pidinet", "softedge_pidinet", _res(), annotator_files=_PIDI),
    PreprocessorSpec("pidinet_safe", "softedge_pidisafe", _res(), annotator_files=_PIDI),
    PreprocessorSpec("color", "t2ia_color_grid", _res()),
    PreprocessorSpec("threshold", "threshold", _res(), Slider("Binarization Threshold", 127, 0, 255, 1)),
    PreprocessorSpec("tile_resample", "tile_resample", None, Slider("Down Sampling Rate", 1.0, 1.0, 8.0, 0.01)),
)

_BY_NAME = {spec.name: spec for spec in PREPROCESSORS} | {spec.ui_name: spec for spec in PREPROCESSORS}


def preprocessor_spec(module: str | None) -> PreprocessorSpec:
    """The spec for a module named by its internal name or its alias (case-insensitive); empty/None is "none"."""
    key = (module or "none").strip()
    spec = _BY_NAME.get(key) or _BY_NAME.get(key.lower())
    if spec is None:
        raise ValidationError(f"Unknown ControlNet preprocessor {module!r}; see /controlnet/module_list for the names.")
    return spec


def module_list(alias_names: bool = False) -> list[str]:
    """The names `/controlnet/module_list` returns: internal names, or the dropdown's aliases with `alias_names`."""
    return [spec.ui_name if alias_names else spec.name for spec in PREPROCESSORS]


def module_detail(alias_names: bool = False) -> dict[str, dict]:
    """The extension's `module_detail`: per module, `model_free` and its `sliders` list."""
    return {(spec.ui_name if alias_names else spec.name): {"model_free": spec.model_free, "sliders": spec.sliders}
            for spec in PREPROCESSORS}


@dataclass(frozen=True)
class ProcessorParams:
    """The resolution and thresholds a detection runs with, after -1/None were replaced by the module's defaults."""

    resolution: int
    threshold_a: float
    threshold_b: float


def resolve_params(spec: PreprocessorSpec, processor_res: float | None, threshold_a: float | None,
                   threshold_b: float | None) -> ProcessorParams:
    """Fill unset values (None or negative, as the extension's API sends -1) from the slider defaults.

    Values are clamped to the slider's range so an API client cannot ask for a 100000 px detection.
    """
    def pick(value: float | None, slider: Slider | None, fallback: float) -> float:
        if slider is None:
            return fallback if value is None or value < 0 else float(value)
        if value is None or value < 0:
            return float(slider.value)
        return min(max(float(value), slider.minimum), slider.maximum)

    resolution = int(round(pick(processor_res, spec.resolution, 512)))
    return ProcessorParams(resolution, pick(threshold_a, spec.threshold_a, 0.0),
                           pick(threshold_b, spec.threshold_b, 0.0))


def pixel_perfect_resolution(image_size: tuple[int, int], target_size: tuple[int, int], resize_mode: str) -> int:
    """The processor resolution "Pixel Perfect" picks, as the extension computes it.

    The map's short side is scaled by the factor the resize mode will apply to the image: the larger of the two
    axis factors for Just Resize / Crop and Resize, the smaller for Resize and Fill (the image fits inside).
    `image_size` and `target_size` are (width, height).
    """
    (raw_w, raw_h), (target_w, target_h) = image_size, target_size
    k_h, k_w = target_h / raw_h, target_w / raw_w
    factor = min(k_h, k_w) if resize_mode.strip().lower() in {"resize and fill", "outer fit", "2"} else max(k_h, k_w)
    return int(round(factor * min(raw_w, raw_h)))
