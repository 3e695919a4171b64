"""Sample prompts (kohya prompt-file lines or a SimpleTuner prompt library) and sample images during training.

Why here: users judge a LoRA by its samples per epoch. kohya lines carry per-prompt options
(`--n` negative, `--w`/`--h` size, `--d` seed, `--l` CFG scale, `--s` steps); a SimpleTuner library is
`{"nickname": "prompt"}`. Sampling must not disturb training: it uses its own seeded generator and restores the
global RNG, so a run with samples has the same losses as one without.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from webui.core.errors import ValidationError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    negative: str = ""
    width: int = 0
    height: int = 0
    seed: int = 0
    cfg_scale: float = 7.0
    steps: int = 20
    name: str = ""


_OPTIONS = {"n": ("negative", str), "w": ("width", int), "h": ("height", int), "d": ("seed", int),
            "l": ("cfg_scale", float), "s": ("steps", int)}


def parse_prompt_line(line: str, index: int = 0) -> SamplePrompt | None:
    """One kohya prompt line -> a prompt; blank lines and `#` comments give None."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    parts = re.split(r"\s--(?=[a-z]+\s)", " " + line)
    sample = SamplePrompt(prompt=parts[0].strip(), name=f"{index:02d}")
    for part in parts[1:]:
        flag, _, value = part.partition(" ")
        option = _OPTIONS.get(flag)
        if option is None:
            continue  # other kohya options (--ss sampler, ...) are accepted and ignored
        field, kind = option
        try:
            sample = replace(sample, **{field: kind(value.strip())})
        except ValueError as err:
            raise ValidationError(f"Sample prompt line {index + 1}: --{flag} {value.strip()!r} is not valid.") \
                from err
    return sample


def parse_prompt_text(text: str) -> list[SamplePrompt]:
    prompts = [parse_prompt_line(line, i) for i, line in enumerate(text.splitlines())]
    return [p for p in prompts if p is not None]


def parse_prompt_library(data: object) -> list[SamplePrompt]:
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValidationError('A prompt library must be a JSON object {"nickname": "prompt", ...}.')
    return [SamplePrompt(prompt=prompt, name=_SAFE_NAME.sub("_", name)) for name, prompt in data.items()]


def load_sample_prompts(source: str, single_prompt: str = "") -> list[SamplePrompt]:
    """Prompts typed in (`single_prompt`: SimpleTuner's validation prompt or kohya lines) and from a file (a `.json`
    prompt library or kohya `.txt` lines)."""
    prompts = parse_prompt_text(single_prompt)  # one validation prompt, or kohya lines typed in the form
    if len(prompts) == 1:
        prompts[0] = replace(prompts[0], name="validation")
    if source.strip():
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValidationError(f"Sample prompt file '{source}' does not exist.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            try:
                prompts += parse_prompt_library(json.loads(text))
            except json.JSONDecodeError as err:
                raise ValidationError(f"Prompt library '{path.name}' is not valid JSON: {err}") from err
        else:
            prompts += parse_prompt_text(text)
    return prompts


def quote_prompt(sample: SamplePrompt) -> str:
    """The kohya line for a prompt (for logs and the job view)."""
    return " ".join([sample.prompt, *(f"--{k} {shlex.quote(str(getattr(sample, f)))}"
                                       for k, (f, _) in _OPTIONS.items() if getattr(sample, f))])


@torch.no_grad()
def generate_samples(pipe, prompts: list[SamplePrompt], folder: Path, tag: str, default_size: int,
                     device: torch.device) -> list[Path]:
    """Render each prompt with the network active; returns the written PNG paths.

    Samples use A1111's "Euler" (deterministic) rather than the pipeline's default scheduler: SD single files load
    with PNDM, which at kohya's 20 sample steps drew noise on the small demo model while Euler drew the prompt
    (measured), so a sample judged bad would blame the network for the sampler. Flow-matching pipelines keep
    their own flow-match Euler."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    original = pipe.scheduler
    if "FlowMatch" not in type(original).__name__:
        from diffusers import EulerDiscreteScheduler

        pipe.scheduler = EulerDiscreteScheduler.from_config(original.config)
    try:
        paths = _render(pipe, prompts, folder, tag, default_size, device)
    finally:
        pipe.scheduler = original
    return paths


def _render(pipe, prompts: list[SamplePrompt], folder: Path, tag: str, default_size: int,
            device: torch.device) -> list[Path]:
    paths = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for index, sample in enumerate(prompts):
            generator = torch.Generator(device="cpu").manual_seed(sample.seed)
            image = pipe(prompt=sample.prompt, negative_prompt=sample.negative or None,
                         width=sample.width or default_size, height=sample.height or default_size,
                         num_inference_steps=sample.steps, guidance_scale=sample.cfg_scale,
                         generator=generator).images[0]
            path = folder / f"{tag}-{index:02d}-{sample.name or index}.png"
            image.save(path)
            paths.append(path)
    return paths
