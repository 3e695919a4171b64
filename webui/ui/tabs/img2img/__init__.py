"""The img2img tab: `layout` places the widgets, `image_inputs` the image sub-tabs, `mapping` turns the values
into a request, `upscale_script` holds the "Ultimate SD upscale" controls."""
from webui.ui.tabs.img2img.layout import Img2ImgTab, build_img2img_tab

__all__ = ["Img2ImgTab", "build_img2img_tab"]
