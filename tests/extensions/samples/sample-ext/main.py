"""The sample extension the tests load: one of everything the extension API offers."""
from __future__ import annotations

import dataclasses

import gradio as gr

from webui.extensions.api import ExtensionContext, ImageInfo, StepInfo

from .helpers import marked


def setup(ext: ExtensionContext) -> None:
    steps: list[int] = []
    ext.add_setting("sample_ext_suffix", "sample suffix", "Text the sample extension appends to prompts")
    ext.add_api_request_fields("sample_ext_note")
    ext.add_generation_controls(lambda tab: [gr.Checkbox(label="Append the sample suffix", value=True,
                                                         elem_id=f"sample_ext_enable_{tab}")])

    @ext.before_generation
    def append_suffix(request):
        args = ext.request_args(request)
        if args.given and args.args and not args.args[0]:
            return request
        return dataclasses.replace(request, prompt=f"{request.prompt}, {ext.setting('sample_ext_suffix')}")

    @ext.on_step
    def count(info: StepInfo) -> None:
        steps.append(info.step)

    @ext.after_image
    def mark(image, info: ImageInfo):
        return marked(image)

    @ext.infotext_fields
    def fields(request, index: int) -> dict:
        note = ext.request_args(request).field("sample_ext_note")
        return {"Sample ext": f"image {index}", **({"Sample note": note} if note else {})}

    def build_tab(ui) -> None:
        text = gr.Textbox(label="Sample input", elem_id="sample_ext_input")
        out = gr.Textbox(label="Sample output", elem_id="sample_ext_output")
        button = gr.Button("Echo", elem_id="sample_ext_echo")
        button.click(lambda value: f"echo: {value}", inputs=[text], outputs=[out], api_name="sample_ext_echo")

    ext.add_tab("Sample", build_tab)

    def run_script(request, services, times):
        return services["generation"].txt2img(dataclasses.replace(request, n_iter=int(times)))

    ext.add_script("Sample repeat", lambda is_img2img: [gr.Number(label="Times", value=2, precision=0)],
                   run_script)

    def status() -> dict:
        return {"name": ext.name, "steps_seen": len(steps)}

    ext.add_api_route("/status", status)
    ext.add_css(".sample-ext-mark { color: green; }")
    ext.add_js("window.sampleExtLoaded = true;")
