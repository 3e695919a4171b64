"""A generation request resolved once, before anything runs: the only place where `-1` seeds become numbers,
styles are merged, the sampler name is split from its schedule and the prompt is parsed.

Why one place: the engine, the infotext, the API's `info` and the scripts must all see the same seeds and the same
reading of the prompt. Resolving in several layers drew a random seed more than once per job and parsed every
prompt twice (once for its LoRA tags, once for the conditioning). Everything here is pure: styles come in as data
and random seeds from an injected `random.Random`, so tests can count the draws.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass

from webui.core import prompt_parser
from webui.core.errors import ValidationError
from webui.core.prompt_network_tags import ExtraNetworkCall
from webui.core.prompt_parser import ParsedPrompt, SubPrompt
from webui.core.requests import GenerationRequest
from webui.core.samplers import get_sampler, resolve_schedule, split_legacy_name
from webui.core.seeds import batch_seeds, resolve_seed
from webui.core.styles import Style, apply_styles


def system_seeds() -> random.Random:
    """The seed source of a running app: the OS's randomness (a `-1` seed must not repeat across restarts)."""
    return random.SystemRandom()


def concrete_seed(seed: int, seeds: random.Random) -> int:
    """`seed` itself, or one draw from `seeds` for -1. Scripts use it for values of a Seed axis."""
    return resolve_seed(seed, seeds)


def fix_seeds(request: GenerationRequest, seeds: random.Random) -> GenerationRequest:
    """The request with a concrete seed and variation seed (one draw each for -1, seed first). Scripts call this
    once per job, so every cell or tile derived from the result shares the seeds (A1111's X/Y/Z and prompt
    matrix); `resolve_request` of a derived request then draws nothing."""
    seed = concrete_seed(request.seed, seeds)
    subseed = concrete_seed(request.subseed, seeds)
    if (seed, subseed) == (request.seed, request.subseed):
        return request
    return dataclasses.replace(request, seed=seed, subseed=subseed)


@dataclass(frozen=True)
class PassPrompts:
    """One sampling pass's prompts, scheduled for its step count (prompt editing depends on it)."""

    steps: int
    positive: ParsedPrompt
    negative: SubPrompt


@dataclass(frozen=True)
class ResolvedRequest:
    """What the engine runs. `request` is the concrete request (styles merged and cleared, the legacy sampler name
    split, the first seed and variation seed): it is what results report. `sampler` / `schedule` are the
    canonical sampler name and the concrete schedule type the infotext records."""

    request: GenerationRequest
    sampler: str
    schedule: str
    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    prompts: PassPrompts
    hires_prompts: PassPrompts | None = None
    # Further requests generated in the same job after this one (an extension's before_generation hook split the
    # request, e.g. dynamic prompts giving each image its own prompt), and notes from resolving (a failed hook).
    more: tuple[ResolvedRequest, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def extra_networks(self) -> tuple[ExtraNetworkCall, ...]:
        """The prompt's `<kind:name:...>` calls, in order (the text the encoder sees has them removed)."""
        return self.prompts.positive.extra_networks

    @property
    def hires(self) -> bool:
        """Whether a hires-fix pass follows the first one (txt2img only)."""
        return self.hires_prompts is not None

    def batch(self, index: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The seeds and variation seeds of batch `index` (A1111: image i of the job gets seed + i)."""
        size = self.request.batch_size
        window = slice(index * size, (index + 1) * size)
        return self.seeds[window], self.subseeds[window]


def resolve_request(request: GenerationRequest, *, styles: Mapping[str, Style], seeds: random.Random,
                    styles_source: str = "styles.csv") -> ResolvedRequest:
    """Validate `request` and resolve it. `styles` maps the known style names to styles (`styles_source` names
    where they come from, for the error about unknown names); `seeds` is drawn from only for -1 seeds.

    Raises `ValidationError`, `SamplerError` or `PromptSyntaxError` with a message for the user.
    """
    request.validate()
    request = _with_styles(request, styles, styles_source)
    name, schedule = split_legacy_name(request.sampler_name, request.scheduler)
    spec = get_sampler(name)
    concrete_schedule = resolve_schedule(spec, schedule)
    request = fix_seeds(dataclasses.replace(request, sampler_name=name, scheduler=schedule), seeds)
    total = request.total_images
    prompts = _pass_prompts(request, request.steps)
    hires_prompts = None
    if request.enable_hr and request.img2img is None:
        hires_steps = request.hr_second_pass_steps or request.steps
        hires_prompts = PassPrompts(hires_steps, prompt_parser.reschedule(prompts.positive, hires_steps),
                                    prompt_parser.parse_negative(request.negative_prompt, hires_steps))
    return ResolvedRequest(request, spec.name, concrete_schedule, tuple(batch_seeds(request.seed, total)),
                           tuple(batch_seeds(request.subseed, total)), prompts, hires_prompts)


def _pass_prompts(request: GenerationRequest, steps: int) -> PassPrompts:
    return PassPrompts(steps, prompt_parser.parse_full(request.prompt, steps),
                       prompt_parser.parse_negative(request.negative_prompt, steps))


def _with_styles(request: GenerationRequest, styles: Mapping[str, Style], source: str) -> GenerationRequest:
    """Selected styles merged into the prompts before anything else reads them; unknown names are an error
    (a typo must not silently drop the style the user asked for)."""
    if not request.styles:
        return request
    missing = [name for name in request.styles if name not in styles]
    if missing:
        raise ValidationError(f"Unknown style(s): {', '.join(missing)}. Styles come from {source}.")
    prompt, negative = apply_styles(request.prompt, request.negative_prompt, [styles[n] for n in request.styles])
    return dataclasses.replace(request, prompt=prompt, negative_prompt=negative, styles=())
