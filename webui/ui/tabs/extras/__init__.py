"""The Extras tab: `layout` places the widgets and runs the upscale loop, `mapping` turns values into a request."""
from webui.ui.tabs.extras.layout import build_extras_tab

__all__ = ["build_extras_tab"]
