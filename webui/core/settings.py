"""The validated launch settings. Built once from A1111-style flags in `launch.py`; passed everywhere else.

Why frozen: two apps with different settings can live in one process (tests), and nothing may change the
settings behind another component's back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webui.core.errors import ValidationError


@dataclass(frozen=True)
class Paths:
    """Every folder the app reads or writes, resolved from `--data-dir` and the per-folder overrides."""

    data_dir: Path
    models_dir: Path
    ckpt_dirs: tuple[Path, ...]
    vae_dir: Path
    lora_dir: Path
    lycoris_dir: Path
    embeddings_dir: Path
    esrgan_dir: Path
    outputs_dir: Path
    styles_file: Path
    config_file: Path
    ui_config_file: Path
    cache_dir: Path

    @classmethod
    def from_dirs(
        cls,
        data_dir: Path,
        *,
        models_dir: Path | None = None,
        ckpt_dir: Path | None = None,
        vae_dir: Path | None = None,
        lora_dir: Path | None = None,
        lycoris_dir: Path | None = None,
        embeddings_dir: Path | None = None,
        esrgan_dir: Path | None = None,
        styles_file: Path | None = None,
        config_file: Path | None = None,
        ui_config_file: Path | None = None,
        extra_ckpt_dirs: tuple[Path, ...] = (),
    ) -> Paths:
        data_dir = data_dir.expanduser().resolve()
        models = (models_dir or data_dir / "models").expanduser().resolve()
        ckpt = (ckpt_dir or models / "Stable-diffusion").expanduser().resolve()
        return cls(
            data_dir=data_dir,
            models_dir=models,
            ckpt_dirs=(ckpt, *extra_ckpt_dirs),
            vae_dir=(vae_dir or models / "VAE").expanduser().resolve(),
            lora_dir=(lora_dir or models / "Lora").expanduser().resolve(),
            lycoris_dir=(lycoris_dir or models / "LyCORIS").expanduser().resolve(),
            embeddings_dir=(embeddings_dir or data_dir / "embeddings").expanduser().resolve(),
            esrgan_dir=(esrgan_dir or models / "ESRGAN").expanduser().resolve(),
            outputs_dir=(data_dir / "outputs").resolve(),
            styles_file=(styles_file or data_dir / "styles.csv").expanduser().resolve(),
            config_file=(config_file or data_dir / "config.json").expanduser().resolve(),
            ui_config_file=(ui_config_file or data_dir / "ui-config.json").expanduser().resolve(),
            cache_dir=(data_dir / "cache").resolve(),
        )

    @property
    def ckpt_dir(self) -> Path:
        return self.ckpt_dirs[0]

    def ensure(self) -> None:
        """Create the folders users are expected to drop files into (at start-up, never at import)."""
        for folder in (*self.ckpt_dirs, self.vae_dir, self.lora_dir, self.lycoris_dir, self.embeddings_dir,
                       self.esrgan_dir, self.outputs_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Settings:
    """Launch-time configuration. Runtime-changeable options (A1111's config.json) live in `Options`."""

    paths: Paths
    host: str = "127.0.0.1"
    port: int = 7860
    server_name: str | None = None
    api: bool = False
    nowebui: bool = False
    ckpt: Path | None = None
    device: str = "cpu"
    half_precision: bool = False
    theme: str | None = None
    torch_threads: int | None = None
    include_demo_model: bool = True
    accepted_only_flags: tuple[str, ...] = ()
    unknown_flags: tuple[str, ...] = ()
    raw_flags: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValidationError(f"--port must be between 1 and 65535 (got {self.port}).")
        if self.theme not in (None, "dark", "light"):
            raise ValidationError(f"--theme must be 'dark' or 'light' (got {self.theme!r}).")

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")
