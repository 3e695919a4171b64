"""The txt2img tab: `layout` places the widgets, `mapping` turns their values into a request, `hires` is its
"Hires. fix" section."""
from webui.ui.tabs.txt2img.layout import build_txt2img_tab

__all__ = ["build_txt2img_tab"]
