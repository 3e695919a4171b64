"""The Train tab: the LoRA training form, its jobs and the epoch comparison (`layout`)."""
from webui.ui.tabs.train.layout import EXAMPLE_LYCORIS, GROUPS, build_train_tab

__all__ = ["EXAMPLE_LYCORIS", "GROUPS", "build_train_tab"]
