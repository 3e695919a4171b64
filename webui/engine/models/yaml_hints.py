"""A1111's `<checkpoint>.yaml` convention: the few facts of an LDM/sgm yaml we honour (v-prediction, head split,
cross-attention size, VAE scale), read without running anything from the file."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webui.core.errors import ModelLoadError

EPSILON = "epsilon"
V_PREDICTION = "v_prediction"


@dataclass(frozen=True)
class YamlHints:
    """What we honour from an LDM yaml: parameterization and a few UNet/VAE fields."""

    prediction_type: str | None = None
    use_linear_projection: bool | None = None
    num_head_channels: int | None = None
    num_heads: int | None = None
    cross_attention_dim: int | None = None
    scale_factor: float | None = None


def _dig(data: object, *keys: str) -> Mapping[str, Any]:
    """`data[k1][k2]...` when every level is a mapping, else an empty mapping (yamls vary a lot)."""
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _positive(value: object) -> int | None:
    """LDM yamls use -1 for "not set"."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _yaml_prediction_type(params: Mapping[str, Any]) -> str | None:
    """SD1/SD2 yamls say `parameterization: "v"`; SDXL (sgm) yamls name a `VScaling` denoiser scaling."""
    if params.get("parameterization") == "v":
        return V_PREDICTION
    if params.get("parameterization") == "eps":
        return EPSILON
    scaling = str(_dig(params, "denoiser_config", "params", "scaling_config").get("target", ""))
    if scaling:
        return V_PREDICTION if scaling.endswith("VScaling") else EPSILON
    return None


def read_yaml_hints(checkpoint_path: Path) -> YamlHints:
    """Read `<name>.yaml` beside the checkpoint (A1111 convention); no file gives empty hints."""
    yaml_path = checkpoint_path.with_suffix(".yaml")
    if not yaml_path.is_file():
        return YamlHints()
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelLoadError(f"'{yaml_path.name}' beside the checkpoint is not valid YAML: {err}") from err
    params = _dig(data, "model", "params")
    unet = _dig(params, "unet_config", "params") or _dig(params, "network_config", "params")  # LDM / sgm
    scale = params.get("scale_factor")
    linear = unet.get("use_linear_in_transformer")
    return YamlHints(
        prediction_type=_yaml_prediction_type(params),
        use_linear_projection=linear if isinstance(linear, bool) else None,
        num_head_channels=_positive(unet.get("num_head_channels")),
        num_heads=_positive(unet.get("num_heads")),
        cross_attention_dim=_positive(unet.get("context_dim")),
        scale_factor=float(scale) if isinstance(scale, int | float) and not isinstance(scale, bool) else None,
    )


def apply_yaml_hints(overrides: dict[str, dict[str, Any]], hints: YamlHints) -> None:
    """The yaml wins over shape inference for the fields shapes cannot tell for sure (head split)."""
    unet = overrides["unet"]
    if hints.use_linear_projection is not None:
        unet["use_linear_projection"] = hints.use_linear_projection
    if hints.num_head_channels is not None:
        unet["attention_head_dim"] = [max(1, c // hints.num_head_channels) for c in unet["block_out_channels"]]
    elif hints.num_heads is not None:
        unet["attention_head_dim"] = hints.num_heads
    if hints.cross_attention_dim is not None:
        unet["cross_attention_dim"] = hints.cross_attention_dim
    if hints.scale_factor is not None:
        overrides.setdefault("vae", {})["scaling_factor"] = hints.scale_factor
