"""Which built-in script runs over a generation request, with its typed options.

Why a value object: the generation tabs read a script from their widgets and the API from A1111's
`script_name`/`script_args`; each has a thin decoder that produces a `ScriptSpec`, and one dispatcher (in the
services) runs it, so adding a script means one new options type and one branch, not two parallel code paths.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.prompt_matrix import SCRIPT_NAME as MATRIX_SCRIPT
from webui.core.prompt_matrix import PromptMatrixOptions
from webui.core.tiled_upscale import SCRIPT_NAME as UPSCALE_SCRIPT
from webui.core.tiled_upscale import TiledUpscaleOptions
from webui.core.xyz_axes import AxisInput
from webui.core.xyz_plan import SCRIPT_NAME as XYZ_SCRIPT
from webui.core.xyz_plan import XyzOptions

SCRIPT_NONE = "None"


@dataclass(frozen=True)
class XyzPlotOptions:
    """The X/Y/Z plot's three axes (X, Y, Z) and its options."""

    axes: tuple[AxisInput, AxisInput, AxisInput] = (AxisInput(), AxisInput(), AxisInput())
    options: XyzOptions = XyzOptions()


@dataclass(frozen=True)
class ExtensionScriptOptions:
    """A script an extension added (`ExtensionContext.add_script`): which extension, its script name, and the
    values of its controls (the API's `script_args`), in order."""

    extension: str
    script: str
    args: tuple = ()


ScriptOptions = XyzPlotOptions | PromptMatrixOptions | TiledUpscaleOptions

# Each script's display name and the options type it takes.
SCRIPT_OPTIONS: dict[str, type] = {XYZ_SCRIPT: XyzPlotOptions, MATRIX_SCRIPT: PromptMatrixOptions,
                                   UPSCALE_SCRIPT: TiledUpscaleOptions}


@dataclass(frozen=True)
class ScriptSpec:
    """A script by its display name (`SCRIPT_NONE` for a plain generation) and its options."""

    name: str = SCRIPT_NONE
    options: ScriptOptions | ExtensionScriptOptions | None = None

    def __post_init__(self) -> None:
        if isinstance(self.options, ExtensionScriptOptions):
            return  # an extension's script: the script service finds it by extension and name
        wanted = SCRIPT_OPTIONS.get(self.name)
        if self.name != SCRIPT_NONE and wanted is None:
            raise ValueError(f"Unknown script '{self.name}'.")
        if wanted is not None and not isinstance(self.options, wanted):
            raise TypeError(f"{self.name} takes {wanted.__name__}, not {type(self.options).__name__}.")

    @property
    def is_plain(self) -> bool:
        """True when no script runs: the request is generated as it is."""
        return self.name == SCRIPT_NONE

    @classmethod
    def xyz_plot(cls, axes: tuple[AxisInput, AxisInput, AxisInput], options: XyzOptions) -> ScriptSpec:
        return cls(XYZ_SCRIPT, XyzPlotOptions(axes, options))

    @classmethod
    def prompt_matrix(cls, options: PromptMatrixOptions) -> ScriptSpec:
        return cls(MATRIX_SCRIPT, options)

    @classmethod
    def tiled_upscale(cls, options: TiledUpscaleOptions) -> ScriptSpec:
        return cls(UPSCALE_SCRIPT, options)


PLAIN = ScriptSpec()
