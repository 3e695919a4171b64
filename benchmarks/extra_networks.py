"""Extra-networks benchmark (ratios measured in one run):

- cached vs cold checkpoint switch (full-size SD1.5 layout, random weights);
- LoRA apply time vs checkpoint load time (rank-16 kohya LoRA on every UNet attention projection);
- UNet step time with a LoRA merged vs none (merging leaves no hooks: the ratio should be ~1.0);
- listing a folder of 2,000 small safetensors files (registry refresh + sd-models rows).

Usage: `python benchmarks/extra_networks.py [--threads N] [--skip-full]`.
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
from safetensors.torch import save_file  # noqa: E402

from benchmarks.foundation import write_full_sd15  # noqa: E402
from webui.core.settings import Paths, Settings  # noqa: E402
from webui.engine.networks.adapters import AdapterRequest  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.testing.tiny_models import write_tiny_checkpoint  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def write_attention_lora(path: Path, pipe, rank: int = 16) -> Path:
    tensors = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in ("to_q", "to_k", "to_v") or \
                name.endswith("to_out.0"):
            key = "lora_unet_" + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features) * 0.01
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank) * 0.01
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))
    return path


def unet_step_seconds(pipe, size: int, repeats: int = 3) -> float:
    latents = torch.zeros(2, 4, size // 8, size // 8)
    context = torch.zeros(2, 77, pipe.text_encoder.config.hidden_size)
    with torch.inference_mode():
        pipe.unet(latents, 10, context)
        start = time.perf_counter()
        for _ in range(repeats):
            pipe.unet(latents, 10, context)
    return (time.perf_counter() - start) / repeats


def switching(work: Path, model_files: list[Path], size: int) -> dict[str, float]:
    data = work / "data"
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for file in model_files:
        (ckpt_dir / file.name).symlink_to(file)
    services = build_services(Settings(paths=Paths.from_dirs(data), include_demo_model=False))
    services.options.update({"sd_checkpoints_limit": 2})
    a, b = model_files[0].name, model_files[1].name
    services.models.select_checkpoint(a)
    cold = seconds(lambda: services.models.select_checkpoint(b))
    cached = seconds(lambda: services.models.select_checkpoint(a))
    pipe = services.runtime.manager.require().pipeline
    lora = write_attention_lora(work / "bench-lora.safetensors", pipe)
    adapters = services.runtime.manager.require().adapters
    request = AdapterRequest("bench", lora, "bench-v1", 1.0, 1.0)
    apply_s = seconds(lambda: adapters.apply([request]))
    merged_step = unet_step_seconds(pipe, size)
    remove_s = seconds(lambda: adapters.apply([]))
    plain_step = unet_step_seconds(pipe, size)
    services.runtime.executor.shutdown()
    return {"cold_switch_s": cold, "cached_switch_s": cached, "cached_vs_cold": cached / cold,
            "lora_apply_s": apply_s, "lora_remove_s": remove_s, "lora_apply_vs_cold_load": apply_s / cold,
            "step_merged_s": merged_step, "step_plain_s": plain_step, "step_merged_vs_plain": merged_step / plain_step}


def listing(work: Path, count: int = 2000) -> dict[str, float]:
    data = work / "listing"
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    tiny = {"w": torch.zeros(4)}
    for i in range(count):
        save_file(tiny, str(folder / f"model-{i:05d}.safetensors"))
    services = build_services(Settings(paths=Paths.from_dirs(data), include_demo_model=False))
    refresh = seconds(services.models.refresh_models)
    rows = seconds(services.models.sd_models)
    services.runtime.executor.shutdown()
    return {"files": count, "refresh_s": refresh, "sd_models_rows_s": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-full", action="store_true", help="tiny models only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, object] = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tiny = [write_tiny_checkpoint(work / f"tiny-{i}.safetensors", "sd1", seed=i) for i in range(2)]
        report["tiny"] = switching(work / "t", tiny, 64)
        if not args.skip_full:
            full = [write_full_sd15(work / f"sd15-{i}.safetensors") for i in range(2)]
            report["full_sd15"] = switching(work / "f", full, 256)
        report["listing"] = listing(work)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
