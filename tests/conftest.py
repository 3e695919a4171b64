"""Shared fixtures: one thread for torch (2-core machines), offline hub, tiny models built once per run."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DISABLE_TELEMETRY", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # core-only test runs do not need torch
    pass
