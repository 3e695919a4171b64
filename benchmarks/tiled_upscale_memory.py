"""Tiled upscaler memory benchmark: peak RSS of a model upscale of a 2048x2048 image (x4 -> 8192x8192) run tile by
tile (the `ESRGAN_tile` / `ESRGAN_tile_overlap` settings) against the whole image at once, with a random-weight
Real-ESRGAN-layout RRDBNet (`webui.testing.upscaler_files`) loaded through the app's `UpscalerLibrary` (spandrel).

Each variant runs in a fresh subprocess (peak RSS is a per-process high-water mark); the parent compares them and
checks that the tiled result matches the untiled one: exactly enough (max |diff| <= 1 of 255) when the overlap
covers the model's receptive field, and close (mean |diff| reported) at the default overlap of 8.

Usage: `python benchmarks/tiled_upscale_memory.py [--size 2048] [--out result.json]`; CPU only.

Measured once (2-core CPU, 1 torch thread, a training run on the other core; RRDBNet 1 block, 16 features,
growth 32, x4; 2048x2048 -> 8192x8192):
    untiled (tile 0)         peak RSS 14,234 MiB (+13,385 MiB over the loaded model)  467 s
    tiled 192 / overlap 8    peak RSS  3,995 MiB (+3,147 MiB)                          155 s  max |diff| 2, mean 0.0023
    tiled 192 / overlap 48   peak RSS  3,995 MiB (+3,147 MiB)                          205 s  max |diff| 0
    ratio untiled / tiled (192/8): 3.6x peak RSS (4.3x the increase over the loaded model)
(|diff| against the untiled result, in 8-bit levels.) The tiled peak is what the 8192x8192 output itself costs
(float32 accumulators, then the 8-bit image), so it grows with the output size only; the untiled peak adds every
feature map at 8192x8192. Tiling was also faster here (smaller working set).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"untiled": (0, 0), "tiled 192/8": (192, 8), "tiled 192/48": (192, 48)}
MODEL = "bench-x4"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(folder: Path, size: int, tile: int, overlap: int, out: Path) -> None:
    """One variant in this (fresh) process: load, upscale, save the result, print the numbers as JSON."""
    import numpy as np
    import torch
    from PIL import Image

    from webui.engine.upscale.upscalers import UpscalerLibrary

    torch.set_num_threads(1)
    library = UpscalerLibrary((folder,), torch.device("cpu"), tiling=lambda: (tile, overlap))
    library.model_scale(MODEL)  # load the model before the baseline
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC)
    baseline = _rss_mib()
    started = time.perf_counter()
    result = library.upscale(source, MODEL, (size * 4, size * 4))
    seconds = time.perf_counter() - started
    peak = _rss_mib()
    pixels = np.asarray(result)
    np.save(out, pixels)
    print(json.dumps({"peak_rss_mib": peak, "baseline_rss_mib": baseline, "seconds": seconds,
                      "size": list(result.size), "output_std": float(pixels.std())}))


def write_model(path: Path) -> None:
    """The random RRDBNet, its weights rescaled to keep the signal's size through the network (std 1/sqrt(fan-in))
    and the last bias set to mid-grey, so the output is a picture that depends on the input, not a black image
    that any tiling would reproduce."""
    import torch

    from webui.testing.upscaler_files import realesrgan_rrdb_state_dict

    state = realesrgan_rrdb_state_dict(num_feat=16, blocks=1)
    for key, tensor in state.items():
        if key.endswith(".weight"):
            state[key] = tensor / tensor.std() * (tensor[0].numel() ** -0.5)
    state["conv_last.bias"] = torch.full_like(state["conv_last.bias"], 0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": state}, path)


def run_variant(folder: Path, size: int, name: str, work: Path) -> dict:
    tile, overlap = VARIANTS[name]
    out = work / f"{name.replace(' ', '_').replace('/', '-')}.npy"
    command = [sys.executable, __file__, "--child", str(folder), "--size", str(size), "--tile", str(tile),
               "--overlap", str(overlap), "--result", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "tile": tile, "overlap": overlap, "result": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--overlap", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.size, args.tile, args.overlap, args.result)
        return

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_model(work / "models" / f"{MODEL}.pth")
        rows = {name: run_variant(work / "models", args.size, name, work) for name in VARIANTS}
        whole = np.load(rows["untiled"]["result"]).astype(int)
        for name, row in rows.items():
            diff = np.abs(np.load(row.pop("result")).astype(int) - whole)
            row.update(max_abs_diff=int(diff.max()), mean_abs_diff=float(diff.mean()))
            grown = row["peak_rss_mib"] - row["baseline_rss_mib"]
            print(f"{name:14s} peak RSS {row['peak_rss_mib']:9,.0f} MiB (+{grown:,.0f} MiB over the loaded model)"
                  f"  {row['seconds']:6.0f} s  max |diff| {row['max_abs_diff']}"
                  f"  mean |diff| {row['mean_abs_diff']:.4f}")
    untiled, tiled = rows["untiled"], rows["tiled 192/8"]
    ratio = untiled["peak_rss_mib"] / tiled["peak_rss_mib"]
    growth = (untiled["peak_rss_mib"] - untiled["baseline_rss_mib"]) / \
        (tiled["peak_rss_mib"] - tiled["baseline_rss_mib"])
    print(f"ratio untiled / tiled (192/8): {ratio:.1f}x peak RSS ({growth:.1f}x the increase over the loaded model)")
    assert rows["tiled 192/48"]["max_abs_diff"] <= 1, "tiled (overlap 48) differs from untiled"
    assert tiled["mean_abs_diff"] < 0.5, "tiled (overlap 8) differs from untiled"
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "ratio": ratio, "growth_ratio": growth}, indent=2))


if __name__ == "__main__":
    main()
