"""Text -> conditioning tensors, the A1111 way, for SD1/SD2 (one CLIP) and SDXL (two CLIPs).

Why our own encoder instead of the pipeline's `encode_prompt`: A1111 prompts are longer than 77 tokens
(75-token chunks, BOS/EOS each, concatenated), carry per-token weights (emphasis, with the mean restored) and
BREAK; and diffusers' clip-skip path breaks under transformers 5 (`CLIPTextModel` lost its `.text_model`).
For a plain prompt of <= 75 tokens the result equals diffusers' own encoding (tested).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from webui.engine.runtime.offload_store import execution_device, is_streamed, replace_stored, stored_tensor

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


@dataclass(frozen=True)
class TokenEmbeddings:
    """Textual-inversion embeddings used by one request: each name gets placeholder token ids past the
    vocabulary; `rows` holds, per text encoder, the vectors those ids stand for."""

    ids: dict[str, tuple[int, ...]]
    rows: tuple[torch.Tensor, ...]
    base_vocab: int

    @property
    def pattern(self) -> re.Pattern[str]:
        names = sorted(self.ids, key=len, reverse=True)
        return re.compile(r"(?<![\w])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")


def encoder_dims(pipe) -> tuple[int, ...]:
    """Hidden sizes of the pipeline's text encoders (what an embedding's vectors must match)."""
    return tuple(slot.encoder.config.hidden_size for slot in _slots(pipe))


def prepare_embeddings(pipe, used: dict[str, list[torch.Tensor]]) -> TokenEmbeddings | None:
    """Placeholder ids for the used embeddings, and their rows per text encoder."""
    if not used:
        return None
    base = len(_slots(pipe)[0].tokenizer)
    ids: dict[str, tuple[int, ...]] = {}
    per_slot: list[list[torch.Tensor]] = [[] for _ in _slots(pipe)]
    next_id = base
    for name, vectors in used.items():
        count = vectors[0].shape[0]
        ids[name] = tuple(range(next_id, next_id + count))
        next_id += count
        for index, matrix in enumerate(vectors):
            per_slot[index].append(matrix)
    return TokenEmbeddings(ids, tuple(torch.cat(rows) for rows in per_slot), base)


def _install_rows(encoder: torch.nn.Module, base_vocab: int, rows: torch.Tensor) -> None:
    """Make the encoder's token table hold `rows` right after the base vocabulary. The base rows are never
    touched, so prompts without embeddings encode exactly as before."""
    table = encoder.get_input_embeddings()
    needed = base_vocab + rows.shape[0]
    if is_streamed(table):  # --lowvram: the rows go into the offload store (see offload_store.py)
        weight = stored_tensor(table)
        if weight.shape[0] < needed:
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor: the hook makes a Parameter of it
                grown = torch.zeros((needed, weight.shape[1]), dtype=weight.dtype, device=weight.device)
                grown[: weight.shape[0]] = weight
            replace_stored(table, "weight", grown)
            table.num_embeddings = needed
        with torch.no_grad():
            stored_tensor(table)[base_vocab:needed] = rows.to(weight.device, weight.dtype)
        return
    if table.weight.shape[0] < needed:
        encoder.resize_token_embeddings(needed, mean_resizing=False)
        table = encoder.get_input_embeddings()
    with torch.no_grad():
        table.weight[base_vocab:needed] = rows.to(table.weight.device, table.weight.dtype)


def _comma_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids(",</w>")


def _text_tokens(tokenizer, text: str, embeddings: TokenEmbeddings | None) -> list[list[int]]:
    """Token runs of `text`; an embedding's placeholder ids form one run that must not be split by a chunk."""
    if embeddings is None:
        return [[t] for t in tokenizer(text, add_special_tokens=False, truncation=False).input_ids]
    runs: list[list[int]] = []
    for index, part in enumerate(embeddings.pattern.split(text)):
        if index % 2:
            runs.append(list(embeddings.ids[part]))
        elif part:
            runs.extend([t] for t in tokenizer(part, add_special_tokens=False, truncation=False).input_ids)
    return runs


def chunk_tokens(tokenizer, pieces: Sequence[tuple[str, float]],
                 embeddings: TokenEmbeddings | None = None) -> list[TokenChunk]:
    """Split weighted text pieces into chunks of at most 75 tokens, like A1111 (BREAK forces a new chunk; an
    overflowing chunk breaks after its last comma when that comma is within the last 20 tokens; an embedding's
    vectors stay together in one chunk)."""
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
        for run in _text_tokens(tokenizer, text, embeddings):
            if len(run) > 1:
                if len(tokens) + len(run) > CHUNK_TOKENS:
                    flush()
                tokens.extend(run)
                weights.extend([weight] * len(run))
                continue
            token = run[0]
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
    device = execution_device(slot.encoder)
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
        new_mean = z.mean()
        # A final LayerNorm without bias (a freshly made model) gives a mean of ~0; 0/0 would turn the whole
        # conditioning into NaN, and there is no mean to restore then.
        if new_mean.abs() > 1e-6 * max(1.0, z.abs().mean().item()):
            z = z * (original_mean / new_mean)
    pooled = out.text_embeds if slot.pooled else None
    return z, pooled


def encode_pieces(pipe, pieces: Sequence[tuple[str, float]], clip_skip: int = 1,
                  min_chunks: int = 1, embeddings: TokenEmbeddings | None = None) -> Conditioning:
    """Encode weighted pieces into one conditioning, padded with empty chunks to `min_chunks`."""
    slots = _slots(pipe)
    chunks = chunk_tokens(slots[0].tokenizer, pieces, embeddings)
    if embeddings is not None:
        for slot, rows in zip(slots, embeddings.rows, strict=True):
            _install_rows(slot.encoder, embeddings.base_vocab, rows)
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


def count_chunks(pipe, pieces: Sequence[tuple[str, float]], embeddings: TokenEmbeddings | None = None) -> int:
    return len(chunk_tokens(_slots(pipe)[0].tokenizer, pieces, embeddings))
