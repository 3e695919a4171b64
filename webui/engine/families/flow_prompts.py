"""Prompt encoding for the flow-matching families: T5 (Flux), UMT5 (AuraFlow) with A1111 emphasis, CLIP pooled.

Why our own encoding rather than the pipelines' `encode_prompt`: A1111's `(word:1.3)` must work. As Forge does for
T5, each run of text is tokenized on its own, the token embeddings are multiplied by their weights and the whole
is rescaled to its original mean (so emphasis shifts attention between words, not the overall level). Runs with
the same weight are joined before tokenizing, so a prompt without emphasis is tokenized exactly as the diffusers
pipeline tokenizes it (same ids, same embeddings). `BREAK` has no meaning for one long T5 sequence and is dropped;
CLIP's pooled vector (Flux) summarises the whole text, so it gets the plain text without weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from webui.core.prompt_attention import Piece, is_break


@dataclass(frozen=True)
class FlowConditioning:
    """One encoded text: per-token states (padding zeroed where the family masks it) and, for Flux, CLIP pooled."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None


def _runs(pieces: tuple[Piece, ...]) -> list[tuple[str, float]]:
    """Adjacent pieces of equal weight joined; BREAK markers dropped."""
    runs: list[tuple[str, float]] = []
    for text, weight in pieces:
        if is_break((text, weight)):
            continue
        if runs and runs[-1][1] == weight:
            runs[-1] = (runs[-1][0] + text, weight)
        else:
            runs.append((text, weight))
    return runs or [("", 1.0)]


def plain_text(pieces: tuple[Piece, ...]) -> str:
    return "".join(text for text, _ in _runs(pieces))


def _weighted_ids(tokenizer, pieces: tuple[Piece, ...], max_length: int) -> tuple[list[int], list[float], int]:
    """Token ids with each token's weight (end token appended, cut to `max_length`, padded with the pad id) and
    the count of real (unpadded) tokens."""
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in _runs(pieces):
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        ids += tokens
        weights += [weight] * len(tokens)
    ids, weights = ids[: max_length - 1] + [tokenizer.eos_token_id], weights[: max_length - 1] + [1.0]
    real, pad = len(ids), max_length - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, weights + [1.0] * pad, real


def encode_t5(tokenizer, encoder, pieces: tuple[Piece, ...], max_length: int, *,
              use_mask: bool) -> torch.Tensor:
    """[1, max_length, width] states of a T5-type encoder with emphasis. `use_mask`: pass the attention mask and
    zero the padded positions (AuraFlow's pipeline does; Flux's runs T5 unmasked)."""
    ids, weights, real = _weighted_ids(tokenizer, pieces, max_length)
    param = next(encoder.parameters())
    input_ids = torch.tensor([ids], device=param.device)
    mask = torch.zeros_like(input_ids)
    mask[:, :real] = 1
    states = encoder(input_ids=input_ids, attention_mask=mask if use_mask else None)[0]
    if use_mask:
        states = states * mask.unsqueeze(-1).to(states.dtype)
    if any(w != 1.0 for w in weights):
        original_mean = states.float().mean()
        scale = torch.tensor(weights, device=states.device, dtype=states.dtype)[None, :, None]
        states = states * scale
        states = states * (original_mean / states.float().mean()).to(states.dtype)
    return states


def clip_pooled(tokenizer, encoder, text: str) -> torch.Tensor:
    """CLIP-L's pooled output for `text` (77 tokens, as Flux's pipeline encodes it)."""
    param = next(encoder.parameters())
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(param.device)
    return encoder(ids, output_hidden_states=False).pooler_output


def encode_flux(pipe, pieces: tuple[Piece, ...], max_length: int) -> FlowConditioning:
    embeds = encode_t5(pipe.tokenizer_2, pipe.text_encoder_2, pieces, max_length, use_mask=False)
    return FlowConditioning(embeds, clip_pooled(pipe.tokenizer, pipe.text_encoder, plain_text(pieces)))


def encode_auraflow(pipe, pieces: tuple[Piece, ...], max_length: int) -> FlowConditioning:
    return FlowConditioning(encode_t5(pipe.tokenizer, pipe.text_encoder, pieces, max_length, use_mask=True))
