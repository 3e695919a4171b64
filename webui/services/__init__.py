"""What the UI and the API call: `build_services(settings)` returns a frozen `Services` container with one service
per concern (see `wiring`); the engine types a caller names are re-exported here."""
from webui.core.errors import ModelLoadError
from webui.engine.upscale.postprocess import ExtrasRequest
from webui.services.wiring import DEMO_MODEL_PATH, Runtime, Services, build_services

__all__ = ["DEMO_MODEL_PATH", "ExtrasRequest", "ModelLoadError", "Runtime", "Services", "build_services"]
