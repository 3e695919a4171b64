"""A tiny random Flux.1 model, written in every on-disk layout users bring: a diffusers folder, a full single-file
checkpoint (ComfyUI/Forge layout: BFL transformer under `model.diffusion_model.`, `text_encoders.clip_l.` /
`text_encoders.t5xxl.`, `vae.` in LDM naming), a transformer-only BFL file (`flux1-dev.safetensors` layout, also
stored in fp8), and the loose parts Forge users keep in `models/text_encoder/` and `models/VAE/`.

Why all layouts: the loader must be tested against the key names real files have. The parts keep Flux's traits
at toy size: an MMDiT with double and single blocks, RoPE over (2 + 7/16 + 7/16) of each head, a CLIP-L (pooled)
and a T5 encoder, a 16-channel VAE without quant convs with Flux's scaling and shift, guidance embedding for
"dev" (none for "schnell"). The CLIP tokenizer is the real one (the app writes it from open-clip's vocabulary); T5
uses the byte-level tokenizer of the tiny AuraFlow (the real T5 vocabulary is not shipped in any package), saved
beside the text encoders as `t5_tokenizer/` the way a user copies FLUX.1's `tokenizer_2` folder.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from webui.engine.families.flux_keys import BFL_PREFIX, diffusers_to_bfl
from webui.engine.models.clip_tokenizer import load_clip_tokenizer
from webui.engine.models.ldm_convert import vae_to_ldm
from webui.testing.tiny_auraflow import build_tokenizer

HEADS = 2
HEAD_DIM = 32  # RoPE axes (4, 14, 14): the real (16, 56, 56) scaled to this head width
ROPE_AXES = (4, 14, 14)
CLIP_WIDTH = 32
T5_WIDTH = 32
T5_HEADS = 4
T5_LAYERS = 2
T5_BUCKETS = 32
VAE_CHANNELS = (32, 64)
FLUX_VAE_SCALING = 0.3611
FLUX_VAE_SHIFT = 0.1159
CLIP_PREFIX = "text_encoders.clip_l.transformer."
T5_PREFIX = "text_encoders.t5xxl.transformer."
VAE_FILE_PREFIX = "vae."
T5_TOKENIZER_FOLDER = "t5_tokenizer"


def _transformer(guidance: bool):
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2,
                                  attention_head_dim=HEAD_DIM, num_attention_heads=HEADS,
                                  joint_attention_dim=T5_WIDTH, pooled_projection_dim=CLIP_WIDTH,
                                  guidance_embeds=guidance, axes_dims_rope=ROPE_AXES)


def _vae():
    from diffusers import AutoencoderKL

    levels = len(VAE_CHANNELS)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=VAE_CHANNELS,
                         latent_channels=16, sample_size=32, scaling_factor=FLUX_VAE_SCALING,
                         shift_factor=FLUX_VAE_SHIFT, use_quant_conv=False, use_post_quant_conv=False)


def _clip():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, hidden_size=CLIP_WIDTH,
                                        intermediate_size=2 * CLIP_WIDTH, num_hidden_layers=2,
                                        num_attention_heads=1, hidden_act="quick_gelu", projection_dim=CLIP_WIDTH,
                                        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))


def _t5(vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=T5_WIDTH, d_kv=T5_WIDTH // T5_HEADS,
                                   d_ff=2 * T5_WIDTH, num_layers=T5_LAYERS, num_heads=T5_HEADS,
                                   relative_attention_num_buckets=T5_BUCKETS, feed_forward_proj="gated-gelu",
                                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def _scheduler(schnell: bool):
    from diffusers import FlowMatchEulerDiscreteScheduler

    if schnell:
        return FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                           base_image_seq_len=256, max_image_seq_len=4096)


def build_tiny_flux(seed: int = 0, *, schnell: bool = False, tokenizer_dir: Path | None = None):
    """A random tiny `FluxPipeline` (deterministic for a seed). `schnell` leaves out the guidance embedding,
    as FLUX.1-schnell has none. `tokenizer_dir` is where the CLIP tokenizer files are written (a temp dir)."""
    import tempfile

    from diffusers import FluxPipeline

    torch.manual_seed(seed)
    clip_tokenizer = load_clip_tokenizer(Path(tokenizer_dir or tempfile.mkdtemp()) / "clip")
    t5_tokenizer = build_tokenizer(max_length=512)
    pipe = FluxPipeline(scheduler=_scheduler(schnell), vae=_vae(), text_encoder=_clip(), tokenizer=clip_tokenizer,
                        text_encoder_2=_t5(len(t5_tokenizer)), tokenizer_2=t5_tokenizer,
                        transformer=_transformer(not schnell))
    for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae, pipe.transformer):
        module.eval()
    return pipe


def write_tiny_flux_folder(folder: str | Path, *, seed: int = 0, schnell: bool = False) -> Path:
    """Save the tiny Flux as a diffusers folder (`model_index.json` naming `FluxPipeline`)."""
    target = Path(folder)
    build_tiny_flux(seed, schnell=schnell, tokenizer_dir=target.parent / f".{target.name}-tok").save_pretrained(
        str(target))
    return target


def _plain(state: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    return {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().clone()
            for k, v in state.items()}


def _ldm_vae(pipe) -> dict[str, torch.Tensor]:
    """The VAE in LDM names without a prefix, as BFL's `ae.safetensors` stores it."""
    prefix = "first_stage_model."
    return {k.removeprefix(prefix): v for k, v in vae_to_ldm(pipe.vae.state_dict()).items()}


def _t5_state(pipe) -> dict[str, torch.Tensor]:
    """T5's weights as files store them: the token embedding once, as `shared.weight` (the encoder's copy is tied)."""
    return {k: v for k, v in pipe.text_encoder_2.state_dict().items() if k != "encoder.embed_tokens.weight"}


def full_checkpoint_state(pipe) -> dict[str, torch.Tensor]:
    """All parts of a Flux pipeline in the single-file layout ComfyUI and Forge save."""
    state = diffusers_to_bfl(pipe.transformer.state_dict(), prefix=BFL_PREFIX)
    state.update({CLIP_PREFIX + k: v for k, v in pipe.text_encoder.state_dict().items()})
    state.update({T5_PREFIX + k: v for k, v in _t5_state(pipe).items()})
    state.update({VAE_FILE_PREFIX + k: v for k, v in _ldm_vae(pipe).items()})
    return state


def write_tiny_flux_checkpoint(path: str | Path, *, seed: int = 0, schnell: bool = False,
                               tokenizer_dir: Path | None = None) -> Path:
    """One `.safetensors` with transformer, both text encoders and the VAE (the "full checkpoint" layout)."""
    target = Path(path)
    pipe = build_tiny_flux(seed, schnell=schnell, tokenizer_dir=tokenizer_dir or target.parent / ".tok")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(_plain(full_checkpoint_state(pipe)), str(target))
    return target


def write_tiny_flux_transformer(path: str | Path, *, seed: int = 0, schnell: bool = False,
                                dtype: torch.dtype | None = None, tokenizer_dir: Path | None = None) -> Path:
    """The transformer alone in BFL layout without prefix (as `flux1-dev.safetensors`); `dtype` stores it in
    another precision, e.g. `torch.float8_e4m3fn` like the popular fp8 files."""
    target = Path(path)
    pipe = build_tiny_flux(seed, schnell=schnell, tokenizer_dir=tokenizer_dir or target.parent / ".tok")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(_plain(diffusers_to_bfl(pipe.transformer.state_dict()), dtype), str(target))
    return target


def write_tiny_flux_parts(text_encoder_dir: str | Path, vae_dir: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """The loose parts a transformer-only file needs: `clip_l.safetensors` and `t5xxl.safetensors` (transformers
    key names, as the files users download), the T5 tokenizer folder, and `ae.safetensors` (BFL's VAE file:
    LDM naming, no prefix). Built from the same seed as the transformer, so together they equal the folder."""
    te_dir, vae_dir = Path(text_encoder_dir), Path(vae_dir)
    te_dir.mkdir(parents=True, exist_ok=True)
    vae_dir.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_flux(seed, tokenizer_dir=te_dir.parent / ".tok")
    paths = {"clip_l": te_dir / "clip_l.safetensors", "t5xxl": te_dir / "t5xxl.safetensors",
             "vae": vae_dir / "ae.safetensors", "t5_tokenizer": te_dir / T5_TOKENIZER_FOLDER}
    save_file(_plain(pipe.text_encoder.state_dict()), str(paths["clip_l"]))
    save_file(_plain(_t5_state(pipe)), str(paths["t5xxl"]))
    save_file(_plain(_ldm_vae(pipe)), str(paths["vae"]))
    pipe.tokenizer_2.save_pretrained(str(paths["t5_tokenizer"]))
    return paths
