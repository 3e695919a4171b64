"""A1111-style output file names: `outputs/txt2img-images/2024-05-01/00042-1234.png`.

Why A1111's scheme: users keep their old output folders and scripts that sort by the running number; continuing
the count from the files already in a folder keeps one sequence per day, with no counter file to get out of sync.
The part after the number comes from A1111's `samples_filename_pattern` (`[seed]-[prompt_spaces]`, ...), so a
`config.json` carried over from A1111 names files the same way. Pure Python: the engine writes the bytes.
"""
from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webui.core.infotext import parse_infotext

# The running number is the leading digits of a file name, ended by "-", "." or the end of the name.
_SEQUENCE_RE = re.compile(r"^(\d+)(?:[-.]|$)")
SEQUENCE_WIDTH = 5

# A1111's rules for one substituted part of a name (modules/images.py, `sanitize_filename_part`).
INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
MAX_FILENAME_PART_LENGTH = 128
# Most file systems limit a name to 255 bytes; UTF-8 prompts make bytes, not characters, the unit that matters.
MAX_FILENAME_BYTES = 255
PROMPT_WORDS = 8  # A1111's `directories_max_prompt_words` default
DEFAULT_DATETIME_FORMAT = "%Y%m%d%H%M%S"

# `[token]` or `[token<arg>]`/`[token<arg1><arg2>]` inside a pattern.
_TOKEN_RE = re.compile(r"\[([^\[\]]+)\]")
_TOKEN_ARG_RE = re.compile(r"(.*)<([^>]*)>$")
_NON_LETTERS_RE = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")


def dated_folder(root: Path, kind: str, today: date) -> Path:
    """`root/<kind>/YYYY-MM-DD`, e.g. `outputs/txt2img-images/2024-05-01`. Nothing is created here.

    `kind` is one plain folder name ("txt2img-images", "img2img-grids", ...); anything that would leave `root`
    is refused, since the name may come from settings.
    """
    if not kind or kind in {".", ".."} or "/" in kind or "\\" in kind:
        raise ValueError(f"Output kind must be a plain folder name, got {kind!r}.")
    return Path(root) / kind / today.isoformat()


def next_sequence_number(folder: Path) -> int:
    """One more than the highest running number of the files in `folder` (0 for a missing or empty folder)."""
    highest = -1
    if Path(folder).is_dir():
        for entry in Path(folder).iterdir():
            match = _SEQUENCE_RE.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def next_image_path(folder_for_day: Path, seed: int, ext: str = "png", *, decoration: str | None = None) -> Path:
    """`folder/NNNNN-<decoration>.ext` (decoration defaults to the seed), numbered after the highest number there.

    Counting (rather than taking the first free name) matches A1111: deleting an old image never makes a new one
    sort before it. The caller saves through a single worker, so two saves never race for the same number.
    An empty decoration gives just `NNNNN.ext`; a long one is cut so the whole name fits in 255 bytes.
    """
    suffix = ext.lstrip(".").lower()
    if not suffix:
        raise ValueError("File extension must not be empty.")
    number = f"{next_sequence_number(folder_for_day):0{SEQUENCE_WIDTH}d}"
    text = str(seed) if decoration is None else sanitize_filename(decoration)
    budget = MAX_FILENAME_BYTES - len(number) - 1 - len(suffix) - 1
    text = _cut_to_bytes(text, budget).rstrip(" .")
    stem = f"{number}-{text}" if text else number
    return Path(folder_for_day) / f"{stem}.{suffix}"


# ----------------------------------------------------------------------------------------------------------------
# Sanitising


def sanitize_filename_part(text: str | None, replace_spaces: bool = True) -> str:
    """One substituted value made safe for a file name, A1111's way: spaces to `_` (unless asked not to), path
    and shell characters to `_`, no leading spaces, at most 128 characters, no trailing spaces or dots."""
    if not text:
        return ""
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(ch): "_" for ch in INVALID_FILENAME_CHARS})
    return text.lstrip(" ")[:MAX_FILENAME_PART_LENGTH].rstrip(" .")


def sanitize_filename(text: str) -> str:
    """A whole name made safe: the literal text of a pattern may hold `/` or `:` too, and must never leave the
    output folder or break on Windows. Unlike a part, spaces and `#` are kept (users write them on purpose)."""
    text = text.translate({ord(ch): "_" for ch in INVALID_FILENAME_CHARS if ch != "#"})
    text = "".join(ch for ch in text if ch.isprintable())
    return text.strip(" ").rstrip(".")


def _cut_to_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[: max(limit, 0)].decode("utf-8", errors="ignore")


# ----------------------------------------------------------------------------------------------------------------
# Patterns


@dataclass(frozen=True)
class FilenameContext:
    """What a pattern can refer to, for one image. Missing values (None / "") substitute as nothing."""

    seed: int
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str = ""
    model_name: str = ""
    model_hash: str = ""
    width: int | None = None
    height: int | None = None
    clip_skip: int | None = None
    now: datetime = field(default_factory=datetime.now)

    @classmethod
    def from_infotext(cls, seed: int, infotext: str, now: datetime | None = None) -> FilenameContext:
        """The context of an image from its infotext.

        Why the infotext: it is the one complete record of how the image was made (the resolved sampler, the
        loaded model, the prompt after styles), and it is what every saver already receives.
        """
        fields = parse_infotext(infotext).to_generation_fields() if infotext else {}
        return cls(
            seed=seed,
            prompt=str(fields.get("prompt") or ""),
            negative_prompt=str(fields.get("negative_prompt") or ""),
            steps=_maybe_int(fields.get("steps")),
            cfg_scale=_maybe_float(fields.get("cfg_scale")),
            sampler=str(fields.get("sampler_name") or ""),
            model_name=str(fields.get("model") or ""),
            model_hash=str(fields.get("model_hash") or ""),
            width=_maybe_int(fields.get("width")),
            height=_maybe_int(fields.get("height")),
            clip_skip=_maybe_int(fields.get("clip_skip")),
            now=now or datetime.now(),
        )


def _maybe_int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def _maybe_float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _number(value: float | int | None) -> str:
    return "" if value is None else str(value)


def _datetime(ctx: FilenameContext, fmt: str = DEFAULT_DATETIME_FORMAT, zone: str = "") -> str:
    """`[datetime]`, `[datetime<%Y%m%d_%H%M%S>]`, `[datetime<%H%M><Europe/Berlin>]` as in A1111."""
    moment = ctx.now
    if zone:
        try:
            moment = moment.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            pass  # A1111 also falls back to local time for an unknown zone
    return sanitize_filename_part(moment.strftime(fmt or DEFAULT_DATETIME_FORMAT), replace_spaces=False)


def _prompt_words(ctx: FilenameContext) -> str:
    words = [word for word in _NON_LETTERS_RE.split(ctx.prompt) if word] or ["empty"]
    return sanitize_filename_part(" ".join(words[:PROMPT_WORDS]), replace_spaces=False)


# Token -> value for one image. Extra `<arg>`s are passed as positional strings (only `datetime` takes any).
FILENAME_TOKENS: dict[str, Callable[..., str]] = {
    "seed": lambda ctx: str(ctx.seed),
    "steps": lambda ctx: _number(ctx.steps),
    "cfg": lambda ctx: _number(ctx.cfg_scale),
    "width": lambda ctx: _number(ctx.width),
    "height": lambda ctx: _number(ctx.height),
    "sampler": lambda ctx: sanitize_filename_part(ctx.sampler, replace_spaces=False),
    "model_name": lambda ctx: sanitize_filename_part(ctx.model_name, replace_spaces=False),
    "model_hash": lambda ctx: ctx.model_hash,
    "clip_skip": lambda ctx: _number(ctx.clip_skip),
    "prompt": lambda ctx: sanitize_filename_part(ctx.prompt),
    "prompt_spaces": lambda ctx: sanitize_filename_part(ctx.prompt, replace_spaces=False),
    "prompt_words": _prompt_words,
    "prompt_hash": lambda ctx: hashlib.sha256(ctx.prompt.encode("utf-8")).hexdigest()[:8],
    "negative_prompt": lambda ctx: sanitize_filename_part(ctx.negative_prompt),
    "date": lambda ctx: ctx.now.strftime("%Y-%m-%d"),
    "datetime": _datetime,
    "job_timestamp": lambda ctx: ctx.now.strftime(DEFAULT_DATETIME_FORMAT),
    "none": lambda ctx: "",
}


def _split_token(token: str) -> tuple[str, list[str]]:
    """`datetime<%Y><UTC>` -> ("datetime", ["%Y", "UTC"])."""
    args: list[str] = []
    while (match := _TOKEN_ARG_RE.match(token)) is not None:
        token, arg = match.groups()
        args.insert(0, arg)
    return token.strip().lower(), args


def unknown_filename_tokens(pattern: str) -> list[str]:
    """The `[tokens]` of a pattern this app cannot fill (for a readable settings error)."""
    return [match.group(0) for match in _TOKEN_RE.finditer(pattern)
            if _split_token(match.group(1))[0] not in FILENAME_TOKENS]


def apply_filename_pattern(pattern: str, ctx: FilenameContext) -> str:
    """The pattern with every known `[token]` replaced; unknown tokens stay as written, as in A1111 (a config
    from A1111 may use tokens we do not have; the image is still saved)."""

    def substitute(match: re.Match[str]) -> str:
        name, args = _split_token(match.group(1))
        fill = FILENAME_TOKENS.get(name)
        if fill is None:
            return match.group(0)
        try:
            return fill(ctx, *args)
        except (TypeError, ValueError):  # wrong number of <args>, or a bad strftime format
            return match.group(0)

    return _TOKEN_RE.sub(substitute, pattern)


def image_decoration(pattern: str, ctx: FilenameContext) -> str:
    """The part of the file name after `NNNNN-`: the pattern, or just the seed for an empty pattern (A1111's
    default with dated folders is `[seed]`)."""
    return apply_filename_pattern(pattern.strip() or "[seed]", ctx)
