"""Training benchmark (ratios measured in one run, each variant in its own spawned process for a clean peak RSS):

- our trainer's it/s against a minimal reference loop (same tiny SD1 model, same images, batch, PEFT LoRA targets
  and AdamW; the reference encodes images and captions every step and does nothing else);
- our trainer with latents + text embeddings cached (a second run reuses the disk cache);
- peak RSS of each.

Usage: `python benchmarks/training.py [--steps N] [--threads N] [--size PX] [--images N] [--batch N]`.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _setup(root: Path, size: int, images: int) -> tuple[Path, Path]:
    from webui.testing.tiny_models import write_tiny_checkpoint
    from webui.testing.training_data import write_kohya_dataset

    checkpoint = write_tiny_checkpoint(root / "tiny-sd1.safetensors", "sd1")
    dataset = write_kohya_dataset(root / "data", {"shapes": 1}, images_per_folder=images, sizes=((size, size),))
    return checkpoint, dataset


def _config(args, checkpoint: Path, dataset: Path, cached: bool):
    from webui.training.config import TrainingConfig

    return TrainingConfig(output_name="bench", base_model=str(checkpoint), dataset_dir=str(dataset),
                          resolution=args.size, min_bucket_reso=args.size, max_bucket_reso=args.size * 2,
                          bucket_reso_steps=8, max_train_steps=args.steps, batch_size=args.batch, network_dim=8,
                          network_alpha=8, learning_rate=1e-3, cache_latents=cached, cache_text_embeddings=cached)


def _rate(times: list[float]) -> float:
    """Steps per second between the first and the last step (setup and the first step's warm-up excluded)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def ours(args, root: str, cached: bool, queue) -> None:
    import torch

    from webui.training.events import EventSink
    from webui.training.session import TrainerPaths
    from webui.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    checkpoint, dataset = Path(root) / "tiny-sd1.safetensors", Path(root) / "data"
    times: list[float] = []
    sink = EventSink(None, listeners=(lambda e: times.append(time.perf_counter()) if e["type"] == "step" else None,))
    work = Path(root) / ("work-cached" if cached else "work")
    Trainer(_config(args, checkpoint, dataset, cached), TrainerPaths(work / "out", work, Path(root) / "cache"),
            sink).run()
    queue.put((_rate(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def reference(args, root: str, queue) -> None:
    """The smallest loop that trains the same LoRA: no dataset object, no caches, no events, no state."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig, inject_adapter_in_model

    from webui.engine.models.loader import load_checkpoint
    from webui.training.dataset import load_image
    from webui.training.lora_network import _LORA_UNET_SCOPES, _scoped_targets

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = load_checkpoint(Path(root) / "tiny-sd1.safetensors", cache_dir=Path(root) / "cache").pipeline
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=8, target_modules=_scoped_targets(pipe.unet,
                                                                                         _LORA_UNET_SCOPES)),
                            pipe.unet)
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, foreach=False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    files = sorted((Path(root) / "data").rglob("*.png"))
    times = []
    for step in range(args.steps):
        batch = [files[(step * args.batch + i) % len(files)] for i in range(args.batch)]
        pixels = torch.stack([load_image(f, (args.size, args.size)) for f in batch])
        with torch.no_grad():
            latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
            ids = pipe.tokenizer([f.with_suffix(".txt").read_text() for f in batch], padding="max_length",
                                 max_length=77, truncation=True, return_tensors="pt").input_ids
            context = pipe.text_encoder(ids)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (args.batch,))
        prediction = pipe.unet(noise_scheduler.add_noise(latents, noise, timesteps), timesteps, context).sample
        F.mse_loss(prediction, noise).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
    queue.put((_rate(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _measure(target, *args):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get(timeout=1800)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _setup(Path(tmp), args.size, args.images)
        ref_rate, ref_rss = _measure(reference, args, tmp)
        our_rate, our_rss = _measure(ours, args, tmp, False)
        _measure(ours, args, tmp, True)  # fills the latent/text cache
        cached_rate, cached_rss = _measure(ours, args, tmp, True)
    results = {
        "reference_its": round(ref_rate, 3), "ours_its": round(our_rate, 3), "ours_cached_its": round(cached_rate, 3),
        "ratio_ours_vs_reference": round(our_rate / ref_rate, 3),
        "ratio_cached_vs_reference": round(cached_rate / ref_rate, 3),
        "peak_rss_mb": {"reference": round(ref_rss), "ours": round(our_rss), "ours_cached": round(cached_rss)},
        "settings": vars(args),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
