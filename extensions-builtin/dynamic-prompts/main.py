"""Dynamic prompts: `{a|b|c}`, `{2$$a|b|c}` and `__wildcard__` in txt2img/img2img prompts, expanded per image.

Written only against `webui.extensions.api`. The before-generation hook turns a request into one request per run
of images that share a prompt (image `i` keeps seed `seed + i`); the infotext hook writes the template next to the
expanded prompt (`Template`, `Negative Template`, as A1111's sd-dynamic-prompts does). Options come from the
controls under the generation panel, from the API's `alwayson_scripts["dynamic-prompts"]` (`{"args": [enabled,
combinatorial, max_generations, fixed_seed]}` or the same names as a dict), or else from this extension's
settings.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from webui.extensions.api import ExtensionContext, RequestArgs, RequestRejected

from .expansion import DEFAULT_MAX_COMBINATIONS, DynamicOptions, PromptExpander, TemplateError, is_dynamic

MARK = "expanded_from"  # field set on split requests: the template they came from (never expanded twice)
NEGATIVE_MARK = "negative_expanded_from"


class DynamicPrompts:
    """The extension's hooks and controls, holding only the context."""

    def __init__(self, ext: ExtensionContext):
        self._ext = ext

    # --- options --------------------------------------------------------------------------------------------
    def defaults(self) -> DynamicOptions:
        """The extension's settings: what an API request without `alwayson_scripts` gets."""
        ext = self._ext
        return DynamicOptions(bool(ext.setting("dynamic_prompts_enabled")),
                              bool(ext.setting("dynamic_prompts_combinatorial")),
                              int(ext.setting("dynamic_prompts_max_generations") or 0),
                              bool(ext.setting("dynamic_prompts_fixed_seed")))

    def wildcard_dirs(self) -> list[Path]:
        """`<data>/wildcards`, then every extension folder's `wildcards/` (built-in and user extensions)."""
        paths = self._ext.paths
        dirs = [paths.wildcards_dir]
        for root in dict.fromkeys((paths.extension_dir.parent, paths.data_dir / "extensions")):
            if root.is_dir():
                dirs += sorted(p / "wildcards" for p in root.iterdir() if (p / "wildcards").is_dir())
        return dirs

    def expander(self) -> PromptExpander:
        """Built per request, so wildcard files added while the app runs are used at once."""
        limit = int(self._ext.setting("dynamic_prompts_max_combinations") or DEFAULT_MAX_COMBINATIONS)
        return PromptExpander(self.wildcard_dirs(), limit)

    # --- hooks ----------------------------------------------------------------------------------------------
    def before_generation(self, request: Any) -> Any:
        """The request with its prompt expanded, or a list of requests when the images need different prompts."""
        args = self._ext.request_args(request)
        if args.field(MARK) is not None:
            return request
        template, negative = request.prompt, request.negative_prompt
        if not (is_dynamic(template) or is_dynamic(negative)):
            return request
        try:
            options = DynamicOptions.from_values(args.args, args.field_map, self.defaults())
            if not options.enabled:
                return request
            parts = self.expander().plan(template, negative, request.seed, request.batch_size, request.n_iter,
                                         options)
        except TemplateError as exc:  # the user's typo: the request fails with the reason, the extension stays on
            raise RequestRejected(f"{exc} (Turn dynamic prompts off to use the braces literally.)") from exc
        marked = RequestArgs(name=self._ext.name, args=args.args,
                             fields=(*args.fields, (MARK, template), (NEGATIVE_MARK, negative)))
        base = self._ext.with_request_args(request, marked)
        total = request.batch_size * request.n_iter
        if len(parts) == 1 and parts[0].first == 0 and parts[0].count == total:
            return dataclasses.replace(base, prompt=parts[0].prompt, negative_prompt=parts[0].negative_prompt)
        return [dataclasses.replace(base, prompt=part.prompt, negative_prompt=part.negative_prompt,
                                    seed=request.seed + part.first, subseed=_offset(request.subseed, part.first),
                                    batch_size=part.count, n_iter=1) for part in parts]

    def infotext_fields(self, request: Any, index: int) -> dict[str, str]:
        """`Template` / `Negative Template` when the prompt was expanded from them."""
        args = self._ext.request_args(request)
        template, negative = args.field(MARK), args.field(NEGATIVE_MARK)
        fields: dict[str, str] = {}
        if template is not None and template != request.prompt:
            fields["Template"] = template
        if negative and negative != request.negative_prompt:
            fields["Negative Template"] = negative
        return fields

    # --- controls -------------------------------------------------------------------------------------------
    def controls(self, tab: str) -> list[Any]:
        """Enabled, Combinatorial, Max generations, Fixed seed: the order of `alwayson_scripts` args."""
        import gradio as gr

        defaults = self.defaults()
        enabled = gr.Checkbox(label="Dynamic prompts enabled", value=defaults.enabled,
                              elem_id=f"{tab}_dynamic_prompts_enabled")
        combinatorial = gr.Checkbox(label="Combinatorial generation (every combination, once per batch)",
                                    value=defaults.combinatorial, elem_id=f"{tab}_dynamic_prompts_combinatorial")
        generations = gr.Number(label="Max generations (0 = up to the combinations limit in Settings)",
                                value=defaults.max_generations, precision=0, minimum=0,
                                elem_id=f"{tab}_dynamic_prompts_max_generations")
        fixed = gr.Checkbox(label="Fixed seed (random: one variant for every image; combinatorial: "
                                  "every combination gets the same seed)",
                            value=defaults.fixed_seed, elem_id=f"{tab}_dynamic_prompts_fixed_seed")
        names = ", ".join(f"__{name}__" for name in self.expander().wildcard_names()) or "none yet"
        gr.Markdown(f"Syntax: `{{a|b|c}}`, `{{2$$a|b|c}}`, `__name__` for `wildcards/name.txt` in the data "
                    f"folder. Wildcards: {names}")
        return [enabled, combinatorial, generations, fixed]


def _offset(subseed: int, first: int) -> int:
    return subseed + first if subseed >= 0 else subseed


def setup(ext: ExtensionContext) -> None:
    ext.add_setting("dynamic_prompts_enabled", True, "Expand {a|b} and __wildcards__ in prompts",
                    section="Dynamic prompts")
    ext.add_setting("dynamic_prompts_combinatorial", False, "Combinatorial generation by default",
                    section="Dynamic prompts")
    ext.add_setting("dynamic_prompts_fixed_seed", False, "Fixed seed by default", section="Dynamic prompts")
    ext.add_setting("dynamic_prompts_max_generations", 0, "Max generations by default (0 = the limit below)",
                    section="Dynamic prompts")
    ext.add_setting("dynamic_prompts_max_combinations", DEFAULT_MAX_COMBINATIONS,
                    "Most combinations one combinatorial job makes", section="Dynamic prompts")
    extension = DynamicPrompts(ext)
    ext.before_generation(extension.before_generation)
    ext.infotext_fields(extension.infotext_fields)
    ext.add_generation_controls(extension.controls)
