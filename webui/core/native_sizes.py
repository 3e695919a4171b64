"""A model's native image size, read from the family table (`webui.core.model_families`: each family's default
width/height, with variants for SD 2.x 768-v and the shipped demo model), and the device note that names it.

Why: a model draws best at the size it was trained at (the 64 px demo model draws 25 blobs at 512x512 and takes
50 times longer); the txt2img/img2img sizes, the hires-fix hint and the CPU cost hint all follow the selected model
from that one table. The API keeps A1111's defaults (512x512): API clients send their sizes.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.model_families import SD1, family_defaults, family_info

DEMO_VARIANT = "demo"  # the shipped demo model: an SD1 file trained at 64 px
V_VARIANT = "v"  # a v-prediction file of a family with a larger v variant (SD 2.x 768-v)
V_PREDICTION = "v_prediction"


@dataclass(frozen=True)
class NativeSize:
    """A model's native size and the family name shown in hints."""

    side: int
    family_label: str

    @property
    def text(self) -> str:
        return f"{self.side}x{self.side}"

    @property
    def hires_text(self) -> str:
        """What "Hires. fix" at its default 2x gives from the native size."""
        return f"{2 * self.side}x{2 * self.side}"


def native_size(family: str | None, prediction_type: str | None = None, demo: bool = False) -> NativeSize:
    """The native size of a model of `family` (an unknown family gets SD's 512). A v-prediction file uses its
    family's `v` variant where there is one (SD 2.x 768-v); `demo` (the shipped demo model) wins over the family."""
    if demo:
        return NativeSize(family_defaults(SD1, DEMO_VARIANT).width, "the demo model")
    name = family or SD1
    variant = V_VARIANT if prediction_type == V_PREDICTION else ""
    return NativeSize(family_defaults(name, variant).width, family_info(name).label)


def device_note(kind: str, name: str, cores: int, size: NativeSize | None) -> str:
    """One line naming the device generation runs on and, on a CPU, what an image costs. `kind` is torch's device
    type ("cpu", "cuda", "mps"); `name` the GPU's name when known; `cores` the CPU threads torch uses.

    Why these numbers: measured on a 2-core CPU (the demo model: ~2 s at 64x64 and ~53 s at 512x512, 20 steps);
    full-size models are ~100 times heavier per pixel, so on a CPU they take minutes even at their native size."""
    if kind != "cpu":
        named = f" ({name})" if name else ""
        return f"Running on {kind.upper()}{named}."
    core_text = f"{cores} core{'s' if cores != 1 else ''}"
    if size is not None and size.side <= 64:
        return (f"Running on CPU ({core_text}): {size.family_label} takes a few seconds per image at {size.text} "
                f"and about a minute at 512x512 (20 steps); keep it at {size.text}.")
    native = f" at {size.text}" if size is not None else ""
    return (f"Running on CPU ({core_text}): a full-size model takes several minutes per image{native} at 20 steps; "
            "time grows with width x height x steps.")
