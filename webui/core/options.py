"""Runtime options, persisted in A1111's `config.json` format.

Why keep unknown keys: users point us at their A1111 data dir; keys we do not use yet must survive a save.
Why specs: the Settings tab, the API's POST /options and `config.json` all set the same keys, so each known key
declares its type and limits once here, and every way in gets the same validation and the same messages.
"""
from __future__ import annotations

import errno
import json
import logging
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webui.core.atomic_write import replace_file, write_new_file
from webui.core.device_policy import DEFAULT_POLICY, POLICIES
from webui.core.errors import SamplerError, ValidationError, WebUIError
from webui.core.filenames import FILENAME_TOKENS, unknown_filename_tokens
from webui.core.samplers import get_sampler

log = logging.getLogger(__name__)

Normalizer = Callable[[Any], Any]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError("must be true or false")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("must be text")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value.strip()


def _as_list(value: Any) -> list[str]:
    """A list of names; A1111's older `quicksettings` option was one comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of names")
    return [item.strip() for item in value if item.strip()]


def _int_range(low: int, high: int) -> Normalizer:
    def normalize(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number from {low} to {high}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a whole number from {low} to {high}") from None
        if not number.is_integer() or not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high} (got {value})")
        return int(number)

    return normalize


def _float_range(low: float, high: float) -> Normalizer:
    def normalize(value: Any) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return normalize


def _known_filename_tokens(pattern: str) -> None:
    unknown = unknown_filename_tokens(pattern)
    if unknown:
        known = ", ".join(f"[{name}]" for name in FILENAME_TOKENS)
        raise ValueError(f"has unknown token(s) {', '.join(unknown)}; known tokens: {known}")


def _sampler_name(value: Any) -> str:
    try:
        return get_sampler(_as_text(value)).name
    except SamplerError:
        raise ValueError(f"must be a known sampler name (got {value!r})") from None


def _folder(value: Any) -> str:
    """A folder; relative folders are under the data dir. Empty means the default."""
    return _as_text(value)


@dataclass(frozen=True)
class OptionSpec:
    """One known option: its default, the Settings tab label (and help), and how a new value is checked.

    `normalize` turns an incoming value into the stored one or raises `ValueError` with the reason (the message
    names the option); `choices` is the closed list of values, when there is one. `check` is a stricter test
    applied only to new values: a file from A1111 may hold values we cannot use (a filename token we do not know),
    which are kept and used as A1111 would, but not accepted as new input.
    """

    key: str
    default: Any
    label: str
    choices: tuple[Any, ...] | None = None
    normalize: Normalizer | None = None
    check: Callable[[Any], None] | None = None
    help: str = ""


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("sd_model_checkpoint", None, "Stable Diffusion checkpoint"),
    OptionSpec("sd_vae", "Automatic", "SD VAE"),
    OptionSpec("CLIP_stop_at_last_layers", 1, "Clip skip", normalize=_int_range(1, 12),
               help="Stop the text encoder this many layers before its end (1 = use the last layer)."),
    OptionSpec("samples_save", True, "Always save all generated images", normalize=_as_bool),
    OptionSpec("grid_save", True, "Always save all generated image grids", normalize=_as_bool,
               help="Grids are made by scripts (X/Y/Z plot) and batches; this is stored now and used once those "
                    "produce grids."),
    OptionSpec("samples_format", "png", "File format for images", ("png", "jpg", "webp"),
               normalize=lambda value: _as_text(value).lower().lstrip(".")),
    OptionSpec("samples_filename_pattern", "", "Images filename pattern", normalize=_as_text,
               check=_known_filename_tokens,
               help="Tokens such as [seed], [prompt_spaces], [prompt], [steps], [cfg], [sampler], [model_name], "
                    "[width], [height], [datetime], [date]. Files are named NNNNN-<pattern>; empty means "
                    "NNNNN-[seed]."),
    OptionSpec("outdir_txt2img_samples", "outputs/txt2img-images", "Output directory for txt2img images",
               normalize=_folder, help="Relative folders are inside the data directory. Empty means the default."),
    OptionSpec("outdir_img2img_samples", "outputs/img2img-images", "Output directory for img2img images",
               normalize=_folder, help="Relative folders are inside the data directory. Empty means the default."),
    OptionSpec("outdir_extras_samples", "outputs/extras-images", "Output directory for images from extras tab",
               normalize=_folder, help="Relative folders are inside the data directory. Empty means the default."),
    OptionSpec("quicksettings_list", ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"],
               "Quicksettings list", normalize=_as_list,
               help="Settings shown at the top of the page (the checkpoint is always shown). Takes effect when "
                    "the page is reloaded."),
    OptionSpec("default_sampler", "Euler a", "Default sampling method", normalize=_sampler_name,
               help="The txt2img sampler selected when the page is loaded."),
    OptionSpec("training_device_policy", DEFAULT_POLICY, "When a training job runs on the generation device",
               POLICIES, normalize=_as_text,
               help="Training runs in its own process with its own copy of the model. 'Move ... to RAM' keeps "
                    "generation usable (the model visits the device only while it generates); 'waits' holds "
                    "generations until training ends; 'Keep both' leaves both in device memory."),
    OptionSpec("queue_retry_interrupted", False, "Retry a queued task once when the server stopped while it ran",
               normalize=_as_bool,
               help="After a crash or a kill, a generation task that was running is marked failed; with this on it "
                    "is queued again once instead (never shown as done)."),
    OptionSpec("control_net_unit_count", 3, "ControlNet: number of units", normalize=_int_range(1, 10),
               help="How many ControlNet units txt2img and img2img show (the extension's 'Multi-ControlNet: "
                    "ControlNet unit number'). Takes effect after a restart of the UI."),
    OptionSpec("control_net_detectmap_autosaving", False, "ControlNet: save detected maps next to the images",
               normalize=_as_bool),
    OptionSpec("control_net_no_detectmap", False, "ControlNet: do not append detected maps to the output",
               normalize=_as_bool, help="Applies to the UI's gallery and the API's `images` (the extension's key)."),
    OptionSpec("live_previews_enable", True, "Show live previews of the created image", normalize=_as_bool),
    OptionSpec("show_progress_every_n_steps", 10, "Live preview display period", normalize=_int_range(-1, 32),
               help="Show a new live preview image every N sampling steps. -1: only after each image is done."),
    OptionSpec("show_progress_type", "Approx cheap", "Live preview method",
               ("Full", "Approx NN", "Approx cheap", "TAESD"), normalize=_as_text,
               help="Full: the model's VAE (slow); TAESD: the tiny decoder files in models/VAE-approx "
                    "(taesd_decoder / taesdxl_decoder .safetensors or .pth; Approx cheap without them); Approx cheap: "
                    "a fixed colour map of the latents (free). Approx NN reads as Approx cheap."),
    OptionSpec("ESRGAN_tile", 192, "Tile size for ESRGAN upscalers", normalize=_int_range(0, 512),
               help="Model upscalers (ESRGAN, Real-ESRGAN, SwinIR ...) run tile by tile to bound memory. "
                    "0 = no tiling."),
    OptionSpec("ESRGAN_tile_overlap", 8, "Tile overlap for ESRGAN upscalers", normalize=_int_range(0, 48),
               help="Pixels shared by neighbouring tiles. Low values = visible seam."),
    OptionSpec("forge_additional_modules", [], "VAE / Text Encoder", normalize=_as_list,
               help="For a Flux file that holds only the transformer: the text encoders (models/text_encoder) and "
                    "VAE (models/VAE) files to use, comma-separated (Forge's selector, same key). Empty: found "
                    "by their contents. Takes effect at the next model load."),
    OptionSpec("flow_shift", 0.0, "Flow-matching shift (AuraFlow, Flux)", normalize=_float_range(0.0, 100.0),
               help="The default 'Shift' of flow-matching samplers: more steps at high noise for higher values. "
                    "0 = the model's own (AuraFlow 1.73, Flux dev by image size, Flux schnell 1)."),
)
_SPECS = {spec.key: spec for spec in OPTION_SPECS}


def option_spec(key: str) -> OptionSpec | None:
    """The spec of a known option, None for keys we only keep (A1111 keys we do not use)."""
    return _SPECS.get(key)


def validate_options(values: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """The values as they will be stored, or `ValidationError` naming every bad value (none is applied then).

    Unknown keys pass unchanged: A1111 clients and config files carry many options we keep but do not use.
    `strict=False` (reading a stored value) skips the specs' extra `check`.
    """
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        spec = _SPECS.get(key)
        if spec is None:
            cleaned[key] = value
            continue
        try:
            new = spec.normalize(value) if spec.normalize is not None else value
            if strict and spec.check is not None:
                spec.check(new)
        except ValueError as exc:
            problems.append(f"{spec.label} ({key}) {exc}.")
            continue
        if spec.choices is not None and new not in spec.choices:
            problems.append(f"{spec.label} ({key}) must be one of {', '.join(map(str, spec.choices))} "
                            f"(got {value!r}).")
            continue
        cleaned[key] = new
    if problems:
        raise ValidationError(" ".join(problems))
    return cleaned


class Options:
    """A dict of options with defaults, validated on set, saved atomically (temp file + rename)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        # Why the file could not be used at startup ("" when it could): shown in the Settings tab and the log.
        self.load_warning = ""
        if path is not None and path.is_file():
            self._values, self.load_warning = _load_file(path)

    def get(self, key: str) -> Any:
        """The stored value, else the default. A stored value that is invalid (a hand-edited file) reads as the
        default, so one bad key never breaks generation or the Settings tab."""
        with self._lock:
            present = key in self._values
            value = self._values.get(key)
        spec = _SPECS.get(key)
        if not present:
            return spec.default if spec else None
        if spec is None:
            return value
        try:
            return validate_options({key: value}, strict=False)[key]
        except ValidationError as exc:
            log.warning("Ignoring invalid %s in %s: %s", key, self.path, exc)
            return spec.default

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            merged = {spec.key: spec.default for spec in OPTION_SPECS}
            merged.update(self._values)
            return merged

    def update(self, values: dict[str, Any], save: bool = True) -> list[str]:
        """Validate and store `values` (all or none); returns the keys whose value changed."""
        cleaned = validate_options(values)
        changed = [key for key, value in cleaned.items() if self.get(key) != value]
        with self._lock:
            merged = {**self._values, **cleaned}
            if save:
                self._write(merged)  # first: a value that cannot be saved is not applied either
            self._values = merged
        return changed

    def output_dir(self, key: str, data_dir: Path) -> Path:
        """An output-folder option as a path: relative values are inside `data_dir`, empty means the default."""
        value = str(self.get(key) or "").strip()
        spec = _SPECS.get(key)
        if not value and spec is not None:
            value = str(spec.default or "")
        folder = Path(value).expanduser()
        return folder if folder.is_absolute() else Path(data_dir) / folder

    def save(self) -> None:
        with self._lock:
            self._write(self._values)

    def _write(self, values: dict[str, Any]) -> None:
        """Atomic replace that keeps the file's mode; `WebUIError` (old file intact, no temp file) on failure."""
        if self.path is None:
            return
        try:
            text = json.dumps(values, indent=4, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise WebUIError(f"Could not save the settings to {self.path.name}: a value is not storable as JSON "
                             f"({exc}).") from exc
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise WebUIError(f"Could not save the settings to {self.path}: {exc.strerror or exc}.") from exc


def _load_file(path: Path) -> tuple[dict[str, Any], str]:
    """The stored options and a warning ("" when fine). A file that is not a JSON object is copied to a `.bad`
    file first (its exact bytes): the next save replaces `config.json`, and a user's settings must never vanish
    without a copy and a word."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        message = (f"{path.name} could not be read ({exc.strerror or exc}); the settings started from defaults "
                   f"and the next save replaces it.")
        log.warning("%s", message)
        return {}, message
    try:
        loaded = json.loads(raw.decode("utf-8"))
        problem = "" if isinstance(loaded, dict) else "it does not hold a JSON object"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        loaded, problem = None, f"it is not valid JSON: {exc}"
    if not problem:
        return loaded, ""
    try:
        backup = _keep_bad_copy(path, raw)
    except OSError as exc:
        kept = f"a copy could not be kept ({exc.strerror or exc}), so the next save replaces it"
    else:
        kept = f"the original was kept as {backup.name}"
    message = f"{path.name} could not be used ({problem}); the settings started from defaults and {kept}."
    log.warning("%s (in %s)", message, path.parent)
    return {}, message


def _keep_bad_copy(path: Path, raw: bytes) -> Path:
    """`config.json.bad`, or `config.json.bad.N` when an earlier copy exists (never overwritten)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o600
    for number in range(1000):
        backup = path.with_name(f"{path.name}.bad" + (f".{number}" if number else ""))
        try:
            write_new_file(backup, raw, mode)
        except FileExistsError:
            continue
        return backup
    raise FileExistsError(errno.EEXIST, "too many earlier copies", str(path.with_name(path.name + ".bad")))
