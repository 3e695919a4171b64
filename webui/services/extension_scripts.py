"""Finding and running a script an extension added (`ExtensionContext.add_script`).

Why guarded like a hook: the script's run function is extension code; if it raises, the extension is switched off
for the session and the user gets its message instead of a server error.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webui.core.errors import GenerationError, ValidationError
from webui.core.requests import GenerationRequest
from webui.core.script_spec import ExtensionScriptOptions
from webui.extensions.api import ScriptSpec as ExtensionScript
from webui.extensions.isolation import Guard
from webui.extensions.registry import ExtensionRegistry


def find_script(registry: ExtensionRegistry | None, options: ExtensionScriptOptions) -> ExtensionScript:
    """The active extension's script `options` names; `ValidationError` when there is none (switched off)."""
    for name, regs in (registry.registrations() if registry is not None else ()):
        if name == options.extension:
            for script in regs.scripts:
                if script.name == options.script:
                    return script
    raise ValidationError(f"No active extension script '{options.script}' of extension '{options.extension}'.")


def run_script(registry: ExtensionRegistry | None, script: ExtensionScript, request: GenerationRequest,
               args: tuple, inline: Mapping[str, Any]) -> Any:
    """Call the script's run function with the services it asked for (`inline` replaces the generation and model
    services by those running inside the script's job); returns what it returns (a `GenerationResult`)."""
    if registry is None:
        raise ValidationError("Extensions are not loaded.")
    record = registry.record(script.extension)
    context = record.context if record is not None else None
    if context is None:
        raise ValidationError(f"Extension '{script.extension}' is not active.")
    services = {name: inline[name] if name in inline else context.service(name) for name in script.uses}
    result = registry.guard.call(script.extension, f"script '{script.name}'", script.run, request, services, *args)
    if result is Guard.failed:
        failure = registry.record(script.extension).failure if registry.record(script.extension) else None
        raise GenerationError(failure.warning().replace("; this generation continued without it", "")
                              if failure is not None else f"The script '{script.name}' failed.")
    if not hasattr(result, "images"):
        raise GenerationError(f"The script '{script.name}' returned {type(result).__name__}, not a generation "
                              "result.")
    return result
