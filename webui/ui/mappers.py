"""Value mapping between widgets and requests: the only home of UI sentinel strings and widget quirks."""
from __future__ import annotations

from webui.core.progress import ProgressSnapshot
from webui.core.requests import GenerationRequest


def _int(value: object, default: int) -> int:
    if value is None or value == "":
        return default
    return int(float(value))  # gradio Number/Slider values arrive as float


def txt2img_request(
    prompt: str, negative_prompt: str, sampler: str, schedule: str, steps: float, width: float, height: float,
    cfg_scale: float, seed: float | None, batch_count: float, batch_size: float, clip_skip: float,
) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative_prompt or "",
        sampler_name=sampler,
        scheduler=schedule or "Automatic",
        steps=_int(steps, 20),
        cfg_scale=float(cfg_scale),
        width=_int(width, 512),
        height=_int(height, 512),
        seed=_int(seed, -1),
        n_iter=_int(batch_count, 1),
        batch_size=_int(batch_size, 1),
        clip_skip=_int(clip_skip, 1),
    )


def progress_html(snapshot: ProgressSnapshot, now: float | None = None) -> str:
    """A1111-like progress text: percentage, step, batch and ETA."""
    if not snapshot.active:
        return ""
    percent = int(snapshot.fraction * 100)
    eta = snapshot.eta_seconds(now)
    eta_text = f" · ETA {eta:.0f}s" if eta is not None else ""
    batch = f" · Batch {snapshot.job_no + 1}/{snapshot.job_count}" if snapshot.job_count > 1 else ""
    queued = f" · {snapshot.queued} queued" if snapshot.queued else ""
    return (f"<div class='progress-text'><progress max='100' value='{percent}'></progress> {percent}% · "
            f"Step {snapshot.sampling_step}/{snapshot.sampling_steps}{batch}{eta_text}{queued}</div>")


def info_html(infotext: str) -> str:
    """The infotext under the gallery, escaped for HTML."""
    import html

    return f"<div class='infotext'>{html.escape(infotext).replace(chr(10), '<br>')}</div>" if infotext else ""


def error_markdown(message: str) -> str:
    return f"**Error:** {message}" if message else ""
