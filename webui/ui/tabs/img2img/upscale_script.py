"""The img2img tab's "Ultimate SD upscale" script controls.

Why the widgets follow A1111's extension order (`webui.core.tiled_upscale.SCRIPT_ARGS` without its leading info
value): the UI decoder (`webui.ui.script_controls.script_spec_from_widgets`) and the API's then share one mapping,
`options_from_script_args`, so they cannot disagree.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from webui.core.tiled_upscale import (
    REDRAW_MODES,
    SEAMS_FIX_TYPES,
    TARGET_SIZE_TYPES,
    TiledUpscaleOptions,
)
from webui.services.upscale_service import UpscaleService


def _size_updates(kind: str) -> tuple[Any, Any, Any]:
    """Custom width/height only for "Custom size", the scale only for "Scale from image size"."""
    custom = kind == TARGET_SIZE_TYPES[1]
    scale = kind == TARGET_SIZE_TYPES[2]
    return gr.update(visible=custom), gr.update(visible=custom), gr.update(visible=scale)


def _seams_updates(kind: str) -> tuple[Any, Any, Any, Any]:
    """Seams-fix denoise and padding for every fix; the width for the band pass; the mask blur for half tiles."""
    on = kind != SEAMS_FIX_TYPES[0]
    return (gr.update(visible=on), gr.update(visible=kind == SEAMS_FIX_TYPES[1]),
            gr.update(visible=on and kind != SEAMS_FIX_TYPES[1]), gr.update(visible=on))


def _target_size_row(prefix: str, defaults: TiledUpscaleOptions) -> tuple[Any, Any, Any, Any]:
    """Target size type and the custom width/height/scale it reveals."""
    with gr.Row():
        size_type = gr.Dropdown(label="Target size type", choices=list(TARGET_SIZE_TYPES),
                                value=defaults.target_size_type, elem_id=f"{prefix}_target_size_type")
        width = gr.Slider(label="Custom width", minimum=64, maximum=8192, step=8, value=defaults.custom_width,
                          visible=False, elem_id=f"{prefix}_custom_width")
        height = gr.Slider(label="Custom height", minimum=64, maximum=8192, step=8, value=defaults.custom_height,
                           visible=False, elem_id=f"{prefix}_custom_height")
        scale = gr.Slider(label="Scale", minimum=1, maximum=16, step=0.01, value=defaults.custom_scale,
                          visible=False, elem_id=f"{prefix}_custom_scale")
    size_type.change(_size_updates, inputs=[size_type], outputs=[width, height, scale],
                     api_name=f"{prefix}_target_size_type")
    return size_type, width, height, scale


def _redraw_row(prefix: str, defaults: TiledUpscaleOptions) -> tuple[Any, Any, Any, Any, Any]:
    """Redraw type, tile size, mask blur and padding."""
    with gr.Row():
        redraw = gr.Dropdown(label="Type", choices=list(REDRAW_MODES), value=defaults.redraw_mode,
                             elem_id=f"{prefix}_redraw_mode")
        tile_w = gr.Slider(label="Tile width", minimum=0, maximum=2048, step=8, value=defaults.tile_width,
                           elem_id=f"{prefix}_tile_width")
        tile_h = gr.Slider(label="Tile height", minimum=0, maximum=2048, step=8, value=defaults.tile_height,
                           info="0 = same as the width", elem_id=f"{prefix}_tile_height")
        blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=defaults.mask_blur,
                         elem_id=f"{prefix}_mask_blur")
        padding = gr.Slider(label="Padding", minimum=0, maximum=512, step=1, value=defaults.padding,
                            elem_id=f"{prefix}_padding")
    return redraw, tile_w, tile_h, blur, padding


def _seams_row(prefix: str, defaults: TiledUpscaleOptions) -> tuple[Any, Any, Any, Any, Any]:
    """Seams fix type and the settings it reveals: (type, denoise, width, mask blur, padding)."""
    with gr.Row():
        seams = gr.Dropdown(label="Seams fix", choices=list(SEAMS_FIX_TYPES), value=defaults.seams_fix_type,
                            elem_id=f"{prefix}_seams_fix_type")
        denoise = gr.Slider(label="Denoise", minimum=0, maximum=1, step=0.01, value=defaults.seams_fix_denoise,
                            visible=False, elem_id=f"{prefix}_seams_fix_denoise")
        width = gr.Slider(label="Width", minimum=0, maximum=512, step=1, value=defaults.seams_fix_width,
                          visible=False, elem_id=f"{prefix}_seams_fix_width")
        blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=defaults.seams_fix_mask_blur,
                         visible=False, elem_id=f"{prefix}_seams_fix_mask_blur")
        padding = gr.Slider(label="Padding", minimum=0, maximum=512, step=1, value=defaults.seams_fix_padding,
                            visible=False, elem_id=f"{prefix}_seams_fix_padding")
    seams.change(_seams_updates, inputs=[seams], outputs=[denoise, width, blur, padding],
                 api_name=f"{prefix}_seams_fix_type")
    return seams, denoise, width, blur, padding


def build_upscale_controls(upscale: UpscaleService, tab: str) -> tuple[gr.Group, tuple[Any, ...]]:
    """The group (hidden until the script is chosen) and its widgets in `SCRIPT_ARGS` order (without info)."""
    defaults = TiledUpscaleOptions()
    prefix = f"{tab}_ultimate_upscale"
    with gr.Group(visible=False, elem_id=f"{tab}_script_ultimate_upscale") as group:
        gr.Markdown("Upscales the image to the target size, then redraws it tile by tile with the settings above.")
        size_type, width, height, scale = _target_size_row(prefix, defaults)
        upscaler = gr.Dropdown(label="Upscaler", choices=upscale.upscaler_names(), value=defaults.upscaler,
                               elem_id=f"{prefix}_upscaler_index")
        redraw, tile_w, tile_h, blur, padding = _redraw_row(prefix, defaults)
        seams, seams_denoise, seams_width, seams_blur, seams_padding = _seams_row(prefix, defaults)
        with gr.Row():
            save_upscaled = gr.Checkbox(label="Save upscaled image", value=defaults.save_upscaled_image,
                                        elem_id=f"{prefix}_save_upscaled_image")
            save_seams = gr.Checkbox(label="Save seams fix image", value=defaults.save_seams_fix_image,
                                     elem_id=f"{prefix}_save_seams_fix_image")
    widgets = (tile_w, tile_h, blur, padding, seams_width, seams_denoise, seams_padding, upscaler, save_upscaled,
               redraw, save_seams, seams_blur, seams, size_type, width, height, scale)
    return group, widgets
