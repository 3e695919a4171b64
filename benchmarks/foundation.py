"""Foundation benchmark: cold checkpoint load (tiny and full-size SD1.5), seconds per UNet step at 256/512 for
the full-size model, and the per-image overhead of our txt2img against the bare diffusers pipeline.

Everything is measured in one run; overheads are reported as ratios. Random weights are fine: the cost of
loading and sampling does not depend on the values. Usage: `python benchmarks/foundation.py [--skip-full]`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from webui.core.requests import GenerationRequest  # noqa: E402
from webui.core.settings import Paths, Settings  # noqa: E402
from webui.engine.models.ldm_convert import pipeline_components_to_ldm  # noqa: E402
from webui.engine.models.loader import load_checkpoint  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.testing.tiny_models import write_tiny_checkpoint  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "webui" / "engine" / "models" / "configs" / "sd15"


def write_full_sd15(path: Path) -> Path:
    """A full-size SD1.5 checkpoint with random weights, fp16, in the original single-file layout."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    components = {
        "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "unet")),
        "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS / "vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(CONFIGS / "text_encoder")),
    }
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in
             pipeline_components_to_ldm(components, "sd1").items()}
    save_file(state, str(path))
    return path


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cold_load(path: Path, cache_dir: Path) -> float:
    seconds, _ = timed(lambda: load_checkpoint(path, cache_dir=cache_dir, device="cpu", dtype=torch.float32))
    return seconds


def overhead_ratio(ckpt: Path, work: Path, request: GenerationRequest, repeats: int) -> dict[str, float]:
    """Our `generation.txt2img` (queue, scheduler per request, CPU noise, infotext, PNG save) vs pipe(...) alone."""
    data_dir = work / "data"
    (data_dir / "models" / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    target = data_dir / "models" / "Stable-diffusion" / ckpt.name
    if not target.exists():
        target.symlink_to(ckpt)
    services = build_services(Settings(paths=Paths.from_dirs(data_dir), include_demo_model=False))
    services.models.select_checkpoint(ckpt.name)
    pipe = services.runtime.manager.require().pipeline
    services.generation.txt2img(request)  # warm-up: both paths then run on a warm pipeline

    def bare():
        generator = torch.Generator("cpu").manual_seed(request.seed)
        with torch.inference_mode():
            return pipe(prompt=request.prompt, negative_prompt=request.negative_prompt,
                        num_inference_steps=request.steps, guidance_scale=request.cfg_scale, width=request.width,
                        height=request.height, generator=generator, output_type="pil").images

    bare()
    ours_s, _ = timed(lambda: services.generation.txt2img(request), repeats)
    bare_s, _ = timed(bare, repeats)
    services.runtime.executor.shutdown()
    return {"ours_s": ours_s, "bare_s": bare_s, "ratio": ours_s / bare_s}


def per_step_seconds(ckpt: Path, cache_dir: Path, size: int, steps: int = 2) -> float:
    pipe = load_checkpoint(ckpt, cache_dir=cache_dir, device="cpu", dtype=torch.float32).pipeline
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        pipe.unet(torch.zeros(2, 4, size // 8, size // 8), 10,
                  torch.zeros(2, 77, pipe.text_encoder.config.hidden_size))  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            pipe.unet(torch.zeros(2, 4, size // 8, size // 8), 10,
                      torch.zeros(2, 77, pipe.text_encoder.config.hidden_size))
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-full", action="store_true", help="only the tiny-model measurements")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, object] = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"
        tiny = write_tiny_checkpoint(work / "tiny-sd1.safetensors", "sd1", dtype=torch.float16)
        cold_load(tiny, cache)  # the first call also builds the tokenizer files; measure a warm cache dir
        report["tiny_cold_load_s"] = cold_load(tiny, cache)
        tiny_request = GenerationRequest(prompt="a red circle", steps=10, width=64, height=64, seed=1,
                                         sampler_name="Euler", save_images=True)
        report["tiny_overhead"] = overhead_ratio(tiny, work / "tiny", tiny_request, repeats=5)
        if not args.skip_full:
            full = write_full_sd15(work / "sd15-random.safetensors")
            report["full_file_mb"] = round(full.stat().st_size / 2**20)
            report["full_cold_load_s"] = cold_load(full, cache)
            report["full_step_s_256"] = per_step_seconds(full, cache, 256)
            report["full_step_s_512"] = per_step_seconds(full, cache, 512, steps=1)
            full_request = dataclasses.replace(tiny_request, steps=2, width=256, height=256)
            report["full_overhead_256"] = overhead_ratio(full, work / "full", full_request, repeats=1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
