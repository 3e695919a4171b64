"""Extra Networks panel listing benchmark: building the Lora tab's data (rescan, sidecars, previews, sort, HTML) for
a folder of small fake safetensors files, against a baseline measured in the same run: a bare `os.walk` + `stat`
of the same files (the least any listing must do).

Usage: `python benchmarks/extra_networks_listing.py [--files 2000] [--previews 200] [--repeats 5]`.
"""
from __future__ import annotations

import argparse
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
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from webui.core.settings import Paths, Settings  # noqa: E402
from webui.services import build_services  # noqa: E402
from webui.ui.extra_networks.views import ThumbnailCache, cards_html  # noqa: E402


def write_library(folder: Path, files: int, previews: int) -> None:
    """`files` tiny LoRA-like files in 8 sub-folders; every 10th has a sidecar, the first `previews` a preview."""
    for index in range(files):
        sub = folder / f"set{index % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"net{index:05d}.safetensors"
        save_file({"w": torch.zeros(4)}, str(path), metadata={"ss_network_dim": "4"})
        if index % 10 == 0:
            path.with_suffix(".json").write_text(json.dumps({"description": f"net {index}"}), encoding="utf-8")
        if index < previews:
            Image.new("RGB", (512, 768), (index % 255, 80, 160)).save(path.with_suffix(".preview.png"))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--previews", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_library(data / "models" / "Lora", args.files, args.previews)
        services = build_services(Settings(paths=Paths.from_dirs(data), include_demo_model=False))
        thumbnails = ThumbnailCache()

        def baseline() -> None:
            for dirpath, _dirs, filenames in os.walk(data / "models" / "Lora"):
                for name in filenames:
                    os.stat(os.path.join(dirpath, name))

        def panel(refresh: bool = True) -> str:
            cards = services.networks.extra_network_cards("lora", sort="name", refresh=refresh)
            return cards_html(cards, "lora", thumbnails, limit=len(cards))

        start = time.perf_counter()
        html = panel()
        first = time.perf_counter() - start  # includes making every preview's thumbnail once
        base = timed(baseline, args.repeats)
        warm = timed(panel, args.repeats)
        networks = services.networks
        search = timed(lambda: networks.extra_network_cards("lora", search="net01", refresh=False), args.repeats)
        services.runtime.executor.shutdown()
    print(json.dumps({
        "files": args.files, "previews": args.previews, "html_kb": round(len(html) / 1024),
        "baseline_walk_stat_s": round(base, 4),
        "first_listing_with_thumbnails_s": round(first, 4),
        "listing_rescan_s": round(warm, 4), "listing_vs_baseline": round(warm / base, 1),
        "search_without_rescan_s": round(search, 4),
    }, indent=2))


if __name__ == "__main__":
    main()
