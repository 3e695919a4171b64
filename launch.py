"""Start the web UI, like A1111's launcher: install what is missing (unless --skip-install), parse the A1111
flags into a validated `Settings`, then hand over to `app.main`.

This is the only module that reads `sys.argv`.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("launch")

# Flags we implement now. Everything else A1111 knows is accepted and noted (see ACCEPTED_FLAGS).
VALUE_FLAGS_ACCEPTED = (
    "--gradio-auth", "--gradio-auth-path", "--api-auth", "--cors-allow-origins", "--cors-allow-origins-regex",
    "--tls-keyfile", "--tls-certfile", "--precision", "--device-id", "--lora-dir", "--lyco-dir",
    "--esrgan-models-path", "--realesrgan-models-path", "--hypernetwork-dir", "--codeformer-models-path",
    "--gfpgan-models-path", "--localizations-dir", "--ui-config-file", "--ui-settings-file", "--styles-file",
    "--embeddings-dir", "--textual-inversion-templates-dir", "--gradio-allowed-path", "--api-log",
    "--timeout-keep-alive", "--subpath", "--upcast-sampling-dtype", "--controlnet-dir", "--vae-path",
    "--ngrok", "--ngrok-region", "--gradio-img2img-tool", "--gradio-inpaint-tool", "--config",
    "--lowram-limit", "--skip-load-model-at-start-reason",
)
BOOL_FLAGS_ACCEPTED = (
    "--medvram", "--medvram-sdxl", "--lowvram", "--lowram", "--no-half", "--no-half-vae", "--upcast-sampling",
    "--xformers", "--force-enable-xformers", "--opt-sdp-attention", "--opt-sdp-no-mem-attention",
    "--opt-split-attention", "--opt-split-attention-v1", "--opt-split-attention-invokeai", "--opt-sub-quad-attention",
    "--disable-opt-split-attention", "--opt-channelslast", "--share", "--autolaunch", "--nowebui",
    "--enable-insecure-extension-access", "--disable-safe-unpickle", "--skip-torch-cuda-test",
    "--skip-python-version-check", "--skip-version-check", "--no-download-sd-model", "--reinstall-torch",
    "--reinstall-xformers", "--update-check", "--update-all-extensions", "--disable-all-extensions",
    "--disable-extra-extensions", "--freeze-settings", "--hide-ui-dir-config", "--administrator",
    "--no-gradio-queue", "--disable-console-progressbars", "--enable-console-prompts", "--no-hashing",
    "--no-progressbar-hiding", "--do-not-download-clip", "--allow-code", "--api-server-stop",
    "--disable-tls-verify", "--no-prompt-history", "--disable-model-loading-ram-optimization",
    "--skip-prepare-environment", "--test-server", "--log-startup", "--dump-sysinfo", "--use-ipex",
    "--disable-nan-check", "--no-half-controlnet", "--add-stop-route", "--skip-load-model-at-start",
)
IMPLEMENTED_FLAGS = {
    "--port", "--listen", "--server-name", "--data-dir", "--models-dir", "--ckpt", "--ckpt-dir", "--vae-dir",
    "--skip-install", "--use-cpu", "--theme", "--api", "--nowebui", "--lora-dir", "--lyco-dir",
    "--embeddings-dir", "--esrgan-models-path", "--styles-file", "--ui-config-file", "--ui-settings-file",
    "--no-half", "--precision", "--threads", "--no-demo-model",
    # network exposure (webui/api/security.py, app.py)
    "--gradio-auth", "--gradio-auth-path", "--api-auth", "--cors-allow-origins", "--cors-allow-origins-regex",
    "--tls-keyfile", "--tls-certfile", "--gradio-allowed-path", "--timeout-keep-alive",
    # memory, precision and attention (webui/engine/runtime/memory.py)
    "--medvram", "--medvram-sdxl", "--lowvram", "--no-half-vae", "--upcast-sampling", "--xformers",
    "--force-enable-xformers", "--opt-sdp-attention", "--opt-split-attention", "--disable-opt-split-attention",
    "--opt-channelslast", "--device-id",
    # speed (webui/core/precision.py, webui/engine/runtime/fast_paths.py)
    "--compile", "--compile-backend", "--cpu-precision",
    # which server folders clients may name (webui/core/path_policy.py)
    "--hide-ui-dir-config", "--enable-insecure-extension-access",
    # extensions (webui/extensions/, the Extensions tab)
    "--disable-all-extensions", "--disable-extra-extensions",
}
# Flags given as their own argparse arguments (typed or repeatable), not in the generic accepted lists.
_TYPED_FLAGS = ("--gradio-allowed-path", "--timeout-keep-alive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local image-generation studio (A1111-compatible flags).")
    parser.add_argument("--port", type=int, default=None, help="port to serve on (default 7860)")
    parser.add_argument("--listen", action="store_true", help="bind 0.0.0.0 so other machines on the LAN reach it")
    parser.add_argument("--server-name", default=None, help="host name or address to bind")
    parser.add_argument("--data-dir", default=str(ROOT), help="base folder for models/, outputs/, config.json")
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--ckpt", default=None, help="checkpoint to load at start")
    parser.add_argument("--ckpt-dir", default=None, help="extra folder with checkpoints")
    parser.add_argument("--vae-dir", default=None)
    parser.add_argument("--skip-install", action="store_true", help="do not install missing packages")
    parser.add_argument("--use-cpu", nargs="+", default=[], help="'all' (or module names) to run on the CPU")
    parser.add_argument("--theme", choices=("dark", "light"), default=None)
    parser.add_argument("--api", action="store_true", help="serve the /sdapi/v1 HTTP API")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--no-demo-model", action="store_true", help="do not list the embedded demo model")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the UNet/transformer (GPU: inductor/triton; CPU: inductor with a C++ "
                             "compiler); the first image at each size compiles, later ones are faster")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend for --compile (default inductor; e.g. cudagraphs, aot_eager)")
    parser.add_argument("--cpu-precision", choices=("auto", "bfloat16", "float32"), default="auto",
                        help="format of the UNet/transformer on a CPU: auto = bfloat16 when the CPU has native "
                             "bfloat16 (avx512_bf16/amx), else float32; --no-half / --precision full force float32")
    parser.add_argument("--gradio-allowed-path", action="append", default=[],
                        help="extra folder whose files the UI may serve (repeatable)")
    parser.add_argument("--timeout-keep-alive", type=int, default=30, help="seconds an idle connection is kept")
    for flag in VALUE_FLAGS_ACCEPTED:
        if flag not in _TYPED_FLAGS:
            parser.add_argument(flag, default=None)
    for flag in BOOL_FLAGS_ACCEPTED:
        parser.add_argument(flag, action="store_true")
    return parser


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _resolve_device(use_cpu: list[str], device_id: str | None = None) -> str:
    """`--use-cpu all|sd` forces the CPU; else the first accelerator found. `--device-id N` picks cuda:N."""
    if "all" in use_cpu or "sd" in use_cpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return f"cuda:{_device_index(device_id)}" if device_id not in (None, "") else "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _device_index(device_id: str | None) -> int:
    from webui.core.errors import ValidationError

    try:
        index = int(str(device_id))
    except ValueError:
        raise ValidationError(f"--device-id must be a GPU number such as 0 or 1 (got {device_id!r}).") from None
    if index < 0:
        raise ValidationError(f"--device-id must be 0 or more (got {index}).")
    return index


def _read_auth_file(path: str) -> str:
    from webui.core.errors import ValidationError

    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--gradio-auth-path: cannot read {path} ({exc.strerror}).") from None


def _existing_file(value: str | None, flag: str) -> Path | None:
    from webui.core.errors import ValidationError

    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ValidationError(f"{flag}: no such file {path}.")
    return path


def _security_settings(args: argparse.Namespace):
    """Auth, TLS, CORS and served folders: parsed and checked now, so a typo stops the launch with a message
    instead of silently serving an unprotected UI."""
    from webui.core.settings import SecuritySettings, parse_credentials

    ui_auth = args.gradio_auth or ""
    if args.gradio_auth_path:
        ui_auth += "\n" + _read_auth_file(args.gradio_auth_path)
    origins = tuple(o.strip() for o in (args.cors_allow_origins or "").split(",") if o.strip())
    return SecuritySettings(
        gradio_auth=parse_credentials(ui_auth, "--gradio-auth"),
        api_auth=parse_credentials(args.api_auth or "", "--api-auth"),
        tls_keyfile=_existing_file(args.tls_keyfile, "--tls-keyfile"),
        tls_certfile=_existing_file(args.tls_certfile, "--tls-certfile"),
        cors_allow_origins=origins,
        cors_allow_origins_regex=args.cors_allow_origins_regex or None,
        allowed_paths=tuple(Path(p).expanduser().resolve() for p in args.gradio_allowed_path),
        timeout_keep_alive=args.timeout_keep_alive,
        hide_ui_dir_config=_hide_ui_dir_config(args),
    )


def _hide_ui_dir_config(args: argparse.Namespace) -> bool | None:
    """A1111's --hide-ui-dir-config, also on for --share; --enable-insecure-extension-access turns the automatic
    hiding of an exposed server off. None: hidden exactly when the bind address is not loopback."""
    if args.hide_ui_dir_config:
        return True
    if args.enable_insecure_extension_access:
        return False
    return True if args.share else None


def _memory_flags(args: argparse.Namespace):
    from webui.core.settings import MemoryFlags

    return MemoryFlags(
        medvram=args.medvram, medvram_sdxl=args.medvram_sdxl, lowvram=args.lowvram, no_half_vae=args.no_half_vae,
        upcast_sampling=args.upcast_sampling, xformers=args.xformers or args.force_enable_xformers,
        opt_sdp_attention=args.opt_sdp_attention, opt_split_attention=args.opt_split_attention,
        disable_opt_split_attention=args.disable_opt_split_attention, opt_channelslast=args.opt_channelslast,
        compile=args.compile, compile_backend=args.compile_backend,
    )


def _extension_flags(args: argparse.Namespace):
    from webui.core.settings import ExtensionFlags

    return ExtensionFlags(disable_all=args.disable_all_extensions, disable_extra=args.disable_extra_extensions,
                          insecure_access=args.enable_insecure_extension_access)


def build_settings(argv: list[str]):
    """Parse A1111-style flags into `Settings`. Unknown flags are kept and warned about, never fatal."""
    from webui.core.settings import Paths, Settings, hide_secrets

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    given = {tok.split("=", 1)[0] for tok in argv if tok.startswith("--")}
    known_flags = {a.option_strings[0] for a in parser._actions if a.option_strings}
    accepted_only = tuple(sorted(f for f in given if f in known_flags and f not in IMPLEMENTED_FLAGS))
    data_dir = Path(args.data_dir)
    paths = Paths.from_dirs(
        data_dir,
        models_dir=_path(args.models_dir),
        vae_dir=_path(args.vae_dir),
        lora_dir=_path(args.lora_dir),
        lycoris_dir=_path(args.lyco_dir),
        embeddings_dir=_path(args.embeddings_dir),
        esrgan_dir=_path(args.esrgan_models_path),
        styles_file=_path(args.styles_file),
        config_file=_path(args.ui_settings_file),
        ui_config_file=_path(args.ui_config_file),
        extra_ckpt_dirs=tuple(p for p in (_path(args.ckpt_dir),) if p is not None),
    )
    host = args.server_name or ("0.0.0.0" if args.listen else "127.0.0.1")
    device = _resolve_device(args.use_cpu, args.device_id)
    full_precision = args.no_half or args.precision == "full"
    return Settings(
        paths=paths,
        host=host,
        port=args.port or (7861 if args.nowebui else 7860),  # A1111 serves the API alone on 7861
        server_name=args.server_name,
        api=args.api or args.nowebui,
        nowebui=args.nowebui,
        ckpt=_path(args.ckpt),
        device=device,
        half_precision=device.startswith("cuda") and not full_precision,
        cpu_precision="float32" if full_precision else args.cpu_precision,
        theme=args.theme,
        torch_threads=args.threads,
        include_demo_model=not args.no_demo_model,
        security=_security_settings(args),
        memory=_memory_flags(args),
        extensions=_extension_flags(args),
        accepted_only_flags=accepted_only,
        unknown_flags=tuple(unknown),
        raw_flags=hide_secrets(vars(args)),
    )


_REQ_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


def missing_requirements(requirements_file: Path) -> list[str]:
    """Requirement lines whose package is not installed. A different installed version is only warned about
    (a CUDA build reports `2.14.1+cu121`, and users may pin their own torch)."""
    missing = []
    for line in requirements_file.read_text().splitlines():
        match = _REQ_LINE.match(line)
        if not match:
            continue
        name, wanted = match.groups()
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{name}=={wanted}")
            continue
        if have.split("+")[0] != wanted:
            log.warning("%s %s is installed; this project was tested with %s.", name, have, wanted)
    return missing


def install_requirements(requirements_file: Path) -> None:
    missing = missing_requirements(requirements_file)
    if not missing:
        return
    print(f"Installing missing packages: {', '.join(missing)}", flush=True)
    # torch first, alone: the other packages must not pull a different torch build.
    torch_first = [m for m in missing if m.split("==")[0] in ("torch", "torchvision")]
    if torch_first:
        subprocess.check_call([sys.executable, "-m", "pip", "install", *torch_first])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", str(requirements_file)])


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if "--skip-install" not in argv:
        install_requirements(ROOT / "requirements.txt")
    settings = build_settings(argv)
    import app

    app.main(settings)


if __name__ == "__main__":
    main()
