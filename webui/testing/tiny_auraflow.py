"""A tiny random AuraFlow model, written as a real diffusers folder (`AuraFlowPipeline.save_pretrained`).

Why a diffusers folder: AuraFlow is distributed that way (no A1111 single file), so tests must go through the
same `model_index.json` path a user's download does. The parts keep AuraFlow's traits at toy size: an MMDiT
transformer with joint (text + image) and single blocks, learned positional embeddings and SiLU-gated
`AuraFlowFeedForward`; a UMT5 text encoder; a 4-channel VAE with the SDXL VAE's scaling factor; the flow-matching
Euler scheduler.

The tokenizer is built in code (byte-level, one token per byte, no merges: no vocabulary file to ship or download)
and saved as a plain `PreTrainedTokenizerFast` (`tokenizer.json`). The real folders name `LlamaTokenizerFast`, but
under transformers 5 that class rebuilds its own pre-tokenizer on load (measured: spaces and the end token were
lost), so a byte-level vocabulary would not survive a round trip. It uses T5's special ids (pad 0, end 1,
unknown 2) and appends the end token, as the real tokenizer does. Nothing is built at import time.
"""
from __future__ import annotations

from pathlib import Path

import torch

SAMPLE_SIZE = 16  # latent edge the model nominally trains at (32 px images with the 2-level VAE)
PATCH_SIZE = 2
HEADS = 2
HEAD_DIM = 8
TEXT_WIDTH = 32
TEXT_LAYERS = 2
TEXT_HEADS = 4
MAX_TOKENS = 64
POS_EMBED_MAX_SIZE = 256  # a 16 x 16 patch grid: latents up to 32 x 32 (64 px images)
VAE_CHANNELS = (32, 64)
SDXL_VAE_SCALING = 0.13025
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def build_tokenizer(max_length: int = MAX_TOKENS):
    """Byte-level tokenizer (3 special tokens + 256 byte symbols) as a plain `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, processors
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                        special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_length)


def _text_encoder(vocab_size: int):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(vocab_size=vocab_size, d_model=TEXT_WIDTH, d_kv=TEXT_WIDTH // TEXT_HEADS,
                                       d_ff=2 * TEXT_WIDTH, num_layers=TEXT_LAYERS, num_heads=TEXT_HEADS,
                                       relative_attention_num_buckets=8, relative_attention_max_distance=32,
                                       feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                                       decoder_start_token_id=0))


def _transformer():
    from diffusers import AuraFlowTransformer2DModel

    return AuraFlowTransformer2DModel(sample_size=SAMPLE_SIZE, patch_size=PATCH_SIZE, in_channels=4,
                                      num_mmdit_layers=1, num_single_dit_layers=2, attention_head_dim=HEAD_DIM,
                                      num_attention_heads=HEADS, joint_attention_dim=TEXT_WIDTH,
                                      caption_projection_dim=HEADS * HEAD_DIM, out_channels=4,
                                      pos_embed_max_size=POS_EMBED_MAX_SIZE)


def _vae():
    from diffusers import AutoencoderKL

    levels = len(VAE_CHANNELS)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=VAE_CHANNELS,
                         latent_channels=4, sample_size=SAMPLE_SIZE * 2, scaling_factor=SDXL_VAE_SCALING)


def build_tiny_auraflow(seed: int = 0):
    """A random tiny `AuraFlowPipeline` (deterministic for a seed: modules are built in a fixed order)."""
    from diffusers import AuraFlowPipeline, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    pipe = AuraFlowPipeline(tokenizer=tokenizer, text_encoder=_text_encoder(len(tokenizer)), vae=_vae(),
                            transformer=_transformer(), scheduler=FlowMatchEulerDiscreteScheduler(shift=1.73))
    for module in (pipe.text_encoder, pipe.vae, pipe.transformer):
        module.eval()
    return pipe


def write_tiny_auraflow(folder: str | Path, *, seed: int = 0) -> Path:
    """Build the tiny AuraFlow and save it as a diffusers folder (`model_index.json` + component folders)."""
    target = Path(folder)
    build_tiny_auraflow(seed).save_pretrained(str(target))
    return target
