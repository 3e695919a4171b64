"""ControlNet preprocessors: the module table (in `webui.core.control_modules`, shared with the UI and the API),
weight-free maps made with OpenCV, and the `controlnet-aux` detectors built from local annotator files."""
from webui.core.control_modules import (
    PREPROCESSORS,
    PreprocessorSpec,
    module_detail,
    module_list,
    pixel_perfect_resolution,
    preprocessor_spec,
)
from webui.engine.control.preprocessors.annotators import AnnotatorCache, require_files
from webui.engine.control.preprocessors.detect import control_array, detect, map_size

__all__ = ["PREPROCESSORS", "AnnotatorCache", "PreprocessorSpec", "control_array", "detect", "map_size",
           "module_detail", "module_list", "pixel_perfect_resolution", "preprocessor_spec", "require_files"]
