"""Does the shipped demo model draw what the prompt says? Pixel statistics over trained and held-out prompts.

Why pixel statistics: the demo images are one flat shape on a flat background, so no learned judge is needed.
The background colour is read from the image border, the foreground colour from the pixels that differ from it,
and the shape from how much of its bounding box the foreground's largest blob fills (circle pi/4 = 0.785,
square 1.0, triangle 0.5). An image is "all right" when background, foreground colour and shape all match.

The checkpoint is loaded through the app's own loader (`load_checkpoint`) and sampled the way txt2img does
(CPU noise per seed, the app's sampler table), at default settings: 20 steps, CFG 6, 64x64, DPM++ 2M and Euler a.
Held-out prompts name (colour, shape, background) triples that never appeared in training.

Usage: python benchmarks/demo_quality.py [--checkpoint PATH] [--seeds 3] [--trained 24] [--grid out.png]
Goal: >= 90% all right on trained prompts, >= 80% on held-out prompts.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tools.demo_dataset import COLOURS, FILL_RATIOS, held_out_triples, training_triples  # noqa: E402

DEMO_CHECKPOINT = REPO_ROOT / "webui" / "assets" / "demo" / "demo-shapes.safetensors"
SAMPLERS = ("DPM++ 2M", "Euler a")
STEPS, CFG, SIZE = 20, 6.0, 64
BORDER = 3  # pixels; the training images keep 4 px of pure background along the edge
MIN_FOREGROUND = 20  # pixels; fewer means "no shape drawn"
BACKGROUND_DISTANCE = 60.0  # RGB distance from the background colour that counts as foreground
_PALETTE_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _PALETTE_NAMES], dtype=np.float32)
_SHAPE_NAMES = tuple(FILL_RATIOS)
_SHAPE_RATIOS = np.array([FILL_RATIOS[n] for n in _SHAPE_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Score:
    """What an image shows according to the pixel statistics (None: nothing recognisable)."""

    bg: str
    fg: str | None
    shape: str | None
    fill: float

    def matches(self, fg: str, shape: str, bg: str) -> tuple[bool, bool, bool]:
        return self.bg == bg, self.fg == fg, self.shape == shape


def nearest_colour(rgb: np.ndarray) -> str:
    return _PALETTE_NAMES[int(np.argmin(np.linalg.norm(_PALETTE - rgb, axis=1)))]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected blob of a boolean mask (a plain flood fill: images are 64x64)."""
    height, width = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size, current = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        stack, size = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = current
                    stack.append((ny, nx))
        if size > best_size:
            best_label, best_size = current, size
    return labels == best_label if best_label else np.zeros_like(mask)


def classify_fill(fill: float) -> str:
    return _SHAPE_NAMES[int(np.argmin(np.abs(_SHAPE_RATIOS - fill)))]


def score_image(image: Image.Image | np.ndarray) -> Score:
    """Background from the border's median colour; foreground = pixels nearer their own median colour than the
    background's; shape from the fill ratio of the largest foreground blob's bounding box."""
    pixels = np.asarray(image, dtype=np.float32)[..., :3]
    border = np.concatenate([pixels[:BORDER].reshape(-1, 3), pixels[-BORDER:].reshape(-1, 3),
                             pixels[:, :BORDER].reshape(-1, 3), pixels[:, -BORDER:].reshape(-1, 3)])
    bg_rgb = np.median(border, axis=0)
    bg = nearest_colour(bg_rgb)
    inner = pixels[BORDER:-BORDER, BORDER:-BORDER]
    candidates = np.linalg.norm(inner - bg_rgb, axis=-1) > BACKGROUND_DISTANCE
    if candidates.sum() < MIN_FOREGROUND:
        return Score(bg, None, None, 0.0)
    fg_rgb = np.median(inner[candidates], axis=0)
    mask = np.linalg.norm(inner - fg_rgb, axis=-1) < np.linalg.norm(inner - bg_rgb, axis=-1)
    blob = largest_component(mask)
    if blob.sum() < MIN_FOREGROUND:
        return Score(bg, nearest_colour(fg_rgb), None, 0.0)
    ys, xs = np.nonzero(blob)
    fill = float(blob.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
    return Score(bg, nearest_colour(fg_rgb), classify_fill(fill), fill)


def prompt_for(fg: str, shape: str, bg: str) -> str:
    return f"a {fg} {shape} on a {bg} background"


def load_demo_pipeline(checkpoint: Path, cache_dir: Path):
    """The app's loader, on the CPU in fp32 (what the app uses on a CPU)."""
    from webui.engine.models.loader import load_checkpoint

    pipe = load_checkpoint(checkpoint, cache_dir=cache_dir, device="cpu", dtype=torch.float32).pipeline
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.inference_mode()
def generate(pipe, prompt: str, seeds: Sequence[int], sampler: str = SAMPLERS[0], *, steps: int = STEPS,
             cfg: float = CFG, size: int = SIZE, negative_prompt: str = "") -> list[Image.Image]:
    """One batch the way txt2img makes it: the app's sampler table, one CPU noise generator per seed."""
    from webui.engine.generation.scheduler_factory import make_scheduler

    pipe.scheduler, _, _ = make_scheduler(dict(pipe.scheduler.config), sampler, seed=seeds[0])
    shape = (pipe.vae.config.latent_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
    # A1111's noise: drawn on the CPU from one generator per seed, so image i depends only on its own seed.
    noise = torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])
    output = pipe(prompt=[prompt] * len(seeds), negative_prompt=[negative_prompt] * len(seeds),
                  num_inference_steps=steps, guidance_scale=cfg, width=size, height=size, latents=noise,
                  generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="pil")
    return list(output.images)


@dataclass
class Tally:
    """Counts of right answers per aspect over a set of images."""

    images: int = 0
    bg: int = 0
    fg: int = 0
    shape: int = 0
    all: int = 0

    def add(self, bg: bool, fg: bool, shape: bool) -> None:
        self.images += 1
        self.bg += bg
        self.fg += fg
        self.shape += shape
        self.all += bg and fg and shape

    def percent(self, field: str) -> float:
        return 100.0 * getattr(self, field) / max(1, self.images)

    def line(self, name: str) -> str:
        return (f"{name:<10} {self.images:>4} images  bg {self.percent('bg'):5.1f}%  "
                f"fg colour {self.percent('fg'):5.1f}%  shape {self.percent('shape'):5.1f}%  "
                f"all right {self.percent('all'):5.1f}%")


def trained_subset(count: int) -> list[tuple[str, str, str]]:
    """`count` training triples spread evenly over the (fixed-order) list, so every colour and shape appears."""
    triples = training_triples()
    if count >= len(triples):
        return triples
    step = len(triples) / count
    return [triples[int(i * step)] for i in range(count)]


def evaluate(pipe, triples: Sequence[tuple[str, str, str]], seeds: Sequence[int], samplers: Sequence[str],
             grid: list[Image.Image] | None = None, *, cfg: float = CFG, steps: int = STEPS) -> tuple[Tally, list[str]]:
    """Score every (triple, sampler) over `seeds`; returns the tally and a line per wrong image."""
    tally, misses = Tally(), []
    for fg, shape, bg in triples:
        for sampler in samplers:
            for seed, image in zip(seeds, generate(pipe, prompt_for(fg, shape, bg), seeds, sampler,
                                                       cfg=cfg, steps=steps), strict=True):
                score = score_image(image)
                tally.add(*score.matches(fg, shape, bg))
                if grid is not None:
                    grid.append(image)
                if not all(score.matches(fg, shape, bg)):
                    misses.append(f"  {prompt_for(fg, shape, bg)!r} {sampler} seed {seed}: saw {score.fg} "
                                  f"{score.shape} (fill {score.fill:.2f}) on {score.bg}")
    return tally, misses


def save_grid(images: list[Image.Image], path: Path, columns: int) -> None:
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * SIZE, rows * SIZE), (128, 128, 128))
    for i, image in enumerate(images):
        sheet.paste(image, ((i % columns) * SIZE, (i // columns) * SIZE))
    sheet.save(path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per prompt and sampler (1000, 1001, ...)")
    parser.add_argument("--trained", type=int, default=24, help="trained triples to test (151 = all)")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--cfg", type=float, default=CFG, help="classifier-free guidance scale")
    parser.add_argument("--steps", type=int, default=STEPS, help="sampling steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grid", type=Path, default=None, help="save all images as a contact sheet (PNG)")
    parser.add_argument("--verbose", action="store_true", help="list every wrong image")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [1000 + i for i in range(args.seeds)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="demo-quality-") as cache:
        pipe = load_demo_pipeline(args.checkpoint, Path(cache))
        grid: list[Image.Image] | None = [] if args.grid else None
        results = {name: evaluate(pipe, triples, seeds, args.samplers, grid, cfg=args.cfg, steps=args.steps)
                   for name, triples in (("trained", trained_subset(args.trained)), ("held-out", held_out_triples()))}
    print(f"Demo model {args.checkpoint.name}: {args.steps} steps, CFG {args.cfg}, {SIZE}x{SIZE}, samplers "
          f"{', '.join(args.samplers)}, seeds {seeds[0]}..{seeds[-1]} ({time.perf_counter() - started:.0f} s)")
    for name, (tally, misses) in results.items():
        print(tally.line(name))
        if args.verbose:
            print("\n".join(misses))
    if grid is not None and args.grid is not None:
        save_grid(grid, args.grid, columns=len(seeds) * len(args.samplers))
        print(f"Contact sheet: {args.grid}")
    trained, held = results["trained"][0], results["held-out"][0]
    met = trained.percent("all") >= 90 and held.percent("all") >= 80
    print(f"Goal (>= 90% trained, >= 80% held-out all right): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
