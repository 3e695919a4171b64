"""Memory flags benchmark: peak GPU memory and sampling speed (it/s) of a full-size SD1.5 model (random weights)
at 512x512 with no flag, `--medvram` (model CPU offload) and `--lowvram` (sequential CPU offload).

All three run in one process, one after another, through the app's own services (so the flags go through
`webui.engine.runtime.memory` exactly as at launch). Ratios are against the no-flag run of the same invocation.
Needs a CUDA GPU; without one it says so and exits 0. Usage:
`python benchmarks/memory_flags.py [--steps 20] [--out benchmarks/results/memory_flags.json]`.
"""
from __future__ import annotations

import argparse
import json
import os
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
from webui.services import build_services  # noqa: E402

RUNS = {"no flag": MemoryFlags(), "--medvram": MemoryFlags(medvram=True), "--lowvram": MemoryFlags(lowvram=True)}


def measure(data_dir: Path, flags: MemoryFlags, steps: int) -> dict[str, float | str]:
    """One configuration: load, one warm-up image, then a timed image with the peak memory counter reset."""
    settings = Settings(paths=Paths.from_dirs(data_dir), device="cuda", half_precision=True, memory=flags,
                        include_demo_model=False)
    services = build_services(settings)
    try:
        services.models.select_checkpoint("sd15-random.safetensors")
        request = GenerationRequest(prompt="a photo of a cat", steps=steps, width=512, height=512, seed=1,
                                    sampler_name="Euler", save_images=False)
        services.generation.txt2img(GenerationRequest(prompt="warm-up", steps=2, width=512, height=512,
                                                      save_images=False))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        services.generation.txt2img(request)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        plan = services.runtime.manager.memory.last_plan
        return {"peak_gib": torch.cuda.max_memory_allocated() / 2**30, "it_per_s": steps / seconds,
                "seconds": seconds, "actions": ", ".join(plan.actions) if plan else ""}
    finally:
        services.runtime.executor.shutdown()
        services.runtime.manager.active = None
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA GPU: the memory-flag benchmark needs one (offloading has no effect on a CPU). Skipped.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        ckpt_dir = data_dir / "models" / "Stable-diffusion"
        ckpt_dir.mkdir(parents=True)
        write_full_sd15(ckpt_dir / "sd15-random.safetensors")
        results = {name: measure(data_dir, flags, args.steps) for name, flags in RUNS.items()}
    base = results["no flag"]
    print(f"SD1.5 (random weights), 512x512, {args.steps} steps, fp16, {torch.cuda.get_device_name()}")
    for name, row in results.items():
        print(f"{name:>10}: peak {row['peak_gib']:.2f} GiB ({row['peak_gib'] / base['peak_gib']:.2f}x), "
              f"{row['it_per_s']:.2f} it/s ({row['it_per_s'] / base['it_per_s']:.2f}x)  [{row['actions']}]")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "steps": args.steps,
                                        "results": results}, indent=2))


if __name__ == "__main__":
    main()
