"""What the grid scripts (X/Y/Z plot, prompt matrix) hand back: their result and the lines of a grid legend.

Why its own module: both scripts return the same shape, and the engine draws the same legends for both, so these
types belong to neither script. A result answers like a `GenerationResult`, which lets the tabs and the API show a
plot without special cases.
"""
from __future__ import annotations

from dataclasses import dataclass

from webui.core.infotext import build_infotext, parse_infotext
from webui.core.results import GeneratedImage


@dataclass(frozen=True)
class Legend:
    """One line of a grid legend. Inactive lines (a prompt-matrix part left out) are drawn grey and struck out."""

    text: str
    active: bool = True


@dataclass(frozen=True)
class ScriptResult:
    """What a script run returns. It answers like a `GenerationResult` (`images`, `infotexts`, `seeds`,
    `interrupted`, `warnings`) so the txt2img tab shows it without special cases: grids first, then the cells'
    own images when "Include sub-images" is on. `sub_images` always holds every image the cells made."""

    script: str
    grids: tuple[GeneratedImage, ...]
    sub_images: tuple[GeneratedImage, ...]
    include_sub_images: bool = False
    interrupted: bool = False
    warnings: tuple[str, ...] = ()
    cells_done: int = 0
    cells_total: int = 0

    @property
    def images(self) -> tuple[GeneratedImage, ...]:
        return self.grids + (self.sub_images if self.include_sub_images else ())

    @property
    def infotexts(self) -> list[str]:
        return [image.infotext for image in self.images]

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]


def infotext_with_params(infotext: str, params: dict[str, str]) -> str:
    """A cell's infotext with the script's keys added (A1111 stores `Script`, `X Type`, `X Values` ... in a grid's
    infotext so the plot can be told apart and re-made). Parsed and rebuilt, so quoting stays valid."""
    parsed = parse_infotext(infotext)
    return build_infotext(parsed.prompt, parsed.negative_prompt, {**parsed.params, **params})
