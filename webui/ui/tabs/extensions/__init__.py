"""The Extensions tab: `layout` builds it (Installed, Install from URL, Available), `mapping` turns the service's
answers into table rows and messages."""
from webui.ui.tabs.extensions.layout import build_extensions_tab

__all__ = ["build_extensions_tab"]
