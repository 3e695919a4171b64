"""Procedural "coloured shape on a coloured background" images, for the demo model and the LoRA walkthrough.

Why procedural: the demo checkpoint must be rebuilt from the repository alone, offline, and its quality must be
measurable with pixel statistics. Every image is one flat-coloured shape (circle, square, triangle; "star" for the
walkthrough's new word) on a flat background of another colour, drawn 4x supersampled so edges are smooth. A fixed
~10% of the (foreground, shape, background) triples never appear in training, so the evaluator can check that
the model composes colours and shapes it has only seen apart. Everything is deterministic for a given seed.

Usage (the LoRA walkthrough's dataset): `python tools/demo_dataset.py kohya --out datasets/zorb`
writes `datasets/zorb/1_zorb/000.png` + `000.txt`, ... (kohya's `<repeats>_<name>` folder layout): 240 images,
one repeat. Why that many for a LoRA: with 24 images x 10 repeats the tiny demo model learnt those 24 pictures
(backgrounds drifted to their colours); 240 different ones at the same step count taught the word and kept the
colours (measured on the demo model, README walkthrough settings).
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SUPERSAMPLE = 4
# Saturated, well separated colours, so "which colour is this pixel" is a nearest-neighbour question.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 20, 20),
    "green": (20, 170, 40),
    "blue": (20, 60, 230),
    "yellow": (250, 225, 20),
    "orange": (250, 130, 10),
    "purple": (140, 30, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
# Fill ratio of each shape inside its own bounding box; the evaluator tells shapes apart by it.
FILL_RATIOS = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}
# The evaluator's prompt form comes first and most often, so it is the best learned one.
TEMPLATES: tuple[tuple[str, int], ...] = (
    ("a {fg} {shape} on a {bg} background", 6),
    ("{fg} {shape} on {bg}", 1),
    ("a {fg} {shape}, {bg} background", 1),
    ("a picture of a {fg} {shape} on a {bg} background", 1),
    ("{bg} background with a {fg} {shape}", 1),
)
HOLDOUT_SEED = 1234
HOLDOUT_FRACTION = 0.1
EMPTY_CAPTION_FRACTION = 0.1
RADIUS_RANGE = (10, 22)  # half the shape's width in pixels at 64 px
MARGIN = 4  # pixels of pure background kept along the border (the evaluator reads the background there)

Triple = tuple[str, str, str]  # (foreground colour, shape, background colour)


@dataclass(frozen=True)
class Sample:
    """One drawn image (uint8 HxWx3), what it shows and its caption ("" for the unconditional share)."""

    image: np.ndarray
    fg: str
    shape: str
    bg: str
    caption: str


def all_triples(shapes: Sequence[str] = SHAPES) -> list[Triple]:
    """Every (fg, shape, bg) with fg != bg, in a fixed order."""
    return [(fg, shape, bg) for fg, shape, bg in itertools.product(COLOURS, shapes, COLOURS) if fg != bg]


def held_out_triples(seed: int = HOLDOUT_SEED, fraction: float = HOLDOUT_FRACTION) -> list[Triple]:
    """The fixed held-out set: a seeded ~`fraction` of the triples, never two with the same (fg, shape) pair.

    Why the constraint: each colour/shape pairing keeps 6 of its 7 backgrounds in training, so every held-out
    triple is a new combination of things the model has seen together in other images, not an unseen pairing.
    """
    triples = all_triples()
    rng = random.Random(seed)
    rng.shuffle(triples)
    target = round(fraction * len(triples))
    chosen: list[Triple] = []
    used_pairs: set[tuple[str, str]] = set()
    for triple in triples:
        if len(chosen) == target:
            break
        if triple[:2] not in used_pairs:
            chosen.append(triple)
            used_pairs.add(triple[:2])
    return sorted(chosen)


def training_triples(seed: int = HOLDOUT_SEED) -> list[Triple]:
    """All triples minus the held-out ones."""
    held = set(held_out_triples(seed))
    return [t for t in all_triples() if t not in held]


def _star_points(cx: float, cy: float, radius: float, points: int = 5) -> list[tuple[float, float]]:
    """A five-pointed star (inner radius 0.45 of the outer one), first tip straight up."""
    corners = []
    for i in range(2 * points):
        r = radius if i % 2 == 0 else radius * 0.45
        angle = -math.pi / 2 + i * math.pi / points
        corners.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return corners


def draw_shape(
    shape: str, fg: tuple[int, int, int], bg: tuple[int, int, int], center: tuple[float, float], radius: float,
    size: int = IMAGE_SIZE,
) -> Image.Image:
    """Draw one shape `2 * radius` wide at `center` (pixels), supersampled then box-filtered to `size`.

    The triangle points up and fills its bounding box exactly to 0.5, the square is axis-aligned (1.0), the
    circle 0.785: the three are far apart for the evaluator's fill-ratio test.
    """
    s = SUPERSAMPLE
    image = Image.new("RGB", (size * s, size * s), bg)
    draw = ImageDraw.Draw(image)
    cx, cy, r = center[0] * s, center[1] * s, radius * s
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fg)
    elif shape == "star":
        draw.polygon(_star_points(cx, cy, r), fill=fg)
    else:
        raise ValueError(f"Unknown shape {shape!r}")
    return image.resize((size, size), Image.Resampling.BOX)


def caption_for(fg: str, shape: str, bg: str, rng: random.Random, word: str | None = None) -> str:
    """A caption from the weighted templates; `word` replaces the shape name (e.g. "zorb" for a star)."""
    templates, weights = zip(*TEMPLATES, strict=True)
    template = rng.choices(templates, weights=weights)[0]
    caption = template.format(fg=fg, shape=word or shape, bg=bg)
    # People write "an orange ..."; half the time use it, so both articles mean the same to the text encoder.
    if rng.random() < 0.5:
        caption = re.sub(r"\ba (?=[aeiou])", "an ", caption)
    return caption


def random_sample(
    rng: random.Random, triple: Triple, *, empty_fraction: float = EMPTY_CAPTION_FRACTION, word: str | None = None,
    size: int = IMAGE_SIZE,
) -> Sample:
    """Draw `triple` at a random size and position that keeps a `MARGIN` of background along the border."""
    fg, shape, bg = triple
    scale = size / IMAGE_SIZE
    radius = rng.uniform(*RADIUS_RANGE) * scale
    low, high = MARGIN * scale + radius, size - MARGIN * scale - radius
    center = (rng.uniform(low, high), rng.uniform(low, high))
    image = draw_shape(shape, COLOURS[fg], COLOURS[bg], center, radius, size)
    caption = "" if rng.random() < empty_fraction else caption_for(fg, shape, bg, rng, word)
    return Sample(np.asarray(image, dtype=np.uint8), fg, shape, bg, caption)


def generate_samples(
    count: int, seed: int, *, triples: Sequence[Triple] | None = None,
    empty_fraction: float = EMPTY_CAPTION_FRACTION,
) -> list[Sample]:
    """`count` samples cycling through `triples` (default: the training triples) in a seeded random order.

    Cycling (rather than drawing triples at random) gives every triple the same number of images.
    """
    pool = list(triples if triples is not None else training_triples())
    rng = random.Random(seed)
    samples: list[Sample] = []
    while len(samples) < count:
        order = pool[:]
        rng.shuffle(order)
        for triple in order[: count - len(samples)]:
            samples.append(random_sample(rng, triple, empty_fraction=empty_fraction))
    return samples


def write_kohya_dataset(
    dest: Path, *, name: str = "zorb", word: str = "zorb", shape: str = "star", repeats: int = 1,
    count: int = 240, seed: int = 0, size: int = IMAGE_SIZE,
) -> Path:
    """Write a kohya-style folder `dest/<repeats>_<name>/NNN.png + NNN.txt` teaching `word` = `shape`.

    Colours and backgrounds vary (all pairs with fg != bg are cycled), captions use the demo templates with the
    new word in place of the shape name and are never empty. Returns the image folder.
    """
    folder = Path(dest) / f"{repeats}_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(fg, bg) for fg, bg in itertools.product(COLOURS, COLOURS) if fg != bg]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    for index in range(count):
        fg, bg = pairs[index % len(pairs)]
        sample = random_sample(rng, (fg, shape, bg), empty_fraction=0.0, word=word, size=size)
        stem = folder / f"{index:03d}"
        Image.fromarray(sample.image).save(stem.with_suffix(".png"))
        stem.with_suffix(".txt").write_text(sample.caption + "\n", encoding="utf-8")
    return folder


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    kohya = sub.add_parser("kohya", help="write a kohya-style LoRA dataset folder for a new word")
    kohya.add_argument("--out", type=Path, required=True, help="parent folder; <repeats>_<name>/ is created in it")
    kohya.add_argument("--word", default="zorb", help="the new word used in the captions")
    kohya.add_argument("--shape", default="star", choices=(*SHAPES, "star"), help="what the word means")
    kohya.add_argument("--name", default=None, help="folder name after the repeats (default: the word)")
    kohya.add_argument("--repeats", type=int, default=1)
    kohya.add_argument("--count", type=int, default=240, help="number of images")
    kohya.add_argument("--seed", type=int, default=0)
    kohya.add_argument("--size", type=int, default=IMAGE_SIZE, help="image side in pixels")
    sub.add_parser("holdout", help="print the held-out (fg, shape, bg) triples")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.command == "holdout":
        for triple in held_out_triples():
            print(" ".join(triple))
        return
    folder = write_kohya_dataset(args.out, name=args.name or args.word, word=args.word, shape=args.shape,
                                 repeats=args.repeats, count=args.count, seed=args.seed, size=args.size)
    print(f"Wrote {args.count} images and captions to {folder}")


if __name__ == "__main__":
    main()
