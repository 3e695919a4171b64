"""ControlNet benchmark: the per-step cost of one and two ControlNet units relative to no unit, same model, one run.
A T2I-Adapter unit is measured too (its features are computed once per image, so it should cost almost nothing
per step).

Per-step cost is measured by difference: each configuration generates at a short and a long step count, and
(t_long - t_short) / (steps_long - steps_short) removes what does not grow with steps (prompt encoding, the
ControlNet pipeline view, map preparation, VAE decode). Every configuration is repeated; the median is reported
with the spread (min-max) of the repeats. Models: `tiny` (the test models, CPU-friendly) or `sd15` (full-size
SD1.5 with random weights and full-size ControlNets, written in the original `control_model.*` layout; meant for
a GPU). Everything goes through the app's own services, as a user's request does.

Usage: `python benchmarks/controlnet.py [--model tiny|sd15] [--device cpu|cuda] [--size 64] [--repeats 3]
[--out results.json]`.
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
from diffusers import T2IAdapter  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from webui.core.control import ControlUnit  # noqa: E402
from webui.core.requests import GenerationRequest  # noqa: E402
from webui.core.settings import Paths, Settings  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.testing.tiny_controlnet import (  # noqa: E402
    adapter_to_original,
    controlnet_from_unet,
    controlnet_to_ldm,
    write_tiny_adapter,
    write_tiny_controlnet,
)
from webui.testing.tiny_models import write_tiny_checkpoint  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "webui" / "engine" / "models" / "configs" / "sd15"


def write_models(data: Path, model: str) -> str:
    """The checkpoint and two ControlNets in `data`; returns the checkpoint's file name."""
    ckpt_dir, cn_dir = data / "models" / "Stable-diffusion", data / "models" / "ControlNet"
    cn_dir.mkdir(parents=True, exist_ok=True)
    if model == "tiny":
        write_tiny_checkpoint(ckpt_dir / "tiny-sd1.safetensors", "sd1", dtype=torch.float32)
        for seed in (1, 2):
            write_tiny_controlnet(cn_dir / f"cn-{seed}.safetensors", "sd1", layout="ldm", seed=seed)
        write_tiny_adapter(cn_dir / "t2i-adapter.safetensors", layout="original", seed=3)
        return "tiny-sd1.safetensors"
    from diffusers import UNet2DConditionModel

    from benchmarks.foundation import write_full_sd15

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_full_sd15(ckpt_dir / "sd15-random.safetensors")
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "unet"))
    for seed in (1, 2):
        state = controlnet_to_ldm(controlnet_from_unet(unet, (16, 32, 96, 256), seed))
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()},
                  str(cn_dir / f"cn-{seed}.safetensors"))
    adapter = T2IAdapter(in_channels=3, channels=(320, 640, 1280, 1280), num_res_blocks=2, downscale_factor=8)
    save_file({k: v.to(torch.float16).contiguous() for k, v in adapter_to_original(adapter).items()},
              str(cn_dir / "t2i-adapter.safetensors"))  # TencentARC's full SD1.5 adapter, random weights
    return "sd15-random.safetensors"


def control_image(size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), outline="white", width=3)
    return image


def per_step(services, request: GenerationRequest, short: int, long: int, repeats: int) -> list[float]:
    """Seconds per step of each repeat (long minus short run), after one warm-up of each."""
    def seconds(steps: int) -> float:
        start = time.perf_counter()
        services.generation.txt2img(dataclasses.replace(request, steps=steps))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds(short), seconds(long)
    return [(seconds(long) - seconds(short)) / (long - short) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs=2, default=(2, 8), metavar=("SHORT", "LONG"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        data = Path(work)
        checkpoint = write_models(data, args.model)
        half = args.device.startswith("cuda")
        services = build_services(Settings(paths=Paths.from_dirs(data), device=args.device, half_precision=half,
                                           include_demo_model=False))
        try:
            services.models.select_checkpoint(checkpoint)
            base = GenerationRequest(prompt="a ring", steps=args.steps[0], width=args.size, height=args.size,
                                     seed=1, sampler_name="Euler", save_images=False)
            image = control_image(args.size)
            units = [ControlUnit(model=f"cn-{seed}", image=image) for seed in (1, 2)]
            adapter = (ControlUnit(model="t2i-adapter", image=image),)
            runs = {label: per_step(services, dataclasses.replace(base, control_units=chosen), *args.steps,
                                    args.repeats)
                    for label, chosen in (("no unit", ()), ("one unit", tuple(units[:1])),
                                          ("two units", tuple(units)), ("one T2I-Adapter unit", adapter))}
        finally:
            services.runtime.executor.shutdown()
    baseline = statistics.median(runs["no unit"])
    result = {"model": args.model, "device": args.device, "size": args.size, "steps": list(args.steps),
              "repeats": args.repeats,
              **{label: {"median_s_per_step": statistics.median(values), "min": min(values), "max": max(values),
                         "ratio_to_no_unit": statistics.median(values) / baseline}
                 for label, values in runs.items()}}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
