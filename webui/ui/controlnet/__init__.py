"""The ControlNet section of the generation tabs (units as tabs, preview, model filter, paste)."""
from webui.ui.controlnet.section import ControlNetSection, build_controlnet_section, unit_count

__all__ = ["ControlNetSection", "build_controlnet_section", "unit_count"]
