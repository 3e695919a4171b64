"""A second module of the sample extension, imported relatively by main.py."""
from __future__ import annotations

MARK = (0, 255, 0)


def marked(image):
    """A copy of `image` whose top-left pixel is pure green (tests look for it in the saved PNG)."""
    copy = image.copy()
    copy.putpixel((0, 0), MARK)
    return copy
