"""A1111 prompts -> per-step conditioning for a diffusers pipeline.

Why here: the parser (core) gives text, weights and step ranges; this module encodes each distinct scheduled text
once, pads all of them to one chunk count (so tensors can be swapped between steps), and answers "which
conditioning at step i". The txt2img loop switches conditioning through diffusers' step-end callback, which is
the pipeline's documented way to change `prompt_embeds` between steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from webui.core.prompt_parser import ParsedPrompt, ScheduleEntry, parse_full
from webui.engine.embeddings import Embedding
from webui.engine.prompt_encoding import (
    Conditioning,
    TokenEmbeddings,
    count_chunks,
    encode_pieces,
    encoder_dims,
    prepare_embeddings,
)


@dataclass(frozen=True)
class _Schedule:
    entries: tuple[ScheduleEntry, ...]

    def at(self, step: int) -> ScheduleEntry:
        """A1111's lookup: the first entry whose end_step >= the 0-based sampler step."""
        for entry in self.entries:
            if step <= entry.end_step:
                return entry
        return self.entries[-1]


@dataclass
class ConditioningPlan:
    """Encoded conditionings for every text the prompt and negative prompt use during sampling."""

    positive: _Schedule
    negative: _Schedule
    encoded: dict[tuple[str, str], Conditioning]
    parsed: ParsedPrompt
    notes: list[str] = field(default_factory=list)
    used_embeddings: tuple[Embedding, ...] = ()

    def at(self, step: int) -> tuple[Conditioning, Conditioning]:
        pos = self.positive.at(step)
        neg = self.negative.at(step)
        return self.encoded[("+", pos.text)], self.encoded[("-", neg.text)]

    def changes_at(self, step: int) -> bool:
        """True when step `step` uses other texts than step `step - 1`."""
        return step > 0 and (self.positive.at(step).text != self.positive.at(step - 1).text
                             or self.negative.at(step).text != self.negative.at(step - 1).text)


def _positive_schedule(parsed: ParsedPrompt, notes: list[str]) -> _Schedule:
    if len(parsed.subprompts) > 1:
        # Composable diffusion (AND) needs one UNet pass per part; until that lands, the parts are encoded one
        # after the other (like BREAK), which keeps every part's content in the image.
        notes.append("AND (composable diffusion) is applied as BREAK in this version.")
        steps = sorted({entry.end_step for sub in parsed.subprompts for entry in sub.schedule})
        entries = []
        for end in steps:
            pieces: list[tuple[str, float]] = []
            texts = []
            for index, sub in enumerate(parsed.subprompts):
                entry = sub.at_step(end)
                if index:
                    pieces.append(("BREAK", -1.0))
                pieces.extend(entry.pieces)
                texts.append(entry.text)
            entries.append(ScheduleEntry(end, " AND ".join(texts), tuple(pieces)))
        return _Schedule(tuple(entries))
    return _Schedule(parsed.subprompts[0].schedule)


def _negative_schedule(negative: str, steps: int) -> _Schedule:
    """The negative prompt supports editing and emphasis, but not AND or extra networks (as in A1111)."""
    from webui.core.prompt_parser import parse_attention, parse_prompt_schedule

    entries = tuple(ScheduleEntry(end, text, tuple(parse_attention(text)))
                    for end, text in parse_prompt_schedule(negative, steps))
    return _Schedule(entries)


def _used_embeddings(pipe, texts: list[str], library: dict[str, Embedding],
                     notes: list[str]) -> tuple[TokenEmbeddings | None, tuple[Embedding, ...]]:
    """The library's embeddings named in the texts that fit this model; a note for those that do not."""
    if not library:
        return None, ()
    probe = TokenEmbeddings({name: (0,) for name in library}, (), 0).pattern
    named = {match for text in texts for match in probe.findall(text)}
    dims = encoder_dims(pipe)
    fitting: dict[str, list[torch.Tensor]] = {}
    used: list[Embedding] = []
    for name in sorted(named):
        vectors = library[name].vectors_for(dims)
        if vectors is None:
            notes.append(f"Embedding '{name}' was skipped: it is for another model family "
                         f"(vector sizes {library[name].dims()}, this model needs {dims}).")
            continue
        fitting[name] = vectors
        used.append(library[name])
    return prepare_embeddings(pipe, fitting), tuple(used)


def plan_conditioning(pipe, prompt: str, negative: str, steps: int, clip_skip: int,
                      embeddings: dict[str, Embedding] | None = None) -> ConditioningPlan:
    """Parse both prompts, encode each distinct text once, padded to the largest chunk count of them all."""
    notes: list[str] = []
    parsed = parse_full(prompt, steps)
    positive = _positive_schedule(parsed, notes)
    negative_schedule = _negative_schedule(negative, steps)
    texts = {("+", e.text): e.pieces for e in positive.entries}
    texts.update({("-", e.text): e.pieces for e in negative_schedule.entries})
    tokens, used = _used_embeddings(pipe, [key[1] for key in texts], embeddings or {}, notes)
    chunks = max(count_chunks(pipe, pieces, tokens) for pieces in texts.values())
    with torch.inference_mode():
        encoded = {key: encode_pieces(pipe, pieces, clip_skip, chunks, tokens) for key, pieces in texts.items()}
    return ConditioningPlan(positive, negative_schedule, encoded, parsed, notes, used)
