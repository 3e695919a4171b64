"""The Extra Networks card browser shown under the prompts of the generation tabs."""
from webui.ui.extra_networks.panel import build_extra_networks

__all__ = ["build_extra_networks"]
