"""Bounded decoding of reference images (enrollment): JPEG or PNG, pixel count checked first.

Operators upload what they have, so a reference image is untrusted bytes: a PNG of 1.2 MB can
declare 20,000 x 20,000 pixels and take 24 s and 2.5 GB to decode (issue 11, A-7). The
dimensions are read from the header (PNG IHDR, JPEG SOF) and an image over the limit is refused
before any pixel is decoded. Camera frames have their own, stricter path (vision/decode.py).
"""

from __future__ import annotations

import numpy as np

from .decode import FrameDecodeError, jpeg_size
from .decode import decode_image as bounded_decode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"


class ReferenceImageError(ValueError):
    """A reference image that cannot be used; `code` is a short reason for reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG spec requires to come first."""
    # signature (8) + chunk length (4) + b"IHDR" (4) + width (4) + height (4)
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ReferenceImageError("corrupt", "PNG without an IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    if width == 0 or height == 0:
        raise ReferenceImageError("corrupt", "PNG of zero size")
    return width, height


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone; only JPEG and PNG are accepted (any other
    format cv2 reads would bypass this check)."""
    if data.startswith(PNG_SIGNATURE):
        return ("png", *png_size(data))
    if data.startswith(JPEG_SOI):
        try:
            return ("jpeg", *jpeg_size(data))
        except FrameDecodeError as exc:
            raise ReferenceImageError("corrupt", f"JPEG header: {exc}") from None
    raise ReferenceImageError("not_an_image", "not a readable JPEG or PNG image")


def decode_reference(data: bytes, max_pixels: int) -> np.ndarray:
    """BGR uint8 image; refuses, before decoding, anything but a JPEG or PNG of at most
    `max_pixels` pixels."""
    if not data:
        raise ReferenceImageError("empty", "empty file")
    _, width, height = image_size(data)
    if width * height > max_pixels:
        raise ReferenceImageError(
            "too_many_pixels",
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f} (resize it; a face needs far fewer)")
    try:  # the frames' bounds too: scans and segments of a JPEG, before decoding (I-3)
        return bounded_decode(data, max_pixels, ("jpeg", "png"))
    except FrameDecodeError as exc:
        if exc.reason in ("too_many_scans", "too_many_segments"):
            raise ReferenceImageError(exc.reason, f"{exc} (re-save it as a baseline JPEG)"
                                      ) from None
        raise ReferenceImageError("corrupt", f"not a readable JPEG or PNG image ({exc})"
                                  ) from None
