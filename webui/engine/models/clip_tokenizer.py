"""Build the CLIP BPE tokenizer files offline from the vocabulary `open-clip-torch` ships.

Why: single-file checkpoints carry no tokenizer and we may never reach a model hub. Every SD family uses the same
OpenAI CLIP BPE (49,408 tokens); `open_clip` ships its merges as `bpe_simple_vocab_16e6.txt.gz`. From those merges
we write the four files transformers' `CLIPTokenizer.from_pretrained` reads. SDXL's second tokenizer differs only
in its pad token ("!", id 0), which changes the padded positions the text encoder sees.
"""
from __future__ import annotations

import gzip
import importlib.resources
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from webui.core.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

logger = logging.getLogger(__name__)

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
VOCAB_SIZE = 49408
# The published CLIP vocabulary keeps 49152 - 256 - 2 merges of the file (the rest were never trained on).
_MERGE_COUNT = VOCAB_SIZE - 2 * 256 - 2
_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters (the base of the vocabulary).

    Printable latin-1 bytes map to themselves; the others are shifted to code points from 256 up. The order
    matters: printable bytes come first, so "!" is id 0 and "a</w>" is id 320.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + shift)
            shift += 1
    return mapping


def _bpe_vocab_path() -> Path:
    """Locate the merges file inside the installed `open_clip` package without importing it (import is slow)."""
    try:
        resource = importlib.resources.files("open_clip").joinpath(_BPE_FILE)
    except ModuleNotFoundError as err:
        raise ModelLoadError("The CLIP tokenizer needs the 'open-clip-torch' package; install it.") from err
    path = Path(str(resource))
    if not path.is_file():
        raise ModelLoadError(f"The CLIP vocabulary file {_BPE_FILE} is missing from the open-clip-torch package.")
    return path


def _read_merges() -> list[str]:
    """The first `_MERGE_COUNT` merge lines ("a b") of the shipped file; its first line is a version comment."""
    with gzip.open(_bpe_vocab_path(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    return lines[1 : _MERGE_COUNT + 1]


def build_vocab(merges: list[str]) -> dict[str, int]:
    """Token -> id in CLIP's order: 256 byte chars, the same with the `</w>` end-of-word mark, merges, specials."""
    base = list(_bytes_to_unicode().values())
    tokens = base + [t + "</w>" for t in base] + [m.replace(" ", "") for m in merges] + [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def _tokenizer_config(pad_token: str) -> dict[str, object]:
    added = {
        str(i): {"content": tok, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False,
                 "special": True}
        for i, tok in ((VOCAB_SIZE - 2, BOS_TOKEN), (VOCAB_SIZE - 1, EOS_TOKEN))
    }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": BOS_TOKEN,
        "clean_up_tokenization_spaces": False,
        "do_lower_case": True,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": EOS_TOKEN,
    }


def _file_contents(pad_token: str) -> dict[str, str]:
    merges = _read_merges()
    vocab = build_vocab(merges)
    if len(vocab) != VOCAB_SIZE:
        raise ModelLoadError(f"The CLIP vocabulary in open-clip-torch has {len(vocab)} tokens, expected {VOCAB_SIZE}.")
    if pad_token not in vocab:
        raise ValueError(f"pad token {pad_token!r} is not in the CLIP vocabulary")
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": pad_token, "unk_token": EOS_TOKEN}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "tokenizer_config.json": json.dumps(_tokenizer_config(pad_token), indent=2),
        "special_tokens_map.json": json.dumps(special, indent=2),
    }


def _is_complete(dest_dir: Path, pad_token: str) -> bool:
    """True when all files exist and were written for this pad token (so a cached folder is never mixed up)."""
    if not all((dest_dir / name).is_file() for name in _FILES):
        return False
    try:
        config = json.loads((dest_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return config.get("pad_token") == pad_token


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a concurrent reader never sees half a vocabulary."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tokenizer_files(dest_dir: Path, pad_token: str = EOS_TOKEN) -> Path:
    """Write `vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json` into `dest_dir`.

    Files already there for the same pad token are kept (cheap to call on every model load). Returns `dest_dir`.
    """
    dest_dir = Path(dest_dir)
    if _is_complete(dest_dir, pad_token):
        return dest_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    logger.info("Writing CLIP tokenizer files (pad %r) to %s", pad_token, dest_dir)
    for name, text in _file_contents(pad_token).items():
        _atomic_write(dest_dir / name, text)
    return dest_dir


def load_clip_tokenizer(dest_dir: Path, pad_token: str = EOS_TOKEN) -> CLIPTokenizer:
    """Return a transformers `CLIPTokenizer` for `dest_dir`, writing the files first when missing."""
    from transformers import CLIPTokenizer  # noqa: F811 - runtime import keeps module import light

    write_tokenizer_files(dest_dir, pad_token=pad_token)
    return CLIPTokenizer.from_pretrained(str(dest_dir), local_files_only=True)
