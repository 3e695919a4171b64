"""Training images and captions: kohya folders, caption files, aspect buckets and a deterministic batch order.

Why deterministic: resuming must continue with exactly the batches an uninterrupted run would have seen, so the
order of an epoch is a pure function of (seed, epoch) and the data-order state is just (epoch, batch index).
Caption shuffling and dropout draw from a generator seeded by (seed, epoch, sample) for the same reason.
No batch mixes buckets: every image in a batch has the same size, as the UNet needs one tensor per batch.
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.core.errors import ValidationError
from webui.training.config import DatasetSubset, TrainingConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CAPTION_EXTENSIONS = (".txt", ".caption")
_KOHYA_FOLDER = re.compile(r"^(\d+)_(.+)$")
CAPTION_SAMPLES = 3


@dataclass(frozen=True)
class ImageItem:
    """One training image: where it is, its caption, how often an epoch sees it, and its bucket."""

    path: Path
    caption: str
    repeats: int
    subset: int
    size: tuple[int, int]
    bucket: tuple[int, int]
    caption_from: str = "file"


@dataclass(frozen=True)
class BucketSpec:
    """Aspect-ratio buckets: sizes with about `resolution`^2 pixels, sides multiples of `step`."""

    resolution: int
    min_reso: int
    max_reso: int
    step: int
    no_upscale: bool
    enabled: bool = True

    @classmethod
    def from_config(cls, config: TrainingConfig) -> BucketSpec:
        return cls(config.resolution, config.min_bucket_reso, config.max_bucket_reso, config.bucket_reso_steps,
                   config.bucket_no_upscale, config.enable_bucket)

    def resolutions(self) -> list[tuple[int, int]]:
        """kohya's bucket list: the square plus every (w, h) within [min, max] whose area fits resolution^2."""
        max_area = self.resolution * self.resolution
        side = (self.resolution // self.step) * self.step
        sizes = {(side, side)}
        width = self.min_reso
        while width <= self.max_reso:
            height = min(self.max_reso, (max_area // width) // self.step * self.step)
            if height >= self.min_reso:
                sizes.update({(width, height), (height, width)})
            width += self.step
        return sorted(sizes)

    def bucket_for(self, size: tuple[int, int], resolutions: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The bucket an image of `size` trains at (crop-to-fill, never stretched)."""
        if not self.enabled:
            return (self.resolution, self.resolution)
        width, height = size
        if self.no_upscale and width * height <= self.resolution ** 2:
            return self._own_size(width, height)
        aspect = width / height
        return min(resolutions, key=lambda r: (abs(math.log(r[0] / r[1]) - math.log(aspect)), -r[0] * r[1]))

    def _own_size(self, width: int, height: int) -> tuple[int, int]:
        """no-upscale: a small image keeps its size, rounded down to the step (never below one step)."""
        return (max(self.step, width // self.step * self.step), max(self.step, height // self.step * self.step))


@dataclass(frozen=True)
class Dataset:
    """The scanned dataset: items, subsets, buckets and notes for the user (ignored folders, missing captions)."""

    items: tuple[ImageItem, ...]
    subsets: tuple[DatasetSubset, ...]
    notes: tuple[str, ...] = ()
    buckets: tuple[tuple[int, int], ...] = field(default=())

    def samples(self) -> list[int]:
        """Item indices, each repeated `repeats` times: one epoch's worth of samples."""
        return [index for index, item in enumerate(self.items) for _ in range(item.repeats)]


# ------------------------------------------------------------------------------------------------------------------
# Scanning
# ------------------------------------------------------------------------------------------------------------------


def kohya_subsets(root: Path) -> tuple[list[DatasetSubset], list[str]]:
    """`<repeats>_<name>/` folders under `root` -> subsets (folder name = fallback caption), plus notes."""
    if not root.is_dir():
        raise ValidationError(f"Dataset folder '{root}' does not exist.")
    subsets, notes = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        match = _KOHYA_FOLDER.match(folder.name)
        if match is None:
            notes.append(f"Folder '{folder.name}' ignored: kohya folders are named <repeats>_<name>, "
                         f"e.g. 10_{folder.name}.")
            continue
        subsets.append(DatasetSubset(str(folder), int(match.group(1)), "textfile",
                                     fallback_caption=match.group(2).strip(), name=folder.name))
    if not subsets and _images_in(root):
        notes.append(f"No <repeats>_<name> folders in '{root.name}'; its images are used once per epoch.")
        subsets.append(DatasetSubset(str(root), 1, "textfile", fallback_caption=root.name, name=root.name))
    return subsets, notes


def is_kohya_layout(root: Path) -> bool:
    """Whether `root` holds at least one `<repeats>_<name>` sub-folder."""
    return root.is_dir() and any(p.is_dir() and _KOHYA_FOLDER.match(p.name) for p in root.iterdir())


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _caption_file(image: Path, extension: str) -> Path | None:
    for ext in dict.fromkeys((extension, *CAPTION_EXTENSIONS)):
        candidate = image.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def read_caption(image: Path, subset: DatasetSubset, extension: str = ".txt") -> tuple[str, str]:
    """(caption, where it came from) per the subset's caption strategy."""
    if subset.caption_strategy == "instanceprompt":
        return subset.instance_prompt, "instance prompt"
    if subset.caption_strategy == "filename":
        return image.stem.replace("_", " ").strip(), "file name"
    if subset.caption_strategy == "folder":
        return subset.fallback_caption, "folder name"
    caption_file = _caption_file(image, extension)
    if caption_file is not None:
        text = caption_file.read_text(encoding="utf-8", errors="replace")
        return " ".join(text.strip().splitlines()[0:1]).strip(), "file"
    if subset.fallback_caption:
        return subset.fallback_caption, "folder name"
    return image.stem.replace("_", " ").strip(), "file name"


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height from the file header (the pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError) as err:
        raise ValidationError(f"Image '{path.name}' cannot be read ({err}).") from err


def resolve_subsets(config: TrainingConfig) -> tuple[list[DatasetSubset], list[str]]:
    if config.subsets:
        return list(config.subsets), []
    return kohya_subsets(Path(config.dataset_dir).expanduser())


def scan_dataset(config: TrainingConfig) -> Dataset:
    """Every image of the configured folders with its caption and bucket. Raises if there are no images."""
    subsets, notes = resolve_subsets(config)
    spec = BucketSpec.from_config(config)
    resolutions = spec.resolutions()
    items: list[ImageItem] = []
    for number, subset in enumerate(subsets):
        folder = Path(subset.path).expanduser()
        if not folder.is_dir():
            notes.append(f"Dataset folder '{subset.path}' does not exist; skipped.")
            continue
        images = _images_in(folder)
        if not images:
            notes.append(f"Folder '{folder.name}' holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        for image in images:
            caption, source = read_caption(image, subset, config.caption_extension)
            size = _image_size(image)
            items.append(ImageItem(image, caption, max(0, subset.repeats), number, size,
                                   spec.bucket_for(size, resolutions), source))
    if not any(item.repeats for item in items):
        raise ValidationError("The dataset has no images to train on (check the folder and the repeats).")
    used = tuple(sorted({item.bucket for item in items}))
    return Dataset(tuple(items), tuple(subsets), tuple(notes), used)


# ------------------------------------------------------------------------------------------------------------------
# Batch order
# ------------------------------------------------------------------------------------------------------------------


def epoch_batches(dataset: Dataset, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of item indices) of one epoch: shuffled within each bucket, then batch order shuffled.

    A pure function of (seed, epoch): resuming recomputes the same list and skips the batches already done.
    """
    rng = random.Random(f"{seed}:{epoch}")
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for index in dataset.samples():
        by_bucket.setdefault(dataset.items[index].bucket, []).append(index)
    batches: list[list[int]] = []
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        rng.shuffle(members)
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    rng.shuffle(batches)
    return batches


def steps_per_epoch(dataset: Dataset, batch_size: int) -> int:
    """Batches per epoch: images x repeats / batch, rounded up per bucket (no batch mixes buckets)."""
    counts = Counter(dataset.items[i].bucket for i in dataset.samples())
    return sum(math.ceil(count / batch_size) for count in counts.values())


# ------------------------------------------------------------------------------------------------------------------
# Captions at training time
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptionPolicy:
    """kohya's caption options: keep the first `keep_tokens` comma-separated tags, shuffle the rest, and drop
    the whole caption with probability `dropout` (trains the unconditional case)."""

    shuffle: bool = False
    keep_tokens: int = 0
    dropout: float = 0.0

    @classmethod
    def from_config(cls, config: TrainingConfig) -> CaptionPolicy:
        return cls(config.shuffle_caption, config.keep_tokens, config.caption_dropout_rate)

    def apply(self, caption: str, rng: random.Random) -> str:
        if self.dropout and rng.random() < self.dropout:
            return ""
        if not self.shuffle:
            return caption
        tags = [t.strip() for t in caption.split(",") if t.strip()]
        fixed, rest = tags[: self.keep_tokens], tags[self.keep_tokens:]
        rng.shuffle(rest)
        return ", ".join(fixed + rest)


def batch_captions(dataset: Dataset, batch: Sequence[int], policy: CaptionPolicy, seed: int, epoch: int,
                   position: int) -> list[str]:
    """The captions of one batch after shuffling/dropout, reproducible from (seed, epoch, batch position)."""
    rng = random.Random(f"captions:{seed}:{epoch}:{position}")
    return [policy.apply(dataset.items[index].caption, rng) for index in batch]


# ------------------------------------------------------------------------------------------------------------------
# Pixels
# ------------------------------------------------------------------------------------------------------------------


def load_image(path: Path, bucket: tuple[int, int]) -> torch.Tensor:
    """The image resized to cover the bucket and centre-cropped to it, as a [-1, 1] CHW float tensor."""
    width, height = bucket
    with Image.open(path) as raw:
        image = raw.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if resized != image.size:
        image = image.resize(resized, Image.Resampling.LANCZOS)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    image = image.crop((left, top, left + width, top + height))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_pixels(dataset: Dataset, batch: Iterable[int]) -> torch.Tensor:
    return torch.stack([load_image(dataset.items[i].path, dataset.items[i].bucket) for i in batch])


# ------------------------------------------------------------------------------------------------------------------
# Preview (what the Train tab shows before a run)
# ------------------------------------------------------------------------------------------------------------------


def preview(config: TrainingConfig) -> dict[str, object]:
    """Images per folder, repeats, steps per epoch and in total, caption samples, buckets, notes."""
    dataset = scan_dataset(config)
    folders = []
    for number, subset in enumerate(dataset.subsets):
        members = [item for item in dataset.items if item.subset == number]
        folders.append({
            "folder": Path(subset.path).name, "images": len(members), "repeats": subset.repeats,
            "captions_from_files": sum(1 for item in members if item.caption_from == "file"),
            "caption_samples": [item.caption for item in members[:CAPTION_SAMPLES]],
        })
    per_epoch = steps_per_epoch(dataset, config.batch_size)
    epochs = config.epochs if not config.max_train_steps else math.ceil(
        config.max_train_steps * config.gradient_accumulation_steps / per_epoch)
    optimizer_steps = config.max_train_steps or per_epoch * config.epochs // config.gradient_accumulation_steps
    buckets = Counter(f"{dataset.items[i].bucket[0]}x{dataset.items[i].bucket[1]}" for i in dataset.samples())
    return {
        "folders": folders, "images": len(dataset.items), "samples_per_epoch": len(dataset.samples()),
        "steps_per_epoch": per_epoch, "epochs": epochs, "total_steps": optimizer_steps,
        "buckets": dict(sorted(buckets.items())), "notes": list(dataset.notes),
    }
