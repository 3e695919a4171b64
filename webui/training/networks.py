"""The network a training config asks for, attached to a pipeline: the one entry point the trainer calls.

Why a factory of its own: the trainer should not know which network kinds exist; it gets a `TrainingNetwork`
(`network_base.py`) that is plain LoRA (`lora_network.py`) or LyCORIS (`lycoris_network.py`), with the base
weights frozen first and the components to train chosen from the config.
"""
from __future__ import annotations

from webui.core.errors import ValidationError
from webui.training.config import TrainingConfig
from webui.training.families import DENOISERS, denoiser_name
from webui.training.lora_network import LoraNetwork
from webui.training.lycoris_network import LycorisTrainingNetwork
from webui.training.network_base import TrainingNetwork

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


def components_to_train(pipe, config: TrainingConfig) -> tuple[str, ...]:
    chosen = [denoiser_name(pipe)] if config.train_unet else []
    if config.train_text_encoder:
        chosen += [name for name in TEXT_ENCODERS if getattr(pipe, name, None) is not None]
    return tuple(chosen)


def create_network(pipe, family: str, config: TrainingConfig) -> TrainingNetwork:
    """The network the config asks for, attached to `pipe` (base weights frozen first)."""
    for name in (*DENOISERS, *TEXT_ENCODERS):
        model = getattr(pipe, name, None)
        if model is not None:
            model.requires_grad_(False)
    components = components_to_train(pipe, config)
    if config.is_lycoris:
        if config.lycoris is None:
            raise ValidationError("LyCORIS training needs a lycoris config.")
        network: TrainingNetwork = LycorisTrainingNetwork(pipe, family, config.lycoris, components)
    else:
        network = LoraNetwork(pipe, family, config.network_dim, config.network_alpha, components)
    if not network.named_trainable():
        raise ValidationError("The network has no trainable layers for this model: " + " ".join(network.notes))
    return network

