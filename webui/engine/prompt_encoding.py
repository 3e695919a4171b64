"""Text -> conditioning tensors, the A1111 way, for SD1/SD2 (one CLIP) and SDXL (two CLIPs).

Why our own encoder instead of the pipeline's `encode_prompt`: A1111 prompts are longer than 77 tokens
(75-token chunks, BOS/EOS each, concatenated), carry per-token weights (emphasis, with the mean restored) and
BREAK; and diffusers' clip-skip path breaks under transformers 5 (`CLIPTextModel` lost its `.text_model`).
For a plain prompt of <= 75 tokens the result equals diffusers' own encoding (tested).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

CHUNK_TOKENS = 75
COMMA_BACKTRACK = 20  # A1111: a chunk that overflows is split at a comma within its last 20 tokens
BREAK = "BREAK"


@dataclass(frozen=True)
class TokenChunk:
    """75 prompt tokens (or fewer) and their weights, before BOS/EOS/padding."""

    tokens: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Conditioning:
    """One prompt's embeddings: [1, 77 * chunks, dim] (+ SDXL's pooled [1, dim2])."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_TOKENS + 2)


def _comma_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids(",</w>")


def chunk_tokens(tokenizer, pieces: Sequence[tuple[str, float]]) -> list[TokenChunk]:
    """Split weighted text pieces into chunks of at most 75 tokens, like A1111 (BREAK forces a new chunk; an
    overflowing chunk breaks after its last comma when that comma is within the last 20 tokens)."""
    comma = _comma_id(tokenizer)
    chunks: list[TokenChunk] = []
    tokens: list[int] = []
    weights: list[float] = []

    def flush() -> None:
        nonlocal tokens, weights
        chunks.append(TokenChunk(tuple(tokens), tuple(weights)))
        tokens, weights = [], []

    for text, weight in pieces:
        if text == BREAK and weight == -1:
            flush()
            continue
        for token in tokenizer(text, add_special_tokens=False, truncation=False).input_ids:
            if len(tokens) == CHUNK_TOKENS:
                last_comma = max((i for i, t in enumerate(tokens) if t == comma), default=-1)
                if last_comma >= 0 and len(tokens) - last_comma <= COMMA_BACKTRACK:
                    rest_t, rest_w = tokens[last_comma + 1:], weights[last_comma + 1:]
                    tokens, weights = tokens[: last_comma + 1], weights[: last_comma + 1]
                    flush()
                    tokens, weights = rest_t, rest_w
                else:
                    flush()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        flush()
    return chunks


def _ids_and_weights(tokenizer, chunk: TokenChunk) -> tuple[list[int], list[float]]:
    """[BOS] tokens [EOS] [PAD ...]: diffusers' (and the models' training) layout; with SD1's pad == EOS it
    is also exactly A1111's."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.bos_token_id, *chunk.tokens, tokenizer.eos_token_id]
    weights = [1.0, *chunk.weights, 1.0]
    missing = CHUNK_TOKENS + 2 - len(ids)
    return ids + [pad] * missing, weights + [1.0] * missing


def _final_layer_norm(encoder) -> torch.nn.Module:
    inner = getattr(encoder, "text_model", encoder)
    return inner.final_layer_norm


@dataclass(frozen=True)
class _EncoderSlot:
    tokenizer: object
    encoder: torch.nn.Module
    penultimate_default: bool  # SDXL's encoders use the penultimate layer, without the final norm
    pooled: bool


def _slots(pipe) -> list[_EncoderSlot]:
    if getattr(pipe, "text_encoder_2", None) is not None:
        slots = []
        if pipe.text_encoder is not None:
            slots.append(_EncoderSlot(pipe.tokenizer, pipe.text_encoder, True, False))
        slots.append(_EncoderSlot(pipe.tokenizer_2, pipe.text_encoder_2, True, True))
        return slots
    return [_EncoderSlot(pipe.tokenizer, pipe.text_encoder, False, False)]


def _encode_chunk(slot: _EncoderSlot, ids: list[int], weights: list[float], clip_skip: int):
    device = next(slot.encoder.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    out = slot.encoder(input_ids, output_hidden_states=True)
    if slot.penultimate_default:
        z = out.hidden_states[-(clip_skip + 1)]
    elif clip_skip <= 1:
        z = out.last_hidden_state
    else:
        z = _final_layer_norm(slot.encoder)(out.hidden_states[-clip_skip])
    if any(w != 1.0 for w in weights):
        # A1111's "Original" emphasis: scale each token, then restore the chunk's original mean.
        original_mean = z.mean()
        z = z * torch.tensor(weights, device=z.device, dtype=z.dtype).reshape(1, -1, 1)
        z = z * (original_mean / z.mean())
    pooled = out.text_embeds if slot.pooled else None
    return z, pooled


def encode_pieces(pipe, pieces: Sequence[tuple[str, float]], clip_skip: int = 1,
                  min_chunks: int = 1) -> Conditioning:
    """Encode weighted pieces into one conditioning, padded with empty chunks to `min_chunks`."""
    slots = _slots(pipe)
    chunks = chunk_tokens(slots[0].tokenizer, pieces)
    chunks += [TokenChunk((), ())] * (min_chunks - len(chunks))
    per_chunk: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    for index, chunk in enumerate(chunks):
        parts = []
        for slot in slots:
            ids, weights = _ids_and_weights(slot.tokenizer, chunk)
            z, chunk_pooled = _encode_chunk(slot, ids, weights, clip_skip)
            parts.append(z)
            if chunk_pooled is not None and index == 0:
                pooled = chunk_pooled  # A1111 takes the pooled output of the first chunk
        per_chunk.append(torch.cat(parts, dim=-1))
    return Conditioning(torch.cat(per_chunk, dim=1), pooled)


def count_chunks(pipe, pieces: Sequence[tuple[str, float]]) -> int:
    return len(chunk_tokens(_slots(pipe)[0].tokenizer, pieces))
