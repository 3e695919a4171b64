"""Saving generated images with their infotext, and reading it back.

Why these containers: A1111 stores the infotext in the PNG text chunk `parameters` and, for JPEG/WebP, in the EXIF
UserComment as "UNICODE\\0" + UTF-16BE text (what piexif's `UserComment.dump(..., encoding="unicode")` writes).
Other tools (A1111's PNG Info tab, civitai, sd-parsers) read exactly those places, so we write them the same way.
Files are written atomically so that the gallery, a file watcher or a browser never sees a half-written image.
"""
from __future__ import annotations

import os
import secrets
import struct
from pathlib import Path

from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

PNG_INFOTEXT_KEY = "parameters"
USER_COMMENT_TAG = int(ExifTags.Base.UserComment)
EXIF_IFD_TAG = int(ExifTags.IFD.Exif)

# EXIF UserComment starts with an 8-byte character-code designation (Exif 2.3, table 9).
_UNICODE_PREFIX = b"UNICODE\x00"
_ASCII_PREFIX = b"ASCII\x00\x00\x00"
_PREFIX_SIZE = 8
_TIFF_LONG = 4
_TIFF_UNDEFINED = 7
_IFD_SIZE_ONE_ENTRY = 2 + 12 + 4  # entry count, one 12-byte entry, next-IFD offset

# Our format names -> (Pillow format, file suffix).
_FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", ".png"),
    "jpg": ("JPEG", ".jpg"),
    "jpeg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
}


def save_image(image: Image.Image, path: Path, infotext: str, fmt: str = "png", *, quality: int = 95) -> Path:
    """Write `image` to `path` with `infotext` embedded, atomically (temp file in the same folder + os.replace).

    The folder is created if needed. `fmt` is "png", "jpg"/"jpeg" or "webp"; `quality` applies to the lossy ones.
    Returns `path`.
    """
    pil_format = _pil_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_kwargs = _metadata_kwargs(pil_format, infotext)
    if pil_format != "PNG":
        save_kwargs["quality"] = quality
    _atomic_save(_prepare_mode(image, pil_format), path, pil_format, save_kwargs)
    return path


def _pil_format(fmt: str) -> str:
    """Pillow's format name for ours; ValueError for anything we do not write."""
    entry = _FORMATS.get(fmt.lower().lstrip("."))
    if entry is None:
        raise ValueError(f"Unsupported image format '{fmt}'. Use one of: png, jpg, webp.")
    return entry[0]


def _prepare_mode(image: Image.Image, pil_format: str) -> Image.Image:
    """JPEG has no alpha or palette; convert instead of letting Pillow fail half-way through a save."""
    if pil_format == "JPEG" and image.mode not in {"RGB", "L"}:
        return image.convert("RGB")
    return image


def _metadata_kwargs(pil_format: str, infotext: str) -> dict[str, object]:
    """The `Image.save` keyword arguments that carry the infotext in this container."""
    if not infotext:
        return {}
    if pil_format == "PNG":
        info = PngInfo()
        info.add_text(PNG_INFOTEXT_KEY, infotext)  # Pillow switches to iTXt for non-Latin-1 text.
        return {"pnginfo": info}
    return {"exif": exif_with_user_comment(encode_user_comment(infotext))}


def _atomic_save(image: Image.Image, path: Path, pil_format: str, save_kwargs: dict[str, object]) -> None:
    """Save to a hidden temp file next to `path`, flush it to disk, then rename over `path` in one step."""
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the final permissions (mkstemp would leave the image 0600).
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=pil_format, **save_kwargs)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def exif_with_user_comment(comment: bytes) -> bytes:
    """A minimal big-endian EXIF block holding only UserComment, typed UNDEFINED as the Exif standard says.

    Why by hand: Pillow's Exif API cannot set a tag type and stores bytes as BYTE, which piexif (and so A1111's PNG
    Info) reads back as a tuple of ints and fails on. Layout: TIFF header, IFD0 with the Exif-IFD pointer, the Exif
    IFD with one entry, then the comment bytes.
    """
    ifd0_offset = 8
    exif_ifd_offset = ifd0_offset + _IFD_SIZE_ONE_ENTRY
    data_offset = exif_ifd_offset + _IFD_SIZE_ONE_ENTRY
    tiff = b"MM" + struct.pack(">HI", 42, ifd0_offset)
    tiff += struct.pack(">HHHIII", 1, EXIF_IFD_TAG, _TIFF_LONG, 1, exif_ifd_offset, 0)
    tiff += struct.pack(">HHHIII", 1, USER_COMMENT_TAG, _TIFF_UNDEFINED, len(comment), data_offset, 0)
    return b"Exif\x00\x00" + tiff + comment


def encode_user_comment(text: str) -> bytes:
    """EXIF UserComment bytes the way A1111 (via piexif) writes them: "UNICODE\\0" + UTF-16 big-endian."""
    return _UNICODE_PREFIX + text.encode("utf-16-be")


def decode_user_comment(data: bytes | str) -> str:
    """Text of an EXIF UserComment, tolerating the encodings other writers use (ASCII, UTF-16LE, bare UTF-8)."""
    if isinstance(data, str):
        return data.rstrip("\x00")
    prefix, body = data[:_PREFIX_SIZE], data[_PREFIX_SIZE:]
    if prefix == _UNICODE_PREFIX:
        text = body.decode(_guess_utf16(body), errors="replace")
    elif prefix == _ASCII_PREFIX or prefix == b"\x00" * _PREFIX_SIZE:
        text = body.decode("utf-8", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    return text.rstrip("\x00")


def _guess_utf16(body: bytes) -> str:
    """"utf-16-be" (A1111's choice) unless a byte-order mark or the zero-byte pattern says little-endian.

    Mostly-ASCII text in UTF-16LE has its zero bytes at odd offsets; some Windows tools write it that way.
    """
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # The codec reads the byte-order mark and drops it.
    zeros_even = body[0::2].count(0)
    zeros_odd = body[1::2].count(0)
    return "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"


def read_infotext(image: Image.Image) -> str | None:
    """The infotext stored in `image`: PNG `parameters` text, else EXIF UserComment; None when there is none."""
    text = image.info.get(PNG_INFOTEXT_KEY)
    if isinstance(text, str) and text:
        return str(text)
    comment = image.getexif().get_ifd(EXIF_IFD_TAG).get(USER_COMMENT_TAG)
    if comment:
        decoded = decode_user_comment(comment)
        return decoded or None
    return None
