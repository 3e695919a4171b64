"""Domain exceptions. Each carries a message meant for the user, so the UI and the API can show it as is.

Why: the server must never die on bad input; callers catch `WebUIError` and display `str(err)`.
"""
from __future__ import annotations


class WebUIError(Exception):
    """Base class: `str(err)` is a complete sentence a user can act on."""


class ModelLoadError(WebUIError):
    """A checkpoint, VAE or other model file could not be read or understood."""


class UnsafeFileError(ModelLoadError):
    """A pickle file that needs code execution to load; refused, never executed."""


class ModelNotFoundError(WebUIError):
    """A model name or path does not match any file the registry knows."""


class SamplerError(WebUIError):
    """An unknown sampler or schedule name, or a combination diffusers cannot serve."""


class ValidationError(WebUIError):
    """A request field is out of range (width not divisible by 8, steps < 1, ...)."""


class PromptSyntaxError(WebUIError):
    """A prompt could not be understood."""


class GenerationError(WebUIError):
    """Generation failed at run time (for example out of memory)."""


class NoModelLoadedError(WebUIError):
    """A generation was asked for while no checkpoint is available."""


class ExtensionAccessError(WebUIError):
    """Installing, updating or enabling an extension was refused: the server is reachable from the network and
    `--enable-insecure-extension-access` was not given (the API answers 403)."""
