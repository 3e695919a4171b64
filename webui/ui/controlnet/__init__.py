"""The ControlNet section of the generation tabs (units as tabs, preview, model filter, paste)."""
from webui.ui.controlnet.section import CONTROLNET_CSS, ControlNetSection, build_controlnet_section, unit_count

__all__ = ["CONTROLNET_CSS", "ControlNetSection", "build_controlnet_section", "unit_count"]
