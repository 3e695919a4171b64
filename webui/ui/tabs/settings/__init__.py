"""The Settings tab: `layout` builds a widget per option and applies changes, `mapping` words the result."""
from webui.ui.tabs.settings.layout import SETTING_KEYS, build_settings_tab

__all__ = ["SETTING_KEYS", "build_settings_tab"]
