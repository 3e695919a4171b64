"""Build the shipped demo checkpoint `webui/assets/demo/demo-shapes.safetensors` from nothing, on a CPU, offline.

What it makes: a real (tiny) Stable Diffusion 1.x model in the A1111 single-file layout (VAE, UNet, CLIP text
encoder using the real 49,408-token CLIP tokenizer) that draws "a {colour} {shape} on a {colour} background" for 8
colours and 3 shapes, also for (colour, shape, background) triples held out of its training data.

Recipe (measured in an earlier probe, see the project notes): procedural 64x64 images (tools/demo_dataset.py);
a small VAE with x4 downsampling (16x16x4 latents) trained briefly, then its latent scale folded into its weights
so that 0.18215 (SD1's scaling factor) times a latent has unit variance; latents cached once; UNet with blocks
(64, 128, 128), one resblock per block, cross-attention on the two lower levels and the middle (the probe's
(32, 64, 128) cannot work with SD1's 32 norm groups, see UNET_CHANNELS), trained jointly with a 3-layer, 64-wide
CLIP text encoder: batch 16, AdamW lr 5e-4, 50-step warm-up then cosine decay, min-SNR-5 loss weighting,
offset noise 0.1, EMA of both networks, epsilon prediction, SD1.5's noise schedule. Training is fp32 (bf16
autocast was ~10x slower on this CPU).

Conventions the app's loader relies on (heads and activations cannot be read from weights): UNet attention uses 8
heads per block (SD1's `attention_head_dim=8`), text encoder heads = max(1, hidden // 64), quick_gelu, VAE scale
factor from the number of VAE blocks, scaling_factor 0.18215. At the end the file is loaded back through
`webui.engine.models.loader.load_checkpoint` and its UNet and text encoder outputs are compared with the
trained networks, so a broken convention fails the build instead of shipping a model that draws noise.

Seeds: dataset 0 (held-out triples: seed 1234 in demo_dataset), VAE init/training 1, UNet/text encoder init and
training 2, the load-back check 3. With the same torch build and thread count a rebuild follows the same
path (two builds gave identical VAE losses and latent statistics); bit-identity of the file is not checked.

Timing, measured on the project's 2-core CPU at one thread (`nice -n 10`, team test suites on the other core):
40 min in all for the shipped file (VAE 700 steps: 5.8 min; UNet + text encoder 4,000 steps: 32.8 min, about
0.5 s a step; dataset, latents, export and the load-back check: ~1.5 min). `--quick` (151 images, 4 steps each;
used by the test suite) takes ~15 s. Quality of the shipped build: see webui/assets/demo/README.md.

The shipped file took three stages (the first build, then `--continue-from` twice: 3,000 steps seed 4, 2,000
steps seed 5; 96.5% / 91.2% of images fully right on trained / held-out prompts); webui/assets/demo/README.md has
the exact commands and times.

Usage: python tools/build_demo_model.py [--steps N] [--out PATH] [--quick] [--threads N]
       python tools/build_demo_model.py --continue-from FILE [--seed N] [--steps N] [--out PATH]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `webui` and `tools` importable
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

from tools.demo_dataset import HOLDOUT_SEED, IMAGE_SIZE, Sample, generate_samples, training_triples  # noqa: E402
from webui.engine.models.clip_tokenizer import MODEL_MAX_LENGTH, VOCAB_SIZE, load_clip_tokenizer  # noqa: E402
from webui.engine.models.ldm_convert import pipeline_components_to_ldm  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "webui" / "assets" / "demo" / "demo-shapes.safetensors"
SD1_SCALING_FACTOR = 0.18215
SD1_UNET_HEADS = 8
TEXT_HIDDEN = 64
TEXT_LAYERS = 3
TEXT_INTERMEDIATE = 256
# UNet widths per level (16, 8, 4 px latents). The first level sets the width of the UNet's last GroupNorm (SD1: 32
# groups): at 32 channels it is a per-channel instance norm that erases every spatially constant offset, so the
# model cannot set an image's mean colour from the prompt (measured: background right in 10% of images, decided
# by the seed's noise). 64 channels (2 per group) keep it; 128 at the lower levels gives shapes room.
UNET_CHANNELS = (64, 128, 128)
# Cross-attention on the 8 and 4 px levels (and the middle); skipping the 16 px level's 256-token attention makes
# a step ~30% cheaper, and the shapes span 2.5-5.5 px at 8 px, where the prompt still reaches them.
UNET_ATTENTION = (False, True, True)
# 3 blocks = 2 downsamplings: 64 px -> 16x16 latents. The full-resolution width must be >= 64: with SD1's 32 norm
# groups, 32 channels make the decoder's last GroupNorm a per-channel instance norm, which erases absolute colour
# (measured: 32 channels never learnt the colours; 64 reconstructs 97% of images exactly right after 500 steps).
VAE_CHANNELS = (64, 64, 64)
LATENT_CHANNELS = 4
# Posterior log-variance at the start of VAE training; the default (0, i.e. std 1) drowns the small early latents
# in noise and the decoder learns blurry averages. exp(-10 / 2) = 0.007: almost deterministic, yet img2img's
# `latent_dist.sample()` still draws from a real (tiny) distribution.
VAE_INITIAL_LOGVAR = -10.0
DATA_SEED, VAE_SEED, DIFFUSION_SEED, CHECK_SEED, CONTINUE_SEED = 0, 1, 2, 3, 4

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildConfig:
    """Every knob of one build; `quick()` is the tiny variant the tests run."""

    images_per_triple: int = 40
    vae_steps: int = 700
    vae_batch: int = 16
    vae_crop: int = 32  # VAE training mostly on random crops: 4x cheaper, the VAE is convolutional
    vae_full_fraction: float = 0.1  # ... and the last 10% on full images (the mid-block attention sees 16x16)
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6
    steps: int = 4000
    batch: int = 16
    lr: float = 5e-4
    warmup: int = 50
    min_snr: float = 5.0
    offset_noise: float = 0.1
    ema_decay: float = 0.999
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    log_every: int = 100
    threads: int = 1

    @classmethod
    def quick(cls) -> BuildConfig:
        return cls(images_per_triple=1, vae_steps=4, vae_batch=4, steps=4, batch=4, warmup=2, log_every=1)

    @classmethod
    def continued(cls) -> BuildConfig:
        """Stage 2 (`--continue-from`): a second warm-up + cosine cycle at a lower peak rate on the same data."""
        return cls(steps=3000, lr=3e-4)


# ------------------------------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------------------------------


def build_vae() -> AutoencoderKL:
    """x4 VAE: 3 blocks of one resblock each; channels are multiples of 32 for SD1's 32 norm groups."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=VAE_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS),
        layers_per_block=1, norm_num_groups=32, sample_size=IMAGE_SIZE, scaling_factor=SD1_SCALING_FACTOR,
    )


def build_unet() -> UNet2DConditionModel:
    """SD1 UNet layout (8 heads per attention block, conv projections), scaled down; see UNET_* for the why."""
    down = tuple("CrossAttnDownBlock2D" if attn else "DownBlock2D" for attn in UNET_ATTENTION)
    up = tuple("CrossAttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(UNET_ATTENTION))
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=UNET_CHANNELS, layers_per_block=1, down_block_types=down, up_block_types=up,
        cross_attention_dim=TEXT_HIDDEN, attention_head_dim=SD1_UNET_HEADS, norm_num_groups=32,
    )


def build_text_encoder() -> CLIPTextModel:
    """SD1-style CLIP text encoder (quick_gelu, 64-wide heads) over the full CLIP vocabulary."""
    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE, hidden_size=TEXT_HIDDEN, intermediate_size=TEXT_INTERMEDIATE,
        num_hidden_layers=TEXT_LAYERS, num_attention_heads=max(1, TEXT_HIDDEN // 64),
        max_position_embeddings=MODEL_MAX_LENGTH, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=VOCAB_SIZE - 2, eos_token_id=VOCAB_SIZE - 1, pad_token_id=VOCAB_SIZE - 1,
    )
    return CLIPTextModel(config)


def build_scheduler() -> EulerDiscreteScheduler:
    """SD1.5's training schedule (scaled_linear 0.00085..0.012, 1000 steps), epsilon prediction."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="epsilon", steps_offset=1, timestep_spacing="leading",
    )


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------------------------
# Training helpers
# ------------------------------------------------------------------------------------------------------------------


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batches(count: int, batch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches, reshuffled every epoch (every sample once per epoch)."""
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count - batch + 1, batch):
            yield order[start : start + batch]


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class Ema:
    """Exponential moving average of a module's parameters, with the usual warm-up of the decay."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.shadow.parameters(), module.parameters(), strict=True):
            ema_p.lerp_(p, 1.0 - decay)


def _progress(log: Log, what: str, step: int, total: int, loss: float, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = elapsed / (step + 1) * (total - step - 1)
    log(f"[{what}] step {step + 1}/{total} loss {loss:.4f} elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min")


# ------------------------------------------------------------------------------------------------------------------
# VAE
# ------------------------------------------------------------------------------------------------------------------


def _vae_batch(images: np.ndarray, index: torch.Tensor, crop: int | None, gen: torch.Generator) -> torch.Tensor:
    """Pixels of the batch, flipped left-right at random, optionally a random `crop` x `crop` window."""
    pixels = to_pixels(images[index.numpy()])
    flip = torch.rand(len(index), generator=gen) < 0.5
    pixels[flip] = pixels[flip].flip(-1)
    if crop is None:
        return pixels
    top, left = (int(v) for v in torch.randint(0, IMAGE_SIZE - crop + 1, (2,), generator=gen))
    return pixels[:, :, top : top + crop, left : left + crop]


def train_vae(images: np.ndarray, cfg: BuildConfig, log: Log) -> AutoencoderKL:
    """Reconstruction (L1 + MSE) with a tiny KL term: the latents stay nearly deterministic and well scaled."""
    torch.manual_seed(VAE_SEED)
    gen = torch.Generator().manual_seed(VAE_SEED)
    vae = build_vae().train()
    with torch.no_grad():  # start with a near-zero posterior variance: the decoder learns from clean latents
        vae.quant_conv.weight[LATENT_CHANNELS:] = 0.0
        vae.quant_conv.bias[LATENT_CHANNELS:] = VAE_INITIAL_LOGVAR
    log(f"VAE: {count_params(vae) / 1e6:.2f}M parameters, {cfg.vae_steps} steps")
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, cfg.vae_steps, 20))
    full_from = int(cfg.vae_steps * (1 - cfg.vae_full_fraction))
    start = time.perf_counter()
    for step, index in zip(range(cfg.vae_steps), batches(len(images), cfg.vae_batch, gen), strict=False):
        pixels = _vae_batch(images, index, None if step >= full_from else cfg.vae_crop, gen)
        posterior = vae.encode(pixels).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        loss = F.l1_loss(recon, pixels) + F.mse_loss(recon, pixels) + cfg.vae_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        optimizer.step()
        schedule.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.vae_steps:
            _progress(log, "vae", step, cfg.vae_steps, loss.item(), start)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def latent_means(vae: AutoencoderKL, images: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """Posterior means of all images (the VAE's raw latent space, before any scaling)."""
    return torch.cat([vae.encode(to_pixels(images[i : i + chunk])).latent_dist.mean
                      for i in range(0, len(images), chunk)])


@torch.no_grad()
def fold_latent_scale(vae: AutoencoderKL, latents: torch.Tensor) -> tuple[list[float], list[float]]:
    """Re-parametrise the VAE so its latents have per-channel mean 0 and std 1 / 0.18215.

    Why: the app (like every SD1 pipeline) multiplies latents by the fixed 0.18215 and the UNet was trained on
    unit-variance inputs. With z' = k * (z - m) per channel, the encoder's quant_conv gets its mean rows scaled by
    k (bias shifted by -k*m) and its log-variance bias raised by 2*log(k); the decoder's post_quant_conv takes
    z = z'/k + m. Decoding is unchanged; the returned (mean, std) are the raw statistics that were folded in.
    """
    mean = latents.mean(dim=(0, 2, 3))
    std = latents.std(dim=(0, 2, 3))
    k = (1.0 / SD1_SCALING_FACTOR) / std
    channels = mean.numel()
    quant, post = vae.quant_conv, vae.post_quant_conv
    quant.weight[:channels] *= k.view(-1, 1, 1, 1)
    quant.bias[:channels] = k * (quant.bias[:channels] - mean)
    quant.bias[channels:] += 2.0 * torch.log(k)
    post.bias += (post.weight * mean.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    post.weight /= k.view(1, -1, 1, 1)
    return mean.tolist(), std.tolist()


# ------------------------------------------------------------------------------------------------------------------
# UNet + text encoder
# ------------------------------------------------------------------------------------------------------------------


def tokenize(captions: Sequence[str], cache_dir: Path) -> torch.Tensor:
    """Token ids exactly as the SD1 pipeline makes them: real CLIP BPE, padded with the end token to 77."""
    tokenizer = load_clip_tokenizer(cache_dir / "tokenizer")
    return tokenizer(list(captions), padding="max_length", max_length=MODEL_MAX_LENGTH, truncation=True,
                     return_tensors="pt").input_ids


def _noise_and_weights(latents: torch.Tensor, alphas_cumprod: torch.Tensor, cfg: BuildConfig,
                       gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noisy latents, timesteps, the epsilon target (with offset noise) and min-SNR loss weights."""
    b = latents.shape[0]
    timesteps = torch.randint(0, len(alphas_cumprod), (b,), generator=gen)
    noise = torch.randn(latents.shape, generator=gen)
    noise += cfg.offset_noise * torch.randn((b, latents.shape[1], 1, 1), generator=gen)
    alpha = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
    snr = alphas_cumprod[timesteps] / (1 - alphas_cumprod[timesteps])
    weights = torch.clamp(snr, max=cfg.min_snr) / snr  # min-SNR-gamma for epsilon prediction
    return noisy, timesteps, noise, weights


def train_diffusion(
    latents: torch.Tensor, input_ids: torch.Tensor, cfg: BuildConfig, log: Log,
    start: tuple[UNet2DConditionModel, CLIPTextModel] | None = None, seed: int = DIFFUSION_SEED,
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Joint UNet + text encoder training from fresh weights (or from `start`, a continued build); returns the EMA
    copies (what gets shipped)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet, text_encoder = start if start is not None else (build_unet(), build_text_encoder())
    unet, text_encoder = unet.train().requires_grad_(True), text_encoder.train().requires_grad_(True)
    log(f"UNet: {count_params(unet) / 1e6:.2f}M parameters; text encoder: {count_params(text_encoder) / 1e6:.2f}M "
        f"({VOCAB_SIZE} x {TEXT_HIDDEN} token table); {cfg.steps} steps of batch {cfg.batch}")
    params = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, cfg.steps, cfg.warmup))
    ema_unet, ema_text = Ema(unet, cfg.ema_decay), Ema(text_encoder, cfg.ema_decay)
    alphas_cumprod = build_scheduler().alphas_cumprod.float()
    began, running = time.perf_counter(), 0.0
    for step, index in zip(range(cfg.steps), batches(len(latents), cfg.batch, gen), strict=False):
        noisy, timesteps, target, weights = _noise_and_weights(latents[index], alphas_cumprod, cfg, gen)
        context = text_encoder(input_ids[index])[0]
        pred = unet(noisy, timesteps, encoder_hidden_states=context).sample
        loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        schedule.step()
        ema_unet.update(unet)
        ema_text.update(text_encoder)
        running += loss.item()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            count = (step % cfg.log_every) + 1
            _progress(log, "unet+text", step, cfg.steps, running / count, began)
            running = 0.0
    return ema_unet.shadow, ema_text.shadow


# ------------------------------------------------------------------------------------------------------------------
# Export and check
# ------------------------------------------------------------------------------------------------------------------


def export_checkpoint(components: dict[str, object], out: Path, metadata: dict[str, str]) -> Path:
    """LDM single-file keys (A1111 layout), fp16, written atomically."""
    state = pipeline_components_to_ldm(components, "sd1")
    tensors = {k: v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous().clone()
               for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    save_file(tensors, str(partial), metadata={"format": "pt", **metadata})
    partial.chmod(0o644)  # a shipped asset, readable by everyone
    os.replace(partial, out)
    return out


@torch.no_grad()
def check_with_loader(out: Path, unet: UNet2DConditionModel, text_encoder: CLIPTextModel, cache_dir: Path,
                      log: Log) -> None:
    """Load the file as the app does and compare outputs with the trained networks (fp16 rounding only)."""
    from webui.engine.models.loader import load_checkpoint

    loaded = load_checkpoint(out, cache_dir=cache_dir / "loader", device="cpu", dtype=torch.float32)
    pipe = loaded.pipeline
    gen = torch.Generator().manual_seed(CHECK_SEED)
    ids = tokenize(["a red circle on a blue background", ""], cache_dir)
    want_ctx, got_ctx = text_encoder(ids)[0], pipe.text_encoder(ids)[0]
    sample = torch.randn((2, LATENT_CHANNELS, 16, 16), generator=gen)
    t = torch.tensor([500, 50])
    want = unet(sample, t, encoder_hidden_states=want_ctx).sample
    got = pipe.unet(sample, t, encoder_hidden_states=want_ctx).sample
    ctx_err = (want_ctx - got_ctx).abs().max().item()
    unet_err = (want - got).abs().max().item() / max(1e-6, want.abs().max().item())
    log(f"Loader check: family {loaded.family}, prediction {loaded.prediction_type}, VAE scale factor "
        f"{pipe.vae_scale_factor}, scaling {pipe.vae.config.scaling_factor}; text max error {ctx_err:.4f}, "
        f"UNet relative error {unet_err:.4f}")
    if loaded.family != "sd1" or pipe.vae_scale_factor != 4 or ctx_err > 0.05 or unet_err > 0.02:
        raise RuntimeError("The written checkpoint does not load back as the trained model; a loader convention "
                           "differs (heads, activation, VAE scale). Not shipping it.")


# ------------------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------------------


def make_dataset(cfg: BuildConfig, log: Log) -> list[Sample]:
    count = cfg.images_per_triple * len(training_triples(HOLDOUT_SEED))
    start = time.perf_counter()
    samples = generate_samples(count, DATA_SEED)
    log(f"Dataset: {count} images, {sum(not s.caption for s in samples)} with empty captions "
        f"({time.perf_counter() - start:.1f} s)")
    return samples


def build(cfg: BuildConfig, out: Path, log: Log = print) -> Path:
    """The whole pipeline; returns the written file."""
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    samples = make_dataset(cfg, log)
    images = np.stack([s.image for s in samples])
    vae = train_vae(images, cfg, log)
    raw = latent_means(vae, images)
    mean, std = fold_latent_scale(vae, raw)
    # Same as encoding again with the folded VAE (quant_conv is linear), without a second pass over the images.
    scale = (1.0 / SD1_SCALING_FACTOR) / torch.tensor(std).view(1, -1, 1, 1)
    latents = (raw - torch.tensor(mean).view(1, -1, 1, 1)) * scale * SD1_SCALING_FACTOR
    log(f"Latents: raw per-channel std {[round(v, 3) for v in std]}, mean {[round(v, 3) for v in mean]}; after "
        f"folding, 0.18215 * latents has std {latents.std().item():.3f}, mean {latents.mean().item():.3f}")
    with torch.no_grad():
        recon = vae.decode(latents[:64] / SD1_SCALING_FACTOR).sample
    log(f"VAE reconstruction error (mean abs, [-1, 1] range): {(recon - to_pixels(images[:64])).abs().mean():.4f}")
    with tempfile.TemporaryDirectory(prefix="demo-build-") as tmp:
        cache_dir = Path(tmp)
        input_ids = tokenize([s.caption for s in samples], cache_dir)
        unet, text_encoder = train_diffusion(latents, input_ids, cfg, log)
        minutes = (time.perf_counter() - started) / 60
        _write_and_check(out, {"unet": unet, "vae": vae, "text_encoder": text_encoder},
                         {"demo.build": json_config(cfg), "demo.train_minutes": f"{minutes:.1f}"}, cache_dir, log)
    log(f"Done in {(time.perf_counter() - started) / 60:.1f} min")
    return out


def continue_build(cfg: BuildConfig, source: Path, out: Path, log: Log = print, seed: int = CONTINUE_SEED) -> Path:
    """Stage 2: more UNet + text encoder training, starting from a built checkpoint (its VAE is kept as it is).

    Why a second stage: shapes keep improving long after colours are right (the probe's "half-way" model mixed up
    circles and squares, the finished one did not), and continuing from the shipped file adds steps without
    paying again for the ones it already has. Same dataset (seed 0), the source's own latents, seed 4."""
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    samples = make_dataset(cfg, log)
    images = np.stack([s.image for s in samples])
    from safetensors import safe_open

    from webui.engine.models.loader import load_checkpoint

    with safe_open(str(source), framework="pt") as handle:
        previous = handle.metadata() or {}
    with tempfile.TemporaryDirectory(prefix="demo-continue-") as tmp:
        cache_dir = Path(tmp)
        pipe = load_checkpoint(source, cache_dir=cache_dir / "source", device="cpu", dtype=torch.float32).pipeline
        vae = pipe.vae.eval().requires_grad_(False)
        latents = latent_means(vae, images) * SD1_SCALING_FACTOR  # the folded VAE: unit variance already
        log(f"Continuing {source.name}: latents std {latents.std().item():.3f}, mean {latents.mean().item():.3f}")
        input_ids = tokenize([s.caption for s in samples], cache_dir)
        unet, text_encoder = train_diffusion(latents, input_ids, cfg, log, start=(pipe.unet, pipe.text_encoder),
                                             seed=seed)
        minutes = (time.perf_counter() - started) / 60
        earlier = json.loads(previous.get("demo.continued_stages", "[]"))
        if not earlier and previous.get("demo.continued"):  # a file from before stages were listed
            earlier = [{"config": json.loads(previous["demo.continued"]), "seed": CONTINUE_SEED,
                        "minutes": float(previous.get("demo.continue_minutes") or 0)}]
        stages = [*earlier,
                  {"config": json.loads(json_config(cfg)), "seed": seed, "minutes": round(minutes, 1)}]
        metadata = {"demo.build": previous.get("demo.build", ""),
                    "demo.train_minutes": previous.get("demo.train_minutes", ""),
                    "demo.continued": json_config(cfg), "demo.continue_minutes": f"{minutes:.1f}",
                    "demo.continued_stages": json.dumps(stages)}
        _write_and_check(out, {"unet": unet, "vae": vae, "text_encoder": text_encoder}, metadata, cache_dir, log)
    log(f"Done in {(time.perf_counter() - started) / 60:.1f} min")
    return out


def _write_and_check(out: Path, networks: dict[str, torch.nn.Module], build_metadata: dict[str, str],
                     cache_dir: Path, log: Log) -> None:
    metadata = {
        "modelspec.title": "demo-shapes",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.description": "Tiny demo model: 'a {colour} {shape} on a {colour} background', 64x64.",
        **build_metadata,
    }
    export_checkpoint({**networks, "scheduler": build_scheduler()}, out, metadata)
    log(f"Wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    check_with_loader(out, networks["unet"], networks["text_encoder"], cache_dir, log)


def json_config(cfg: BuildConfig) -> str:
    import json

    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the checkpoint")
    parser.add_argument("--steps", type=int, default=None, help="UNet + text encoder training steps")
    parser.add_argument("--vae-steps", type=int, default=None, help="VAE training steps")
    parser.add_argument("--quick", action="store_true", help="tiny subset and a few steps (pipeline check only)")
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="stage 2: train a built checkpoint further (default 3,000 steps, peak lr 3e-4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves the other core free)")
    parser.add_argument("--seed", type=int, default=CONTINUE_SEED,
                        help="training seed of a --continue-from stage (a further stage takes the next one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = BuildConfig.quick() if args.quick else BuildConfig.continued() if args.continue_from else BuildConfig()
    changes: dict[str, int] = {"threads": args.threads}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.vae_steps is not None:
        changes["vae_steps"] = args.vae_steps
    cfg = dataclasses.replace(cfg, **changes)
    print(f"Config: {json_config(cfg)}", flush=True)
    log: Log = lambda line: print(line, flush=True)  # noqa: E731
    if args.continue_from is not None:
        continue_build(cfg, args.continue_from, args.out, log, seed=args.seed)
    else:
        build(cfg, args.out, log)


if __name__ == "__main__":
    main()
