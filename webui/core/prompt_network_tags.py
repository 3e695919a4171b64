"""Extra-network tags in a prompt: `<lora:name:te:unet>` and any other `<kind:args>`, taken out as calls.

Why its own module: the tags are the one part of a prompt that is not text for the encoder but instructions for
the engine (which LoRA to load, at what weight), and the network service reads the call type without the rest of
the prompt language. A1111 removes them before anything else, so they are independent of the grammar.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType

from webui.core.errors import PromptSyntaxError

LORA_KINDS = frozenset({"lora", "lyco"})


@dataclass(frozen=True)
class ExtraNetworkCall:
    """One `<kind:name:args...>` tag, e.g. `<lora:detail:0.5:0.8>`.

    `raw_args` is every `:`-separated item of the tag after the kind, the name included (A1111's `items`), so a
    network type with its own arguments (`dyn=16`, a 4th positional) can read them.
    """

    kind: str
    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0
    raw_args: tuple[str, ...] = ()

    @property
    def positional_args(self) -> tuple[str, ...]:
        """Items without exactly one `=`, in order (A1111's `positional`; index 0 is the name)."""
        return tuple(item for item in self.raw_args if item.count("=") != 1)

    @property
    def named_args(self) -> MappingProxyType[str, str]:
        """`key=value` items (A1111's `named`), e.g. `te`, `unet`, `dyn`."""
        pairs = (item.split("=", 1) for item in self.raw_args if item.count("=") == 1)
        return MappingProxyType({key: value for key, value in pairs})


_EXTRA_NETWORK_RE = re.compile(r"<(\w+):([^>]+)>")


def extract_extra_networks(prompt: str, default_weight: float = 1.0) -> tuple[str, list[ExtraNetworkCall]]:
    """Remove every `<kind:args>` tag from the prompt and return the remaining text and the calls, in order.

    Like A1111 the tags are taken out everywhere (also inside brackets or edits) and replaced by nothing, and the
    remaining text is not otherwise tidied. Weights: `<lora:n>` = default, `<lora:n:w>` = w for both text encoder
    and UNet, `<lora:n:te:unet>` separate; `te=`/`unet=` named items override.

    Raises PromptSyntaxError for a `lora`/`lyco` weight that is not a finite number (A1111 fails there too).
    Other kinds' arguments are opaque to us: a weight we cannot read falls back to the default.
    """
    calls: list[ExtraNetworkCall] = []

    def take(match: re.Match[str]) -> str:
        calls.append(_make_call(match.group(1), match.group(2), default_weight))
        return ""

    return _EXTRA_NETWORK_RE.sub(take, prompt), calls


def _make_call(kind: str, args: str, default_weight: float) -> ExtraNetworkCall:
    """Build one call from a tag's kind and its `:`-separated argument string."""
    items = tuple(args.split(":"))
    call = ExtraNetworkCall(kind=kind, name="", raw_args=items)
    positional, named = call.positional_args, call.named_args
    strict = kind.lower() in LORA_KINDS
    te_text = named.get("te", positional[1] if len(positional) > 1 else None)
    te_weight = _read_weight(te_text, default_weight, strict, kind)
    unet_text = named.get("unet", positional[2] if len(positional) > 2 else None)
    unet_weight = _read_weight(unet_text, te_weight, strict, kind)
    name = positional[0] if positional else ""
    return ExtraNetworkCall(kind=kind, name=name, te_weight=te_weight, unet_weight=unet_weight, raw_args=items)


def _read_weight(text: str | None, default: float, strict: bool, kind: str) -> float:
    """A tag's weight item as a float; a missing item gives `default`."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        return value
    if strict:
        raise PromptSyntaxError(f"The weight {text!r} in a <{kind}:...> tag is not a number.")
    return default
