"""Checking image files before training on them: cheap checks of every file, up front.

Decoding every image of LVIS (100k) to find a broken one would take minutes; reading each
file's header and its last bytes takes milliseconds per thousand. What the header shows (not
an image, larger than the pixel limit, another size than the annotations say) and a file cut
short (a PNG or JPEG without its end marker) are found here. Damage inside the compressed data
is found only when the image is decoded, and reported then with the file and the image id.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path, PurePosixPath

from PIL import Image

# PIL's decompression-bomb threshold (89.5 million pixels; LVIS images have at most 0.4M).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

# What a complete file ends with: PNG's IEND chunk, JPEG's end-of-image marker.
_END_MARKERS = {"PNG": b"\x00\x00\x00\x00IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}


class ImageFileError(OSError):
    """An image file that cannot be used; the message names the file and the image id."""


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` under ``root`` stays in it once links are resolved (the root itself may
    be a link). Folders are resolved once each: on LVIS, 100k files share a few folders."""
    real_root = _real(str(root))
    real = os.path.join(_real(str(path.parent)), path.name)
    if os.path.islink(real):
        real = os.path.realpath(real)
    return os.path.commonpath([real_root, real]) == real_root


@functools.lru_cache(maxsize=4096)
def _real(folder: str) -> str:
    return os.path.realpath(folder)


def image_problem(root: Path, relative: str, width: int, height: int) -> tuple[str, str] | None:
    """(reason, detail) of what is wrong with the image file ``root / relative`` that the
    annotations say is ``width`` x ``height``, or None."""
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        return "outside the image folder", "path leads outside the image folder"
    try:
        if not _inside(root, root / relative):
            return "outside the image folder", "path leads outside the image folder by a link"
        with open(root / relative, "rb") as file:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(file) as image:
                    size, kind = image.size, image.format
            file.seek(0, 2)
            file.seek(max(file.tell() - 64, 0))
            tail = file.read()
    except FileNotFoundError:
        return "missing", "missing image"
    except Image.DecompressionBombError:
        return "too large", f"more than {MAX_PIXELS} pixels"
    except Exception as error:  # PIL raises many kinds for a file that is not an image
        return "unreadable", f"not a readable image ({error})"
    if size[0] * size[1] > MAX_PIXELS:
        return "too large", f"{size[0]}x{size[1]} pixels, more than {MAX_PIXELS}"
    if size != (width, height):
        return "wrong size", f"{size[0]}x{size[1]} pixels, the annotations say {width}x{height}"
    marker = _END_MARKERS.get(kind)
    if marker is not None and not tail.rstrip(b"\0").endswith(marker):
        return "truncated", f"the {kind} file does not end with its end marker (cut short?)"
    return None
