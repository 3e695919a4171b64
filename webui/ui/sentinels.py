"""The UI's sentinel strings: choice values that stand for "nothing chosen" or "let the server decide".

Why one module: the widgets show them, the mappings turn them back into request values, and the two must match
exactly (a dropdown value that differs by one letter silently means something else).
"""
from __future__ import annotations

AUTOMATIC = "Automatic"  # schedule type: the sampler's own schedule
NONE = "None"  # no upscaler, no script
LATENT = "Latent"  # the hires pass's default upscaler (upscale the latents)
ALL_FOLDERS = "All"  # Extra Networks folder filter: every folder
NOTHING = "Nothing"  # an unused X/Y/Z axis
