"""The validated launch settings. Built once from A1111-style flags in `launch.py`; passed everywhere else.

Why frozen: two apps with different settings can live in one process (tests), and nothing may change the
settings behind another component's back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webui.core.errors import ValidationError

# Flags whose values are credentials: never shown by cmd-flags or in logs.
SECRET_FLAGS = ("gradio_auth", "api_auth", "ngrok")


def hide_secrets(flags: dict[str, object]) -> dict[str, object]:
    """`flags` with the values of credential flags replaced, for anything shown or logged."""
    return {key: "<hidden>" if key in SECRET_FLAGS and value else value for key, value in flags.items()}


@dataclass(frozen=True)
class Credential:
    """One `user:password` pair of `--gradio-auth` / `--api-auth`. The password never appears in a repr (logs,
    tracebacks and the cmd-flags endpoint must not leak it)."""

    user: str
    password: str = field(repr=False)


def parse_credentials(text: str, flag: str) -> tuple[Credential, ...]:
    """A1111's credential syntax: `user:pass` entries separated by commas or new lines (the `--gradio-auth-path`
    file uses both). The first `:` splits, so a password may contain `:`; a user name may not."""
    creds: list[Credential] = []
    for line in text.splitlines():
        for raw in line.split(","):
            entry = raw.strip()
            if not entry:
                continue
            user, sep, password = entry.partition(":")
            if not sep or not user.strip() or not password:
                missing = "password" if user.strip() else "user name"
                # The entry itself is not echoed: it may hold a password.
                raise ValidationError(f"{flag} entries must look like user:password (one entry has no {missing}).")
            creds.append(Credential(user.strip(), password))
    return tuple(creds)


@dataclass(frozen=True)
class SecuritySettings:
    """Who may reach the server and how: auth, TLS, CORS and extra hosts/paths (A1111's network flags)."""

    gradio_auth: tuple[Credential, ...] = ()
    api_auth: tuple[Credential, ...] = ()
    tls_keyfile: Path | None = None
    tls_certfile: Path | None = None
    cors_allow_origins: tuple[str, ...] = ()
    cors_allow_origins_regex: str | None = None
    allowed_paths: tuple[Path, ...] = ()
    timeout_keep_alive: int = 30
    # A1111's --hide-ui-dir-config: True hides server-folder fields, False shows them
    # (--enable-insecure-extension-access); None decides by the bind address (see `Settings.hide_dir_config`).
    hide_ui_dir_config: bool | None = None

    def __post_init__(self) -> None:
        if (self.tls_keyfile is None) != (self.tls_certfile is None):
            raise ValidationError("--tls-keyfile and --tls-certfile must be given together.")
        if self.timeout_keep_alive < 1:
            raise ValidationError(f"--timeout-keep-alive must be at least 1 second (got {self.timeout_keep_alive}).")

    @property
    def tls(self) -> bool:
        return self.tls_keyfile is not None


@dataclass(frozen=True)
class MemoryFlags:
    """A1111's memory, precision and attention flags as given; `webui.engine.runtime.memory` turns them into diffusers
    calls (which ones apply depends on the device and the model family, known only after a load)."""

    medvram: bool = False
    medvram_sdxl: bool = False
    lowvram: bool = False
    no_half_vae: bool = False
    upcast_sampling: bool = False
    xformers: bool = False
    opt_sdp_attention: bool = False
    opt_split_attention: bool = False
    disable_opt_split_attention: bool = False
    opt_channelslast: bool = False
    compile: bool = False  # --compile: torch.compile of the UNet/transformer (webui/engine/runtime/fast_paths.py)
    compile_backend: str = "inductor"  # --compile-backend: any torch.compile backend (aot_eager checks capture only)

    def given(self) -> tuple[str, ...]:
        """The flags that are on, spelled as on the command line (for messages)."""
        return tuple(f"--{name.replace('_', '-')}" for name, value in vars(self).items() if value is True)


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
    def extensions_dir(self) -> Path:
        """Where installed extensions live (A1111's `extensions/` in the data folder)."""
        return self.data_dir / "extensions"

    @property
    def ckpt_dir(self) -> Path:
        return self.ckpt_dirs[0]

    def ensure(self) -> None:
        """Create the folders users are expected to drop files into (at start-up, never at import)."""
        for folder in (*self.ckpt_dirs, self.vae_dir, self.lora_dir, self.lycoris_dir, self.embeddings_dir,
                       self.esrgan_dir, self.outputs_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ExtensionFlags:
    """A1111's extension flags: `--disable-all-extensions`, `--disable-extra-extensions` (only the built-in ones
    load), `--enable-insecure-extension-access` (installs allowed on an exposed server), and where the built-in
    extensions are (None: the app's own `extensions-builtin/`; tests pass a folder or an empty one)."""

    disable_all: bool = False
    disable_extra: bool = False
    insecure_access: bool = False
    builtin_dir: Path | None = None


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
    # The denoiser's format on a CPU (webui/core/precision.py): launch.py passes "auto" unless --no-half /
    # --precision full; the default here is float32 so a Settings built in code (tests) is exact and repeatable.
    cpu_precision: str = "float32"
    theme: str | None = None
    torch_threads: int | None = None
    include_demo_model: bool = True
    security: SecuritySettings = field(default_factory=SecuritySettings)
    memory: MemoryFlags = field(default_factory=MemoryFlags)
    extensions: ExtensionFlags = field(default_factory=ExtensionFlags)
    accepted_only_flags: tuple[str, ...] = ()
    unknown_flags: tuple[str, ...] = ()
    raw_flags: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValidationError(f"--port must be between 1 and 65535 (got {self.port}).")
        if self.theme not in (None, "dark", "light"):
            raise ValidationError(f"--theme must be 'dark' or 'light' (got {self.theme!r}).")

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    @property
    def hide_dir_config(self) -> bool:
        """True when server-folder fields are hidden and free folder values from clients refused. The default when
        other machines can reach the server: a visitor must not choose where it reads or writes."""
        explicit = self.security.hide_ui_dir_config
        return not self.is_loopback if explicit is None else explicit

    @property
    def extension_access_refused(self) -> str:
        """Why installing, updating and enabling extensions is refused ("" when allowed): A1111 refuses them when the
        server is reachable from the network (--listen, a non-loopback --server-name, --share), unless
        --enable-insecure-extension-access. Exposure is decided as for the server folders (`hide_dir_config`)."""
        if self.extensions.insecure_access or not self.hide_dir_config:
            return ""
        return ("Installing, updating and enabling extensions is turned off because this server is reachable from "
                "the network (--listen, --server-name or --share) or hides server folders (--hide-ui-dir-config). "
                "Start it with --enable-insecure-extension-access to allow it.")

    @property
    def scheme(self) -> str:
        return "https" if self.security.tls else "http"

    def public_flags(self) -> dict[str, object]:
        """The launch flags as A1111's /sdapi/v1/cmd-flags shows them, with credentials hidden."""
        return hide_secrets(self.raw_flags)
