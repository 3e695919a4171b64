"""How the API shows a server file's path (model lists, LoRAs, upscalers).

Why one place: a local server answers with absolute paths (as A1111 does), but a server whose folders are hidden
(reachable from the network) must not reveal its file system, so paths are shown relative to the data folder.
Every service that lists files shows them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webui.core.path_policy import PathPolicy
from webui.core.settings import Paths


@dataclass(frozen=True)
class ShownPaths:
    """`shown(path)`: absolute for a local server, relative to the data folder when server folders are hidden."""

    policy: PathPolicy
    paths: Paths

    def __call__(self, path: Path) -> str:
        if not self.policy.hide_dir_config:
            return str(path)
        paths = self.paths
        return self.policy.public_path(path, (*paths.ckpt_dirs, paths.vae_dir, paths.lora_dir,
                                              paths.lycoris_dir, paths.esrgan_dir, paths.models_dir))
