"""A1111 prompts -> per-step conditioning for a diffusers pipeline.

Why here: the resolved request (core) carries the parsed prompts: text, weights and step ranges; this module
encodes each distinct scheduled text once, pads all of them to one chunk count (so tensors can be swapped between
steps), and answers "which conditioning at step i". The txt2img loop switches conditioning through diffusers'
step-end callback, which is the pipeline's documented way to change `prompt_embeds` between steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from webui.core.prompt_parser import ParsedPrompt, ScheduleEntry
from webui.core.resolve import PassPrompts
from webui.engine.generation.prompt_encoding import (
    Conditioning,
    TokenEmbeddings,
    count_chunks,
    encode_pieces,
    encoder_dims,
    prepare_embeddings,
)
from webui.engine.networks.embeddings import Embedding


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
    """Encoded conditionings for every text the prompt (each AND part) and the negative prompt use."""

    parts: tuple[tuple[_Schedule, float], ...]
    negative: _Schedule
    encoded: dict[tuple[str, str], Conditioning]
    parsed: ParsedPrompt
    notes: list[str] = field(default_factory=list)
    used_embeddings: tuple[Embedding, ...] = ()

    @property
    def composable(self) -> bool:
        """True for prompts with AND: each part needs its own UNet pass (composable diffusion)."""
        return len(self.parts) > 1

    def at(self, step: int) -> tuple[Conditioning, Conditioning]:
        """The first part's and the negative conditioning at `step` (all there is without AND)."""
        return self.encoded[("+", self.parts[0][0].at(step).text)], self.encoded[("-", self.negative.at(step).text)]

    def parts_at(self, step: int) -> list[tuple[Conditioning, float]]:
        return [(self.encoded[("+", schedule.at(step).text)], weight) for schedule, weight in self.parts]

    def changes_at(self, step: int) -> bool:
        """True when step `step` uses other texts than step `step - 1`."""
        if step <= 0:
            return False
        schedules = [schedule for schedule, _ in self.parts] + [self.negative]
        return any(s.at(step).text != s.at(step - 1).text for s in schedules)


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


def plan_conditioning(pipe, prompts: PassPrompts, clip_skip: int,
                      embeddings: dict[str, Embedding] | None = None) -> ConditioningPlan:
    """Encode each distinct text of the parsed prompts once, padded to the largest chunk count of them all. The
    prompts were parsed when the request was resolved; nothing is parsed here."""
    notes: list[str] = []
    parsed = prompts.positive
    parts = tuple((_Schedule(sub.schedule), sub.weight) for sub in parsed.subprompts)
    negative_schedule = _Schedule(prompts.negative.schedule)
    texts = {("+", e.text): e.pieces for schedule, _ in parts for e in schedule.entries}
    texts.update({("-", e.text): e.pieces for e in negative_schedule.entries})
    tokens, used = _used_embeddings(pipe, [key[1] for key in texts], embeddings or {}, notes)
    chunks = max(count_chunks(pipe, pieces, tokens) for pieces in texts.values())
    with torch.inference_mode():
        encoded = {key: encode_pieces(pipe, pieces, clip_skip, chunks, tokens) for key, pieces in texts.items()}
    return ConditioningPlan(parts, negative_schedule, encoded, parsed, notes, used)
