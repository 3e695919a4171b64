"""Flow-family benchmark: per-image time of our generation path against the bare diffusers pipeline with the same
components, for AuraFlow and Flux, in one run.

Ours goes through the app's services (request resolved, queued on the executor, prompts encoded with emphasis
support, our flow-matching loop, infotext written, PNG not saved). The baseline is `AuraFlowPipeline` /
`FluxPipeline` loaded from the same diffusers folder, called with the same size, steps, guidance and sequence
length. Each is repeated; the median per-image time is reported with the spread, and the ratio ours / diffusers.
Models: the tiny test models (CPU-friendly), written once into a temporary data dir.

Usage: `python benchmarks/flow_families.py [--size 64] [--steps 8] [--repeats 3] [--device cpu] [--out r.json]`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from webui.core.requests import GenerationRequest  # noqa: E402
from webui.core.settings import Paths, Settings  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.testing.tiny_auraflow import write_tiny_auraflow  # noqa: E402
from webui.testing.tiny_flux import write_tiny_flux_folder  # noqa: E402

PROMPT, NEGATIVE = "a red circle on a blue background", "green"
# family -> (folder name, our CFG scale, the pipeline's guidance_scale, T5 tokens)
CASES = {"auraflow": ("tiny-auraflow", 3.5, 3.5, 256), "flux": ("tiny-flux", 1.0, 3.5, 512)}


def _timed(run: Callable[[], object], repeats: int) -> list[float]:
    run()  # warm-up: first-call allocations and lazy imports are not what we compare
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def measure(data: Path, family: str, args: argparse.Namespace) -> dict[str, object]:
    from diffusers import DiffusionPipeline

    folder, cfg, guidance, tokens = CASES[family]
    settings = Settings(paths=Paths.from_dirs(data), device=args.device, include_demo_model=False)
    services = build_services(settings)
    try:
        request = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=args.steps, width=args.size,
                                    height=args.size, seed=1, sampler_name="Euler", cfg_scale=cfg,
                                    distilled_cfg_scale=guidance, checkpoint=folder, save_images=False)
        ours = _timed(lambda: services.generation.txt2img(request), args.repeats)
    finally:
        services.runtime.executor.shutdown()
    pipe = DiffusionPipeline.from_pretrained(str(data / "models" / "Stable-diffusion" / folder),
                                             local_files_only=True).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    extra = {"negative_prompt": NEGATIVE} if family == "auraflow" else {}
    bare = _timed(lambda: pipe(PROMPT, width=args.size, height=args.size, num_inference_steps=args.steps,
                               guidance_scale=guidance, max_sequence_length=tokens,
                               generator=torch.Generator("cpu").manual_seed(1), **extra).images, args.repeats)
    result = {"ours": _summary(ours), "diffusers": _summary(bare)}
    result["ratio"] = result["ours"]["median_s"] / result["diffusers"]["median_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(tempfile.mkdtemp(prefix="flow-bench-"))
    try:
        models = data / "models" / "Stable-diffusion"
        write_tiny_auraflow(models / CASES["auraflow"][0])
        write_tiny_flux_folder(models / CASES["flux"][0])
        results = {family: measure(data, family, args) for family in CASES}
    finally:
        shutil.rmtree(data, ignore_errors=True)
    report = {"size": args.size, "steps": args.steps, "repeats": args.repeats, "device": args.device,
              "threads": args.threads, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
