"""`/sdapi/v1/queue/*`: the task queue over HTTP, a superset of A1111's API.

Why: A1111's `POST /sdapi/v1/txt2img` holds the connection for the whole generation; a client that queues work
(a batch script, a phone that sleeps) wants an id at once and the result later. The bodies are the synchronous
routes' own (same pydantic models and limits, the same request building, passed in by `build_router`), and the
task is the same kind of task the synchronous routes wait on, so both go through the one task store.

- `POST /queue/txt2img`, `/queue/img2img`, `/queue/extra-single-image` -> `{"id": ...}` at once
- `GET /queue` -> every task (running and pending in queue order, then finished); `GET /queue/{id}` -> `{"id",
  "state", "progress", "images", "info", ...}` with images and info as the synchronous call returns them, once done
- `DELETE /queue/{id}` cancels; `GET /queue/{id}/events` streams progress as server-sent events
- `POST /queue/{id}/pause|resume|up|down`, `POST /queue/pause|resume` (the whole queue)
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from webui.api.models import ExtrasBaseBody, ExtrasSingleBody, Img2ImgBody, Txt2ImgBody
from webui.core.errors import ValidationError, WebUIError
from webui.core.requests import GenerationRequest
from webui.core.results import GenerationResult
from webui.core.script_spec import ScriptSpec
from webui.services import ExtrasRequest
from webui.services.task_service import TaskService, TaskView

EVENT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class QueueApi:
    """The task service and the synchronous routes' conversions (bodies -> requests, results -> A1111 answers)."""

    tasks: TaskService
    txt2img_request: Callable[[Txt2ImgBody], GenerationRequest]
    img2img_request: Callable[[Img2ImgBody], GenerationRequest]
    extras_request: Callable[[ExtrasBaseBody], ExtrasRequest]
    decode_images: Callable[[list[str]], list[Any]]
    script_spec: Callable[[str | None, list[Any] | None], ScriptSpec]
    generation_answer: Callable[[GenerationResult], tuple[list[str], str]]  # (base64 PNGs, info JSON)
    image_answer: Callable[[str], str]  # a result file -> base64 PNG
    http_error: Callable[[WebUIError], HTTPException]


def task_summary(view: TaskView) -> dict[str, Any]:
    """A task in the list: everything but its images' pixels (its result files are named by count)."""
    data = asdict(view)
    data["images"] = len(view.images)
    return data


def install_queue_routes(router: APIRouter, api: QueueApi) -> None:
    """Add the queue routes to the /sdapi/v1 router (so they share its auth)."""
    _enqueue_routes(router, api)
    _read_routes(router, api)
    _steer_routes(router, api)


async def _checked(api: QueueApi, fn: Callable[[], Any]) -> Any:
    """Run a conversion or an enqueue off the event loop; bad input answers 4xx as the synchronous routes do."""
    try:
        return await asyncio.to_thread(fn)
    except WebUIError as exc:
        raise api.http_error(exc) from exc
    except (ValueError, TypeError) as exc:
        raise api.http_error(ValidationError(str(exc))) from exc


def _enqueue_routes(router: APIRouter, api: QueueApi) -> None:
    def generation(request: GenerationRequest, body: Txt2ImgBody) -> dict[str, str]:
        spec = api.script_spec(body.script_name, body.script_args)
        return {"id": api.tasks.submit_generation(request, spec, source="api").id}

    @router.post("/queue/txt2img")
    async def queue_txt2img(body: Txt2ImgBody) -> dict[str, str]:
        return await _checked(api, lambda: generation(api.txt2img_request(body), body))

    @router.post("/queue/img2img")
    async def queue_img2img(body: Img2ImgBody) -> dict[str, str]:
        return await _checked(api, lambda: generation(api.img2img_request(body), body))

    @router.post("/queue/extra-single-image")
    async def queue_extra_single_image(body: ExtrasSingleBody) -> dict[str, str]:
        def submit() -> dict[str, str]:
            images = api.decode_images([body.image])
            return {"id": api.tasks.submit_extras(images, api.extras_request(body), save=False, source="api").id}

        return await _checked(api, submit)


def _view_or_404(api: QueueApi, task_id: str) -> TaskView:
    view = api.tasks.task(task_id)
    if view is None:
        raise HTTPException(status_code=404, detail=f"No task with id '{task_id}'.")
    return view


def _task_answer(api: QueueApi, task_id: str) -> dict[str, Any]:
    """`GET /queue/{id}`: the state, and once finished the images and info as the synchronous route answers."""
    view = _view_or_404(api, task_id)
    images: list[str] = []
    info: str | None = None
    if view.finished and view.kind == "extras":
        paths, infos = api.tasks.extras_result(task_id) or ([], [])
        images, info = [api.image_answer(path) for path in paths], infos[0] if infos else ""
    elif view.finished:
        result = api.tasks.generation_result(task_id)
        if result is not None and (result.images or view.state == "done"):
            images, info = api.generation_answer(result)
    return {"id": view.id, "state": view.state, "progress": view.progress, "images": images, "info": info,
            "kind": view.kind, "summary": view.summary, "error": view.error, "created_at": view.created_at,
            "started_at": view.started_at, "finished_at": view.finished_at}


def _read_routes(router: APIRouter, api: QueueApi) -> None:
    @router.get("/queue")
    def queue_list() -> dict[str, Any]:
        tasks = api.tasks
        return {"tasks": [task_summary(view) for view in tasks.tasks()], "queue_paused": tasks.queue_paused(),
                "running": tasks.running_task_id(), "waits_for": tasks.waits_for()}

    @router.get("/queue/{task_id}")
    async def queue_task(task_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(_task_answer, api, task_id)

    @router.get("/queue/{task_id}/events")
    def queue_events(task_id: str) -> StreamingResponse:
        _view_or_404(api, task_id)
        return StreamingResponse(_events(api, task_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(api: QueueApi, task_id: str) -> AsyncIterator[str]:
    """One `progress` event whenever the state or progress changes, then one event named by the final state."""
    last: tuple[str, float] | None = None
    while True:
        view = await asyncio.to_thread(api.tasks.task, task_id)
        if view is None:
            return
        now = (view.state, round(view.progress, 3))
        data = json.dumps({"id": view.id, "state": view.state, "progress": view.progress, "error": view.error})
        if view.finished:
            yield f"event: {view.state}\ndata: {data}\n\n"
            return
        if now != last:
            yield f"event: progress\ndata: {data}\n\n"
            last = now
        await asyncio.sleep(EVENT_POLL_SECONDS)


def _steer_routes(router: APIRouter, api: QueueApi) -> None:
    def steer(task_id: str, action: Callable[[str], bool], what: str) -> dict[str, Any]:
        view = _view_or_404(api, task_id)
        if not action(task_id):
            raise HTTPException(status_code=409, detail=f"Task '{task_id}' is {view.state}: it cannot {what}.")
        return {"id": task_id, "state": _view_or_404(api, task_id).state}

    @router.delete("/queue/{task_id}")
    def queue_cancel(task_id: str) -> dict[str, Any]:
        return steer(task_id, api.tasks.cancel, "be cancelled")

    @router.post("/queue/{task_id}/pause")
    def queue_pause_task(task_id: str) -> dict[str, Any]:
        return steer(task_id, api.tasks.pause, "be paused (only a queued task can)")

    @router.post("/queue/{task_id}/resume")
    def queue_resume_task(task_id: str) -> dict[str, Any]:
        return steer(task_id, api.tasks.resume, "be resumed (only a paused task can)")

    @router.post("/queue/{task_id}/up")
    def queue_up(task_id: str) -> dict[str, Any]:
        return steer(task_id, lambda tid: api.tasks.move(tid, -1), "move up")

    @router.post("/queue/{task_id}/down")
    def queue_down(task_id: str) -> dict[str, Any]:
        return steer(task_id, lambda tid: api.tasks.move(tid, 1), "move down")

    @router.post("/queue/pause")
    def queue_pause() -> dict[str, bool]:
        api.tasks.pause_queue()
        return {"queue_paused": True}

    @router.post("/queue/resume")
    def queue_resume() -> dict[str, bool]:
        api.tasks.resume_queue()
        return {"queue_paused": False}
