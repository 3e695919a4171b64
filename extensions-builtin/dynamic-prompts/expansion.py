"""Dynamic prompts: which prompt each image of a job gets, from a template with `{a|b}`, `{2$$a|b|c}` and
`__wildcard__` (the `dynamicprompts` library's syntax).

Why "plan parts": the engine makes one prompt per request, so a job whose images need different prompts is split
into consecutive parts (each a run of images with one prompt, never longer than a batch), and image `i` keeps the
seed `seed + i` it would have had anyway. In random mode the variant of image `i` is drawn from that seed alone, so
the same seed gives the same prompt whether the image was the 5th of a batch in the UI or the only one of an API
call. A1111's own syntax (`[a|b]` alternation, `[a:b:0.5]`, `(x:1.2)`, `<lora:x:1>`, `BREAK`, `AND`) has no `{}` or
`__` and passes through untouched.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
from dynamicprompts.wildcards import WildcardManager

DEFAULT_MAX_COMBINATIONS = 100
MAX_JOB_IMAGES = 1000  # the app's own cap on one job's images (batch count x batch size): all stay in memory
OPTION_NAMES = ("enabled", "combinatorial", "max_generations", "fixed_seed")


class TemplateError(ValueError):
    """The template is not valid dynamic-prompts syntax (e.g. an unclosed `{`)."""


@dataclass(frozen=True)
class DynamicOptions:
    """How to expand: `combinatorial` makes every combination (at most `max_generations`, 0 = the extension's
    cap) instead of drawing one per image; `fixed_seed` draws one variant for every image (random mode) or gives
    every combination the same seed (combinatorial mode)."""

    enabled: bool = True
    combinatorial: bool = False
    max_generations: int = 0
    fixed_seed: bool = False

    @classmethod
    def from_values(cls, args: Sequence[object], fields: Mapping[str, object],
                    defaults: DynamicOptions) -> DynamicOptions:
        """Options from positional args (`[enabled, combinatorial, max_generations, fixed_seed]`, any prefix) and
        named fields (same names), over `defaults` (the extension's settings)."""
        values: dict[str, object] = {
            "enabled": defaults.enabled, "combinatorial": defaults.combinatorial,
            "max_generations": defaults.max_generations, "fixed_seed": defaults.fixed_seed}
        values.update(zip(OPTION_NAMES, args, strict=False))
        values.update({k: v for k, v in fields.items() if k in OPTION_NAMES})
        try:
            generations = int(values["max_generations"] or 0)
        except (TypeError, ValueError):
            raise TemplateError(f"Dynamic prompts: max generations must be a whole number "
                                f"(got {values['max_generations']!r}).") from None
        return cls(_flag(values["enabled"]), _flag(values["combinatorial"]), max(0, generations),
                   _flag(values["fixed_seed"]))


@dataclass(frozen=True)
class Part:
    """`count` consecutive images with one prompt; the first is image `first` of the job (seed `seed + first`)."""

    prompt: str
    negative_prompt: str
    first: int
    count: int


def is_dynamic(text: str) -> bool:
    """Whether `text` uses any dynamic-prompts syntax (cheap test before the parser runs)."""
    return "{" in text or "__" in text


class PromptExpander:
    """Expands templates against the wildcard files in `wildcard_dirs` (all merged into one namespace:
    `__animal__` is `animal.txt` in any of them, `__sub/name__` a file in a subfolder)."""

    def __init__(self, wildcard_dirs: Sequence[Path], max_combinations: int = DEFAULT_MAX_COMBINATIONS):
        dirs = [d for d in wildcard_dirs if d.is_dir()]
        self._wildcards = WildcardManager(root_map={"": dirs}) if dirs else WildcardManager()
        self._max = max(1, max_combinations)

    def wildcard_names(self) -> list[str]:
        return sorted(self._wildcards.get_collection_names())

    def random_prompt(self, template: str, seed: int) -> str:
        """The variant seed `seed` draws: a fresh generator per call, so nothing but the seed decides it."""
        if not is_dynamic(template):
            return template
        generator = RandomPromptGenerator(self._wildcards)
        return _run(lambda: generator.generate(template, 1, seeds=[seed])[0], template)

    def combinations(self, template: str, limit: int = 0) -> list[str]:
        """Every combination, in the library's order, at most `limit` (0: the expander's cap)."""
        cap = min(limit, self._max) if limit > 0 else self._max
        if not is_dynamic(template):
            return [template]
        generator = CombinatorialPromptGenerator(self._wildcards)
        return _run(lambda: generator.generate(template, max_prompts=cap), template) or [""]

    def plan(self, template: str, negative: str, seed: int, batch_size: int, n_iter: int,
             options: DynamicOptions) -> list[Part]:
        """The parts of a job of `n_iter` batches of `batch_size` images whose first seed is `seed`."""
        if options.combinatorial:
            return self._combinatorial_plan(template, negative, seed, batch_size, n_iter, options)
        total = batch_size * n_iter
        if options.fixed_seed:
            return [Part(self.random_prompt(template, seed), self.random_prompt(negative, seed), 0, total)]
        prompts = [(self.random_prompt(template, seed + i), self.random_prompt(negative, seed + i))
                   for i in range(total)]
        parts: list[Part] = []
        for i, (prompt, neg) in enumerate(prompts):
            last = parts[-1] if parts else None
            same_batch = last is not None and last.first // batch_size == i // batch_size
            if last is not None and same_batch and (last.prompt, last.negative_prompt) == (prompt, neg):
                parts[-1] = Part(prompt, neg, last.first, last.count + 1)
            else:
                parts.append(Part(prompt, neg, i, 1))
        return parts

    def _combinatorial_plan(self, template: str, negative: str, seed: int, batch_size: int, n_iter: int,
                            options: DynamicOptions) -> list[Part]:
        """Each combination once per batch (`n_iter` rounds); fixed seed: every part starts at the first seed."""
        combos = self.combinations(template, options.max_generations)
        if len(combos) * batch_size * n_iter > MAX_JOB_IMAGES:
            raise TemplateError(f"Dynamic prompts: {len(combos)} combinations x batch size {batch_size} x batch "
                                f"count {n_iter} makes more than {MAX_JOB_IMAGES} images; lower Max generations "
                                "or the batch settings.")
        parts: list[Part] = []
        first = 0
        for _ in range(n_iter):
            for combo in combos:
                start = 0 if options.fixed_seed else first
                parts.append(Part(combo, self.random_prompt(negative, seed + start), start, batch_size))
                first += batch_size
        return parts


def _run(fn, template: str):
    """Run a library call, turning its parse errors into `TemplateError` with the template named."""
    try:
        return fn()
    except (ValueError, NotImplementedError, RecursionError) as exc:
        raise TemplateError(f"Dynamic prompts could not read the prompt {template!r}: {exc}") from exc
    except Exception as exc:  # pyparsing's ParseBaseException is not a ValueError
        if type(exc).__module__.startswith("pyparsing"):
            raise TemplateError(f"Dynamic prompts could not read the prompt {template!r}: {exc}") from exc
        raise


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
