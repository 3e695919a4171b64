"""Live preview methods during a real generation (tiny SD1 model): Approx cheap, TAESD from a local decoder file in
models/VAE-approx (in the original TAESD layout and in diffusers' layout), Full VAE, and previews switched off.

A test hook on the UNet holds nothing; it reads `queue.current_preview()` at the second UNet call, so the preview of
the first step is there (every_n_steps = 1) and can be compared with that step's latents decoded directly."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderTiny
from PIL import ImageChops
from safetensors.torch import save_file

from tests.conftest import make_data_dir, make_settings
from webui.core.errors import ModelLoadError
from webui.core.requests import GenerationRequest
from webui.engine.generation.preview_decoders import TaesdLibrary, load_taesd


def tiny_taesd(seed: int = 0) -> AutoencoderTiny:
    """TAESD's architecture (the real files' layout: 64 channels, blocks 3-3-3-1) with random weights."""
    torch.manual_seed(seed)
    return AutoencoderTiny().eval()


def save_original_layout(model: AutoencoderTiny, path) -> None:
    """As madebyollin's taesd_decoder.safetensors: an nn.Sequential whose index 0 is a clamp."""
    state = {}
    for key, tensor in model.decoder.state_dict().items():
        index, rest = key.removeprefix("layers.").split(".", 1)
        state[f"{int(index) + 1}.{rest}"] = tensor.contiguous()
    save_file(state, str(path))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoints):
    from webui.services import build_services

    data_dir = make_data_dir(tmp_path_factory.mktemp("previews"), tiny_checkpoints, ("sd1",))
    approx_dir = data_dir / "models" / "VAE-approx"
    approx_dir.mkdir(parents=True)
    taesd = tiny_taesd()
    save_original_layout(taesd, approx_dir / "taesd_decoder.safetensors")
    services = build_services(make_settings(data_dir))
    services.models.select_checkpoint(tiny_checkpoints["sd1"].name)
    yield services, taesd
    services.runtime.executor.shutdown()


def preview_during_generation(services):
    """(preview image at the 2nd UNet call, the first call's latents of image 0)."""
    unet = services.runtime.manager.require().pipeline.unet
    seen: dict = {}

    def hook(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        seen.setdefault("latents", sample[0, :4].detach().clone())
        if "preview" not in seen and "first" in seen:
            seen["preview"] = services.queue.current_preview()
        seen["first"] = True

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        request = GenerationRequest(prompt="a red circle", steps=3, width=64, height=64, seed=5, cfg_scale=1.0,
                                    save_images=False)
        services.generation.submit_txt2img(request).result(timeout=120)
    finally:
        handle.remove()
    return seen["preview"], seen["latents"]


def set_preview(services, method: str, enabled: bool = True) -> None:
    services.options.set_options({"live_previews_enable": enabled, "show_progress_every_n_steps": 1,
                                  "show_progress_type": method})


def test_approx_cheap_preview_is_latent_sized(setup):
    services, _ = setup
    set_preview(services, "Approx cheap")
    preview, latents = preview_during_generation(services)
    assert preview is not None and preview.size == (latents.shape[2], latents.shape[1])


def test_taesd_preview_from_the_local_decoder_file(setup):
    services, taesd = setup
    set_preview(services, "TAESD")
    preview, latents = preview_during_generation(services)
    with torch.no_grad():
        expected = taesd.decode(latents.unsqueeze(0).float()).sample[0]
    assert preview.size == (expected.shape[2], expected.shape[1]) == (8 * latents.shape[2], 8 * latents.shape[1])
    pixels = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    from PIL import Image

    diff = ImageChops.difference(preview, Image.fromarray(pixels, mode="RGB")).getextrema()
    assert max(high for _, high in diff) <= 1


def test_full_vae_preview_is_image_sized(setup):
    services, _ = setup
    set_preview(services, "Full")
    preview, _ = preview_during_generation(services)
    assert preview is not None and preview.size == (64, 64)


def test_previews_switched_off_show_nothing(setup):
    services, _ = setup
    set_preview(services, "Approx cheap", enabled=False)
    preview, _ = preview_during_generation(services)
    assert preview is None
    set_preview(services, "TAESD")  # back on for any later test


def test_taesd_files_in_diffusers_layout_and_bad_files(tmp_path):
    model = tiny_taesd(seed=1)
    torch.save({f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}, tmp_path / "taesdxl_decoder.pth")
    library = TaesdLibrary(tmp_path)
    assert library.file_for("sdxl").name == "taesdxl_decoder.pth" and library.file_for("sd1") is None
    latents = torch.randn(4, 8, 8)
    with torch.no_grad():
        expected = model.decode(latents.unsqueeze(0)).sample[0]
    assert library.decode("sdxl", latents).size == (expected.shape[2], expected.shape[1])
    assert library.decode("sd1", latents) is None
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError):
        load_taesd(tmp_path / "broken.safetensors")
    save_file({"1.weight": torch.zeros(3)}, str(tmp_path / "flat.safetensors"))
    with pytest.raises(ModelLoadError, match="not a TAESD decoder"):
        load_taesd(tmp_path / "flat.safetensors")
