"""An infotext as A1111's parameter dict: the `parameters` of POST /sdapi/v1/png-info.

Why a second reading of the same text: `infotext.parse_infotext` gives typed request fields for our own use
(paste, re-generate); API clients instead expect A1111's `parse_generation_parameters` dict, keyed by the infotext
labels ("Steps", "CFG scale", "Size-1", ...), with values as A1111 leaves them: strings as read from the text
("20", "7.5"), "WxH" values split into `<key>-1`/`<key>-2`, and A1111's defaults (with their own types) for keys an
infotext leaves out. Clients written against A1111 convert these themselves; giving them other types would break
them. Pure Python.
"""
from __future__ import annotations

import math
import re

from webui.core.infotext import SIZE_RE, parse_infotext
from webui.core.prompt_attention import BREAK_TEXT, parse_attention

# Keys A1111 adds when the infotext does not have them, in A1111's order and with A1111's values and types.
_DEFAULTS_BEFORE_HIRES_FIX: tuple[tuple[str, object], ...] = (
    ("Hires sampler", "Use same sampler"),
    ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"),
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_DEFAULTS_AFTER_HIRES_FIX: tuple[tuple[str, object], ...] = (
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)

# Versions at which A1111 changed behaviour that old infotexts must keep (A1111's `infotext_versions`):
# (release, stage, number); stage -1 = pre-release, 0 = release, 1 = post-release ("-225": 225 commits later).
_V160 = ((1, 6), 0, 0)
_V170_TSNR = ((1, 7), 1, 225)
_V180 = ((1, 8), 0, 0)
_VERSION_RE = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d*)|(?:[-_.]?post)?"
                         r"[-_.]?(\d+))?$", re.IGNORECASE)
_FIRST_PASS_PIXELS = 512 * 512


def parse_generation_parameters(text: str) -> dict[str, object]:
    """`text` read the way A1111's `parse_generation_parameters` reads it (with A1111's default settings:
    no style extraction, every key pasted, backwards-compatibility options from the `Version` key)."""
    parsed = parse_infotext(text)
    result: dict[str, object] = {}
    for key, value in parsed.params.items():
        size = SIZE_RE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    result["Prompt"] = parsed.prompt
    result["Negative prompt"] = parsed.negative_prompt
    result.setdefault("Clip skip", "1")  # missing means 1, A1111's default
    hypernet = result.get("Hypernet")
    if hypernet is not None:
        result["Prompt"] = f"{result['Prompt']}<hypernet:{hypernet}:{result.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in result:
        result["Hires resize-1"] = result["Hires resize-2"] = 0
    for key, value in _DEFAULTS_BEFORE_HIRES_FIX:
        result.setdefault(key, value)
    _old_hires_fix(result)
    for key, value in _DEFAULTS_AFTER_HIRES_FIX:
        result.setdefault(key, value)
    if result["FP8 weight"] != "Disable":
        result.setdefault("Cache FP16 weight for LoRA", False)
    if "Emphasis" not in result and _uses_emphasis(parsed.prompt, parsed.negative_prompt):
        result["Emphasis"] = "Original"
    result.setdefault("Refiner switch by sampling steps", False)
    _backcompat(result)
    return result


def _old_hires_fix(result: dict[str, object]) -> None:
    """Infotexts from before A1111's hires rework name the first pass ("First pass size"): that is the size
    generated at, and "Size" was the final (hires) size."""
    first_w, first_h = result.get("First pass size-1"), result.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        first_w, first_h = int(first_w), int(first_h)
        width, height = int(result.get("Size-1", 512)), int(result.get("Size-2", 512))
    except (TypeError, ValueError):
        return
    if first_w == 0 or first_h == 0:
        first_w, first_h = _first_pass_size(width, height)
    result["Size-1"], result["Size-2"] = first_w, first_h
    result["Hires resize-1"], result["Hires resize-2"] = width, height


def _first_pass_size(width: int, height: int) -> tuple[int, int]:
    """The old automatic first pass: about 512x512 pixels with the final aspect, rounded up to multiples of 64."""
    if width <= 0 or height <= 0:
        return width, height
    scale = math.sqrt(_FIRST_PASS_PIXELS / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _uses_emphasis(prompt: str, negative_prompt: str) -> bool:
    """Any `(x)`, `[x]` or `(x:w)` with a weight other than 1 in either prompt."""
    pieces = [*parse_attention(prompt), *parse_attention(negative_prompt)]
    return any(weight != 1.0 and text != BREAK_TEXT for text, weight in pieces)


def _backcompat(result: dict[str, object]) -> None:
    """Options A1111 turns on for infotexts written by older versions, so they re-generate the same image."""
    version = _version_key(result.get("Version"))
    if version is None:
        return
    if version < _V160 and "[" in str(result.get("Prompt", "")):
        result["Old prompt editing timelines"] = True
    if version < _V160 and result.get("Sampler", "") in ("DDIM", "PLMS"):
        result["Pad conds v0"] = True
    if version < _V170_TSNR:
        result["Downcast alphas_cumprod"] = True
    if version < _V180 and result.get("Refiner"):
        result["Refiner switch by sampling steps"] = True


def _version_key(value: object) -> tuple[tuple[int, ...], int, int] | None:
    """"v1.7.0-225-gabc123" -> ((1, 7), 1, 225); None when `value` is not a version (other apps' strings).

    Like A1111, only the part before a second "-" counts (git's "-<commits>-g<hash>" suffix). Trailing zero
    components are dropped, so 1.6 and 1.6.0 compare equal.
    """
    if not isinstance(value, str):
        return None
    text = "-".join(value.strip().split("-")[:2])
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    release = [int(part) for part in match.group(1).split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    if match.group(2):
        return tuple(release), -1, int(match.group(3) or 0)
    if match.group(4):
        return tuple(release), 1, int(match.group(4))
    return tuple(release), 0, 0
