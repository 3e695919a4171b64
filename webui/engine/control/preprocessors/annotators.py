"""The `controlnet-aux` detectors, built from local annotator files only (never the hub).

Every detector is constructed here from its network class and the file that lllyasviel/Annotators ships for it
(`ControlNetHED.pth`, `table5_pidinet.pth`, ...), read from `models/ControlNet/annotators/`. Files are checked
before anything is built, so a missing file is a clear `ModelNotFoundError` naming the file and the folder, raised
at once: `controlnet_aux` only calls `hf_hub_download` when given something that is not a folder, and we always
give it the folder after checking the file exists. `torch.load` runs with its default `weights_only=True`, so an
annotator file that would need code execution to unpickle is refused.

`controlnet_aux` takes several seconds to import (it imports every detector), so it is imported on first use.
"""
from __future__ import annotations

import importlib
import pickle
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webui.core.control_modules import PreprocessorSpec
from webui.core.errors import ModelLoadError, ModelNotFoundError


def require_files(spec: PreprocessorSpec, folder: Path) -> list[Path]:
    """The annotator files `spec` needs, as paths in `folder`; a clear error for the first one missing."""
    paths = [Path(folder) / name for name in spec.annotator_files]
    for path in paths:
        if not path.is_file():
            raise ModelNotFoundError(
                f"The ControlNet preprocessor {spec.ui_name!r} needs the annotator file {path.name!r} in "
                f"{Path(folder)}; put it there (it is in the lllyasviel/Annotators repository). Nothing is "
                f"downloaded automatically.")
    return paths


def _aux(module: str) -> Any:
    """A `controlnet_aux` submodule, imported on first use (its import re-registers timm models, which warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return importlib.import_module(f"controlnet_aux.{module}")


def _released(module: str, detector: str):
    """A loader for a detector whose `from_pretrained` reads one released file from a local folder."""

    def load(folder: Path, files: list[Path]) -> Any:
        return getattr(_aux(module), detector).from_pretrained(str(folder), filename=files[0].name)

    return load


_hed = _released("hed", "HEDdetector")
_pidinet = _released("pidi", "PidiNetDetector")
_midas = _released("midas", "MidasDetector")
_zoe = _released("zoe", "ZoeDetector")
_mlsd = _released("mlsd", "MLSDdetector")
_normal_bae = _released("normalbae", "NormalBaeDetector")
_lineart_anime = _released("lineart_anime", "LineartAnimeDetector")


def _lineart(folder: Path, files: list[Path]) -> Any:
    """One lineart generator (realistic `sk_model.pth` or coarse `sk_model2.pth`), used for both slots, so only
    the file the chosen module needs must exist."""
    import torch

    module = _aux("lineart")
    generator = module.Generator(3, 1, 3)
    generator.load_state_dict(torch.load(files[0], map_location="cpu"))
    generator.eval()
    return module.LineartDetector(generator, generator)


def _leres(folder: Path, files: list[Path]) -> Any:
    """LeReS depth; the pix2pix refiner (`latest_net_G.pth`) only for depth_leres++ (boost)."""
    if len(files) == 1:
        import torch

        module = _aux("leres")
        checkpoint = torch.load(files[0], map_location="cpu")
        model = module.RelDepthModel(backbone="resnext101")
        model.load_state_dict(module.strip_prefix_if_present(checkpoint["depth_model"], "module."), strict=True)
        model.eval()
        return module.LeresDetector(model, None)
    return _aux("leres").LeresDetector.from_pretrained(str(folder), filename=files[0].name,
                                                       pix2pix_filename=files[1].name)


def _openpose(folder: Path, files: list[Path]) -> Any:
    """Body always; the hand and face networks only when the module draws them (and so needs their files)."""
    module = _aux("open_pose")
    by_name = {path.name: path for path in files}
    body = module.Body(str(by_name["body_pose_model.pth"]))
    hand = module.Hand(str(by_name["hand_pose_model.pth"])) if "hand_pose_model.pth" in by_name else None
    face = module.Face(str(by_name["facenet.pth"])) if "facenet.pth" in by_name else None
    return module.OpenposeDetector(body, hand, face)


# Module name -> the detector builder; modules that share a network share a builder (and a cached detector).
LOADERS: dict[str, Callable[[Path, list[Path]], Any]] = {
    "hed": _hed, "hed_safe": _hed, "scribble_hed": _hed,
    "pidinet": _pidinet, "pidinet_safe": _pidinet, "pidinet_scribble": _pidinet,
    "depth": _midas, "depth_zoe": _zoe, "depth_leres": _leres, "depth_leres++": _leres,
    "mlsd": _mlsd, "normal_bae": _normal_bae, "lineart_anime": _lineart_anime,
    "lineart": _lineart, "lineart_coarse": _lineart,
    "openpose": _openpose, "openpose_face": _openpose, "openpose_faceonly": _openpose,
    "openpose_full": _openpose, "openpose_hand": _openpose,
}


class AnnotatorCache:
    """Detectors loaded so far, keyed by builder and files, so a second detection does not reload the network.

    One per app (held by whoever runs detections); `clear()` frees them, e.g. when memory is needed.
    """

    def __init__(self) -> None:
        self._detectors: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, spec: PreprocessorSpec, folder: Path, device: str = "cpu") -> Any:
        """The detector for `spec`, from the files in `folder`, on `device`; loads it the first time."""
        files = require_files(spec, folder)
        builder = LOADERS[spec.name]
        key = (builder.__name__, tuple(str(path) for path in files), device)
        with self._lock:
            detector = self._detectors.get(key)
            if detector is None:
                detector = self._load(spec, builder, folder, files)
                if device != "cpu" and hasattr(detector, "to"):
                    detector = detector.to(device) or detector
                self._detectors[key] = detector
            return detector

    @staticmethod
    def _load(spec: PreprocessorSpec, builder: Callable, folder: Path, files: list[Path]) -> Any:
        try:
            return builder(Path(folder), files)
        except (pickle.UnpicklingError, RuntimeError, KeyError, ValueError, OSError, EOFError, AttributeError,
                TypeError) as exc:
            names = ", ".join(path.name for path in files)
            raise ModelLoadError(f"Could not load the annotator for {spec.ui_name!r} from {names} in {folder}: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}") from exc

    def clear(self) -> None:
        """Forget every loaded detector (their memory is freed when nothing else holds them)."""
        with self._lock:
            self._detectors.clear()
