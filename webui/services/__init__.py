"""The one facade the UI and the API call (`Services`), built by `build_services`; see `core`."""
from webui.services.core import DEMO_MODEL_PATH, ExtrasRequest, ModelLoadError, Services, build_services

__all__ = ["DEMO_MODEL_PATH", "Services", "build_services", "ModelLoadError", "ExtrasRequest"]
