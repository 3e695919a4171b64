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
}


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
    for flag in VALUE_FLAGS_ACCEPTED:
        parser.add_argument(flag, default=None)
    for flag in BOOL_FLAGS_ACCEPTED:
        parser.add_argument(flag, action="store_true")
    return parser


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _resolve_device(use_cpu: list[str]) -> str:
    if "all" in use_cpu or "sd" in use_cpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def build_settings(argv: list[str]):
    """Parse A1111-style flags into `Settings`. Unknown flags are kept and warned about, never fatal."""
    from webui.core.settings import Paths, Settings

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
    device = _resolve_device(args.use_cpu)
    full_precision = args.no_half or args.precision == "full"
    return Settings(
        paths=paths,
        host=host,
        port=args.port or 7860,
        server_name=args.server_name,
        api=args.api or args.nowebui,
        nowebui=args.nowebui,
        ckpt=_path(args.ckpt),
        device=device,
        half_precision=device == "cuda" and not full_precision,
        theme=args.theme,
        torch_threads=args.threads,
        include_demo_model=not args.no_demo_model,
        accepted_only_flags=accepted_only,
        unknown_flags=tuple(unknown),
        raw_flags=vars(args),
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
