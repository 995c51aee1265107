"""How a synthetic image is drawn: a class is a shape and a colour, an object one of them in a
style, placed with little overlap on a noisy background with grey clutter."""

from __future__ import annotations

import colorsys

import numpy as np

SHAPES = (
    "square",
    "circle",
    "triangle",
    "diamond",
    "ring",
    "cross",
    "bar",
    "frame",
    "hourglass",
    "chevron",
)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
    "magenta": (200, 50, 200),
    "cyan": (40, 200, 210),
}
HUE_SATURATION, HUE_VALUE = 0.8, 0.9  # of the ``hues`` palette's colours
STYLES = ("solid", "striped", "checked", "outlined")


def colour_names(hues: int | None = None) -> list[str]:
    """The six named colours, or ``hues`` hues named by their angle: hue000, hue030, ..."""
    if hues is None:
        return list(COLOURS)
    return [f"hue{round(360 * i / hues):03d}" for i in range(hues)]


def class_names(hues: int | None = None) -> list[str]:
    return [f"{colour}_{shape}" for shape in SHAPES for colour in colour_names(hues)]


def colour_rgb(colour: str) -> np.ndarray:
    """RGB of a named colour or of a hue named by its angle (``hue030``)."""
    if colour in COLOURS:
        return np.array(COLOURS[colour], float)
    angle = colour.removeprefix("hue")
    if colour == angle or not angle.isdigit() or int(angle) >= 360:
        raise ValueError(f"unknown synthetic colour {colour!r}")
    rgb = colorsys.hsv_to_rgb(int(angle) / 360, HUE_SATURATION, HUE_VALUE)
    return np.array(rgb) * 255


def known_class(name: str) -> bool:
    colour, _, shape = name.partition("_")
    try:
        colour_rgb(colour)
    except ValueError:
        return False
    return shape in SHAPES


def attributes(name: str) -> tuple[str, str]:
    colour, shape = name.split("_")
    return colour, shape


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean (size, size) mask of one shape filling its box."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    u, v = (x / size) * 2 - 1, (y / size) * 2 - 1  # -1..1
    radius = np.hypot(u, v)
    masks = {
        "square": np.ones((size, size), bool),
        "circle": radius <= 1,
        "triangle": (v >= -1) & (np.abs(u) <= (v + 1) / 2),
        "diamond": np.abs(u) + np.abs(v) <= 1,
        "ring": (radius <= 1) & (radius >= 0.55),
        "cross": (np.abs(u) <= 0.3) | (np.abs(v) <= 0.3),
        "bar": np.abs(v) <= 1,  # filled with stripes below
        "frame": (np.abs(u) >= 0.6) | (np.abs(v) >= 0.6),
        "hourglass": np.abs(u) <= np.abs(v),
        "chevron": (v >= -1) & (np.abs(np.abs(u) - (v + 1) / 2) <= 0.3),
    }
    mask = masks[shape]
    if shape == "bar":
        mask = mask & ((np.floor((y * 4) / size) % 2) == 0)
    return mask


def _place(rng: np.random.Generator, sizes: list[int], image_size: int) -> list[tuple[int, int]]:
    """Top-left corners for boxes of the given sizes with little overlap (best effort)."""
    placed: list[tuple[int, int, int]] = []
    for size in sizes:
        best = None
        for _ in range(20):
            x, y = (int(v) for v in rng.integers(0, image_size - size + 1, 2))
            overlap = max((_iou((x, y, size), other) for other in placed), default=0.0)
            if best is None or overlap < best[0]:
                best = (overlap, x, y)
            if overlap < 0.1:
                break
        assert best is not None
        placed.append((best[1], best[2], size))
    return [(x, y) for x, y, _ in placed]


def _iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    (ax, ay, asz), (bx, by, bsz) = a, b
    w = max(0, min(ax + asz, bx + bsz) - max(ax, bx))
    h = max(0, min(ay + asz, by + bsz) - max(ay, by))
    inter = w * h
    return inter / (asz * asz + bsz * bsz - inter)


def paint(mask: np.ndarray, style: str, tint: np.ndarray) -> np.ndarray:
    """(size, size, 3) colours of a shape drawn in a style: ``tint`` and a dark shade of it."""
    size = mask.shape[0]
    y, x = np.mgrid[0:size, 0:size]
    dark = {
        "solid": np.zeros(mask.shape, bool),
        "striped": ((x + y) // 3) % 2 == 1,
        "checked": (x // 3 + y // 3) % 2 == 1,
        "outlined": _inner(mask, max(2, size // 6)),
    }[style]
    return np.where(dark[..., None], tint * 0.4, tint)


def _inner(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` at least ``width`` pixels inside its edge."""
    inner = np.pad(mask, width)
    for _ in range(width):
        inner = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0)
        inner = inner & np.roll(inner, 1, 1) & np.roll(inner, -1, 1)
    return inner[width:-width, width:-width]


def render(rng, labels, names, spec, styles=None) -> tuple[np.ndarray, list, list[str]]:
    """One image of the objects ``labels``; ``styles[label]``: the style indices it may show."""
    n = spec.image_size
    image = rng.normal(110, 25, (n, n, 3))
    for _ in range(int(rng.integers(1, 4))):  # clutter: grey blobs that are not objects
        cx, cy, r = [*rng.integers(0, n, 2).tolist(), int(rng.integers(3, 8))]
        y, x = np.ogrid[0:n, 0:n]
        image[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = rng.integers(60, 180)
    sizes = [int(rng.integers(spec.min_size, spec.max_size + 1)) for _ in labels]
    drawn = [STYLES[0]] * len(labels)
    if spec.styles > 1:  # no draw otherwise: one style gives the same images as before styles
        drawn = [STYLES[rng.choice(styles[label])] for label in labels]
    boxes = []
    for label, size, style, (x, y) in zip(labels, sizes, drawn, _place(rng, sizes, n)):
        colour, shape = names[label - 1].split("_")
        mask = shape_mask(shape, size)
        tint = colour_rgb(colour) + rng.normal(0, spec.tint_noise, 3)
        image[y : y + size, x : x + size][mask] = paint(mask, style, tint)[mask]
        rows, cols = np.nonzero(mask)
        boxes.append(
            [
                x + cols.min(),
                y + rows.min(),
                cols.max() - cols.min() + 1,
                rows.max() - rows.min() + 1,
            ]
        )
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), [[float(v) for v in b] for b in boxes], drawn
