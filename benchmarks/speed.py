"""Speed benchmark: our txt2img against the bare diffusers pipeline on the same full-size SD1.5 file, in one run.

What it measures (each as medians of interleaved repeats with min-max spread, ours and bare alternating so a busy
machine slows both alike):
- per-image time, ours (`services.generation.txt2img`: queue, resolve, conditioning, sampling, VAE, PNG with
  infotext written) vs bare `StableDiffusionPipeline.__call__` with the same scheduler class and settings, at each
  size, for float32 and for the bfloat16 CPU fast path (bare bf16 = the whole pipeline cast to bfloat16, the
  best plain-diffusers bf16 set-up), and with `--compile` when asked;
- checkpoint switch: a cold load against a switch back to a RAM-cached checkpoint;
- LoRA: applying a file to every attention projection, removing it, and a generation whose LoRA set is unchanged.

Random weights: the cost does not depend on the values. Usage:
`python benchmarks/speed.py [--sizes 256 512] [--steps 2] [--repeats 3] [--precisions float32 bfloat16]
[--compile] [--work DIR]` (DIR keeps the 2 GB checkpoint between runs). Results go to stdout as JSON and a
Markdown table (copied into benchmarks/README.md with the machine they ran on).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.foundation import write_full_sd15  # noqa: E402
from webui.core.requests import GenerationRequest  # noqa: E402
from webui.core.settings import MemoryFlags, Paths, Settings  # noqa: E402
from webui.engine.generation.scheduler_factory import make_scheduler  # noqa: E402
from webui.engine.runtime.cpu_features import cpu_flags  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.testing.lora_files import write_adapter  # noqa: E402
from webui.testing.tiny_models import write_tiny_checkpoint  # noqa: E402

CKPT = "sd15-random.safetensors"


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def data_dir_with(work: Path, name: str, checkpoints: list[Path]) -> Path:
    root = work / name
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    for ckpt in checkpoints:
        target = folder / ckpt.name
        if not target.exists():
            target.symlink_to(ckpt)
    return root


def services_for(root: Path, precision: str, compile_: bool = False, checkpoint: str = CKPT):
    settings = Settings(paths=Paths.from_dirs(root), include_demo_model=False, cpu_precision=precision,
                        memory=MemoryFlags(compile=compile_))
    services = build_services(settings)
    services.models.select_checkpoint(checkpoint)
    return services


def bare_pipeline(services, precision: str):
    """The plain diffusers pipeline over the same weights: shared modules in float32; for bfloat16 a copy of the
    whole pipeline cast to bfloat16 (what a diffusers user would run)."""
    from diffusers import StableDiffusionPipeline

    pipe = services.runtime.manager.require().pipeline
    components = dict(pipe.components)
    if precision == "bfloat16":
        for name in ("unet", "vae", "text_encoder"):
            components[name] = copy.deepcopy(components[name]).to(torch.float32).to(torch.bfloat16)
            components[name]._forward_pre_hooks.clear()
            components[name]._forward_hooks.clear()
    bare = StableDiffusionPipeline(**components, requires_safety_checker=False)
    bare.set_progress_bar_config(disable=True)
    return bare


def bare_call(bare, services, request: GenerationRequest):
    """What a diffusers user writes for the same task: txt2img; img2img (the Img2Img pipeline on the same
    modules); hires fix with a latent upscale (txt2img to latents, interpolate, img2img on the latents)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    config = services.runtime.manager.require().scheduler_config
    scheduler = make_scheduler(config, request.sampler_name, seed=request.seed)[0]
    common = dict(prompt=request.prompt, negative_prompt=request.negative_prompt, guidance_scale=request.cfg_scale,
                  generator=torch.Generator("cpu").manual_seed(request.seed))
    bare.scheduler = scheduler
    if request.img2img is not None or request.enable_hr:
        second = StableDiffusionImg2ImgPipeline(**bare.components, requires_safety_checker=False)
        second.set_progress_bar_config(disable=True)
    if request.img2img is not None:
        return second(image=list(request.img2img.init_images), strength=request.denoising_strength,
                      num_inference_steps=request.steps, output_type="pil", **common).images
    first = bare(num_inference_steps=request.steps, width=request.width, height=request.height,
                 output_type="latent" if request.enable_hr else "pil", **common).images
    if not request.enable_hr:
        return first
    width, height = request.hires_size
    factor = bare.vae_scale_factor
    latents = torch.nn.functional.interpolate(first, size=(height // factor, width // factor), mode="bilinear")
    second.scheduler = make_scheduler(config, request.sampler_name, seed=request.seed)[0]
    return second(image=latents, strength=request.denoising_strength, num_inference_steps=request.steps,
                  output_type="pil", **common).images


def task_request(base: GenerationRequest, task: str, size: int) -> GenerationRequest:
    """txt2img at `size`; img2img of a flat picture at `size`; hires fix from `size` to 1.5x with a latent
    upscale (A1111's "Latent" upscaler is bilinear) and as many second-pass steps as first-pass ones."""
    from PIL import Image

    from webui.core.requests import Img2ImgInputs

    request = dataclasses.replace(base, width=size, height=size)
    if task == "img2img":
        init = Image.new("RGB", (size, size), (90, 120, 200))
        return dataclasses.replace(request, img2img=Img2ImgInputs(init_images=(init,)), denoising_strength=1.0)
    if task == "hires":
        return dataclasses.replace(request, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent",
                                   hr_second_pass_steps=base.steps, denoising_strength=1.0)
    return request


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads). CPU time is the steadier of the two on a busy
    machine: time spent waiting for a core is not counted."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def ours_vs_bare(services, bare, request: GenerationRequest, repeats: int) -> dict[str, object]:
    first = services.generation.txt2img(request).images[0].image  # warm-up (and, with --compile, the compile)
    bare_call(bare, services, request)
    ours, plain, ours_cpu, plain_cpu = [], [], [], []
    for _ in range(repeats):
        wall, cpu = cpu_timed(lambda: services.generation.txt2img(request))
        ours.append(wall)
        ours_cpu.append(cpu)
        wall, cpu = cpu_timed(lambda: bare_call(bare, services, request))
        plain.append(wall)
        plain_cpu.append(cpu)
    ratios = [o / b for o, b in zip(ours, plain, strict=True)]
    cpu_ratios = [o / b for o, b in zip(ours_cpu, plain_cpu, strict=True)]
    return {"ours_s": spread(ours), "bare_s": spread(plain), "ratio": spread(ratios),
            "ours_cpu_s": spread(ours_cpu), "bare_cpu_s": spread(plain_cpu), "cpu_ratio": spread(cpu_ratios),
            "image": first}


def pixel_difference(a, b) -> dict[str, float]:
    """Mean and largest absolute difference (0-255) between two images of the same seed (the bf16 quality cost)."""
    import numpy as np

    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return {"mean": float(diff.mean()), "max": float(diff.max())}


def checkpoint_switch(work: Path, full: Path) -> dict[str, float]:
    second = work / f"{full.stem}-b.safetensors"
    if not second.exists():
        shutil.copy(full, second)
    root = data_dir_with(work, "switch", [full, second])
    services = services_for(root, "float32", checkpoint=full.name)
    services.runtime.options.update({"sd_checkpoints_limit": 2})
    try:
        cold = timed(lambda: services.models.select_checkpoint(second.name))
        cached = timed(lambda: services.models.select_checkpoint(full.name))
    finally:
        services.runtime.executor.shutdown()
    return {"cold_s": cold, "ram_cached_s": cached, "ratio": cold / cached}


def lora_costs(services, request: GenerationRequest, repeats: int) -> dict[str, object]:
    pipe = services.runtime.manager.require().pipeline
    lora = write_adapter(services.settings.paths.lora_dir / "bench.safetensors", pipe, "lora", rank=16,
                         targets=10**6)
    with_lora = dataclasses.replace(request, prompt=request.prompt + " <lora:bench:0.8>")
    adapters = services.runtime.manager.require().adapters
    plain, applied, unchanged, removed = [], [], [], []
    for _ in range(repeats):
        plain.append(timed(lambda: services.generation.txt2img(request)))
        applied.append(timed(lambda: services.generation.txt2img(with_lora)))
        calls = adapters.merge_calls
        unchanged.append(timed(lambda: services.generation.txt2img(with_lora)))
        assert adapters.merge_calls == calls, "an unchanged LoRA set must not merge again"
        removed.append(timed(lambda: services.generation.txt2img(request)))
    base = statistics.median(plain)
    return {"file_mb": round(lora.stat().st_size / 2**20, 1), "plain_image_s": spread(plain),
            "apply_extra_s": statistics.median(applied) - base,
            "unchanged_set_extra_s": statistics.median(unchanged) - base,
            "remove_extra_s": statistics.median(removed) - base}


def machine() -> str:
    flags = cpu_flags()
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads, native bf16: {', '.join(bf16) or 'no'}")


def table(report: dict) -> str:
    rows = ["| set-up | size | ours s/image | bare s/image | ours / bare (wall) | ours / bare (CPU time) |",
            "|---|---|---|---|---|---|"]
    for key, value in report["runs"].items():
        o, b, r, c = value["ours_s"], value["bare_s"], value["ratio"], value["cpu_ratio"]
        setup, size = key.rsplit("@", 1)
        rows.append(f"| {setup} | {size} | {o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f}) | "
                    f"{b['median']:.2f} ({b['min']:.2f}-{b['max']:.2f}) | {r['median']:.3f} "
                    f"({r['min']:.3f}-{r['max']:.3f}) | {c['median']:.3f} ({c['min']:.3f}-{c['max']:.3f}) |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--compile", action="store_true", help="add a --compile float32 run at the first size")
    parser.add_argument("--model", choices=("sd15", "tiny"), default="sd15",
                        help="tiny: the test suite's tiny SD1 model (a quick check of the script, not a measurement)")
    parser.add_argument("--tasks", nargs="+", default=["txt2img", "img2img", "hires"],
                        help="img2img and hires run at the first size only")
    parser.add_argument("--skip-switch", action="store_true")
    parser.add_argument("--skip-lora", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--work", type=Path, default=None, help="folder kept between runs (the checkpoint)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    full = work / (CKPT if args.model == "sd15" else "tiny-sd1.safetensors")
    if not full.exists():
        write_full_sd15(full) if args.model == "sd15" else write_tiny_checkpoint(full, "sd1", dtype=torch.float16)
    report: dict[str, object] = {"machine": machine(), "steps": args.steps, "repeats": args.repeats, "runs": {}}
    base = GenerationRequest(prompt="a photo of a lighthouse at dusk", negative_prompt="blurry", steps=args.steps,
                             seed=3, sampler_name="Euler", save_images=True)
    images: dict[str, object] = {}
    setups = [(p, False) for p in args.precisions] + ([("float32", True)] if args.compile else [])
    for precision, compile_ in setups:
        root = data_dir_with(work, f"data-{precision}{'-compile' if compile_ else ''}", [full])
        services = services_for(root, precision, compile_, full.name)
        try:
            bare = bare_pipeline(services, precision)
            sizes = args.sizes[:1] if compile_ else args.sizes
            runs = [("txt2img", size) for size in sizes] + [(task, sizes[0]) for task in args.tasks
                                                             if task != "txt2img" and not compile_]
            for task, size in runs:
                request = task_request(base, task, size)
                tag = "" if task == "txt2img" else f" {task}"
                label = f"{precision}{' + --compile' if compile_ else ''}{tag}@{size}"
                run = ours_vs_bare(services, bare, request, args.repeats)
                images[label] = run.pop("image")
                reference = images.get(f"float32{tag}@{size}")
                if precision != "float32" and reference is not None:
                    run["pixel_diff_vs_float32"] = pixel_difference(reference, images[label])
                report["runs"][label] = run
                print(label, json.dumps(report["runs"][label]), flush=True)
            if precision == "float32" and not compile_ and not args.skip_lora:
                report["lora"] = lora_costs(services, dataclasses.replace(base, width=args.sizes[0],
                                                                          height=args.sizes[0]), args.repeats)
        finally:
            services.runtime.executor.shutdown()
    if not args.skip_switch:
        report["checkpoint_switch"] = checkpoint_switch(work, full)
    print(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    main()
