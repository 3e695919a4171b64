"""The engine's half of a model family: what its folder's pipeline is, how its transformer is called, how its
prompts are encoded. The user-facing half (samplers, defaults) is `webui/core/model_families.py`.

Why a table: every flow-matching family runs through the same loading, sampling and generation code; a row names
the three things that differ. Adding SD3.5 is a row here (its `StableDiffusion3Pipeline`, an adapter in
`flow_denoisers.py`, an encoder in `flow_prompts.py`), a row in `core/model_families.py` and a key signature in
`engine/models/detection.py`. The SD families keep their UNet path (`engine/generation/run.py`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webui.core.model_families import AURAFLOW, FLUX, FLUX_SCHNELL
from webui.core.prompt_attention import Piece
from webui.engine.families.flow_denoisers import AuraFlowDenoiser, FlowDenoiser, FluxDenoiser
from webui.engine.families.flow_prompts import FlowConditioning, encode_auraflow, encode_flux

Encoder = Callable[[object, tuple[Piece, ...], int], FlowConditioning]


@dataclass(frozen=True)
class FlowFamilySpec:
    """`pipeline_class`: the diffusers class of the family's folders (and of our single-file loads);
    `max_tokens`: the T5 sequence length its pipeline encodes (per variant where it differs)."""

    name: str
    pipeline_class: str
    denoiser: type[FlowDenoiser]
    encode: Encoder
    max_tokens: int
    variant_tokens: tuple[tuple[str, int], ...] = ()
    distilled_guidance: bool = False
    note_when_negative_unused: bool = False


FLOW_FAMILIES: dict[str, FlowFamilySpec] = {
    AURAFLOW: FlowFamilySpec(AURAFLOW, "AuraFlowPipeline", AuraFlowDenoiser, encode_auraflow, 256),
    FLUX: FlowFamilySpec(FLUX, "FluxPipeline", FluxDenoiser, encode_flux, 512, ((FLUX_SCHNELL, 256),),
                         distilled_guidance=True, note_when_negative_unused=True),
}
_BY_PIPELINE = {spec.pipeline_class: spec for spec in FLOW_FAMILIES.values()}


def flow_family_of(pipe) -> FlowFamilySpec | None:
    """The flow family of a loaded pipeline (by its class), None for SD pipelines."""
    return _BY_PIPELINE.get(type(pipe).__name__)


def variant_of(pipe) -> str:
    """'schnell' for a Flux transformer without guidance embedding (FLUX.1-schnell), else ''."""
    transformer = getattr(pipe, "transformer", None)
    if type(pipe).__name__ == "FluxPipeline" and transformer is not None and \
            not transformer.config.get("guidance_embeds", True):
        return FLUX_SCHNELL
    return ""


def max_tokens(spec: FlowFamilySpec, variant: str) -> int:
    return dict(spec.variant_tokens).get(variant, spec.max_tokens)
