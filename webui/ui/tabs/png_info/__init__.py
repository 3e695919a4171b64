"""The PNG Info tab: `layout` reads an image's text chunks and sends its infotext on, `mapping` formats them."""
from webui.ui.tabs.png_info.layout import build_png_info_tab

__all__ = ["build_png_info_tab"]
