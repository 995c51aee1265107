"""A synthetic long-tailed detection dataset in LVIS format, deterministic from a seed.

A class is a combination of a shape and a colour: 10 shapes x 6 named colours (up to 60
classes), or x ``hues`` colours evenly spaced around the colour wheel.
Objects are drawn at random scales on a noisy background with distractor blobs; images hold
several objects. Training instance counts follow the configured long tail; the val split has
the same number of instances of every class. Every image is exhaustively annotated, so each val
image lists every absent class in ``neg_category_ids`` and ``not_exhaustive_category_ids`` is
empty.

A pretraining set plays COCO's part: balanced, with its own classes, namely the long-tailed
set's classes that are not rare. The long-tailed set is drawn so that those classes show every
shape and every colour, so features learnt on them serve the rare combinations, which the
pretraining set never shows (as COCO never shows LVIS's rare classes).

With ``styles`` > 1 an object is drawn in one of several styles (solid, striped, checked,
outlined: the class's colour with a dark shade of it). Every class shows every style in val and
in a pretraining set; a rare class's few training instances show only ``rare_styles`` of them,
so its val instances are more varied than its training ones, as an LVIS rare class's are.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bags.data.annotations import frequency
from bags.io import atomic_path
from bags.values import MAX_SEED, is_int, is_number

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
RARE_BELOW = 10  # fewer training instances: rare, never shown by a pretraining set

MOST = 100_000  # classes of a tier, instances of a class: the config schema's bound too


@dataclass(frozen=True)
class SyntheticSpec:
    """``train_counts``: ``[number_of_classes, low, high]`` per tier; counts log-spaced in it.

    The classes with at least ``rare_below`` training instances show every shape and colour,
    and every one of ``styles`` styles; a rarer class's training instances show ``rare_styles``.
    """

    train_counts: Sequence[Sequence[int]]
    val_per_class: int = 12
    image_size: int = 64
    min_size: int = 12
    max_size: int = 26
    min_objects: int = 1
    max_objects: int = 4
    rare_below: int = RARE_BELOW
    styles: int = 1
    rare_styles: int = 1
    hues: int | None = None
    tint_noise: float = 12.0
    seed: int = 0

    def __post_init__(self) -> None:
        keys = (
            "image_size",
            "min_size",
            "max_size",
            "min_objects",
            "max_objects",
            "rare_below",
            "rare_styles",
        )
        for key in keys:
            if not is_int(getattr(self, key)) or getattr(self, key) < 1:
                raise ValueError(f"synthetic spec: {key!r} must be an integer >= 1")
        if not is_int(self.val_per_class) or self.val_per_class < 0:
            raise ValueError("synthetic spec: 'val_per_class' must be an integer >= 0")
        if not is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"synthetic spec: 'seed' must be an integer from 0 to {MAX_SEED}")
        if not is_int(self.styles) or not self.rare_styles <= self.styles <= len(STYLES):
            raise ValueError(f"synthetic spec: need 1 <= rare_styles <= styles <= {len(STYLES)}")
        if self.hues is not None and (not is_int(self.hues) or not 2 <= self.hues <= 360):
            raise ValueError("synthetic spec: 'hues' must be null or an integer from 2 to 360")
        if not is_number(self.tint_noise) or not 0 <= self.tint_noise <= 255:
            raise ValueError("synthetic spec: 'tint_noise' must be a number from 0 to 255")
        if self.min_objects > self.max_objects:
            raise ValueError("synthetic spec: need min_objects <= max_objects")
        if not self.min_size <= self.max_size <= self.image_size:
            raise ValueError("synthetic spec: need min_size <= max_size <= image_size")
        tiers = self.train_counts
        if (
            not isinstance(tiers, list | tuple)
            or not tiers
            or not all(
                isinstance(tier, list | tuple) and len(tier) == 3 and all(map(is_int, tier))
                for tier in tiers
            )
        ):
            raise ValueError("synthetic spec: 'train_counts' must be [[n, low, high], ...]")
        for n, low, high in tiers:
            if not (1 <= n <= MOST and 1 <= low <= high <= MOST):
                raise ValueError(
                    f"synthetic spec: 'train_counts' tier {[n, low, high]} needs "
                    f"1 <= n <= {MOST} and 1 <= low <= high <= {MOST}"
                )
        if len(tiers) > 100 or self.image_size > 4096 or self.max_objects > 1000:
            raise ValueError(
                "synthetic spec: at most 100 tiers, image_size 4096 and max_objects 1000 "
                "(the config schema's bounds)"
            )


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


def _known(name: str) -> bool:
    colour, _, shape = name.partition("_")
    try:
        colour_rgb(colour)
    except ValueError:
        return False
    return shape in SHAPES


def _attributes(name: str) -> tuple[str, str]:
    colour, shape = name.split("_")
    return colour, shape


def covers_attributes(names: Sequence[str], within: Sequence[str]) -> bool:
    """Whether ``names`` show every shape and every colour that ``within`` shows."""
    shown = {part for name in names for part in _attributes(name)}
    return shown >= {part for name in within for part in _attributes(name)}


def long_tail_classes(
    rng: np.random.Generator, counts: list[int], rare_below: int, hues: int | None = None
) -> list[tuple[str, int]]:
    """(name, training count) per class: random combinations with random counts, drawn again
    until the classes that are not rare show every shape and colour of the set."""
    names = class_names(hues)
    if len(counts) > len(names):
        raise ValueError(f"at most {len(names)} synthetic classes, train_counts asks {len(counts)}")
    for _ in range(1000):
        chosen = [names[i] for i in rng.permutation(len(names))[: len(counts)]]
        assigned = [counts[i] for i in rng.permutation(len(counts))]
        common = [n for n, c in zip(chosen, assigned) if c >= rare_below]
        if covers_attributes(common, chosen):
            return sorted(zip(chosen, assigned), key=lambda pair: names.index(pair[0]))
    raise ValueError(
        f"train_counts leave too few classes with >= {rare_below} instances to show every "
        "shape and colour; add classes outside the rarest tier"
    )


def tier_counts(train_counts: Sequence[Sequence[int]]) -> list[int]:
    """Instance count per class, tier by tier, log-spaced from ``high`` down to ``low``."""
    counts: list[int] = []
    for n, low, high in train_counts:
        if n < 1 or low < 1 or high < low:
            raise ValueError(f"train_counts tier {[n, low, high]}: need n >= 1, 1 <= low <= high")
        steps = np.geomspace(high, low, n) if n > 1 else np.array([high])
        counts += [round(float(v)) for v in steps]
    return counts


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


def _render(rng, labels, names, spec, styles=None) -> tuple[np.ndarray, list, list[str]]:
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


def _split(rng, counts: list[int], objects: tuple[int, int]) -> list[list[int]]:
    """Shuffle the instances of every class and cut them into images of ``objects`` = (fewest,
    most) objects each (the last image may hold fewer)."""
    instances = np.repeat(np.arange(1, len(counts) + 1), counts)
    rng.shuffle(instances)
    images, start = [], 0
    while start < len(instances):
        k = int(rng.integers(objects[0], objects[1] + 1))
        images.append([int(c) for c in instances[start : start + k]])
        start += k
    return images


def generate(spec: SyntheticSpec, root: Path, classes: Sequence[str] | None = None) -> None:
    """Write ``root/train.json``, ``root/val.json``, ``root/images/{train,val}/*.png`` and the
    spec they were drawn from, ``root/spec.json``.

    ``classes``: the class names of a pretraining set (one tier, ``train_counts: [[n, k, k]]``
    with n = len(classes)); by default the long tail draws its own."""
    counts = tier_counts(spec.train_counts)
    rng = np.random.default_rng(spec.seed)
    if classes is None:
        drawn = long_tail_classes(rng, counts, spec.rare_below, spec.hues)
        names, class_counts = map(list, zip(*drawn))
    else:
        unknown = {name for name in classes if not _known(name)}
        if unknown or len(classes) != len(counts):
            raise ValueError(
                f"pretraining classes: need {len(counts)} known names, got {len(classes)}"
                + (f" with unknown {sorted(unknown)}" if unknown else "")
            )
        names, class_counts = list(classes), counts
    every = list(range(spec.styles))
    train_styles = {label: every for label in range(1, len(names) + 1)}
    for label, count in enumerate(class_counts, start=1):
        if count < spec.rare_below and spec.styles > 1:  # one style: no draw, as before styles
            shown = rng.choice(spec.styles, spec.rare_styles, replace=False)
            train_styles[label] = sorted(int(i) for i in shown)
    objects = (spec.min_objects, spec.max_objects)
    splits = {
        "train": _split(rng, class_counts, objects),
        "val": _split(rng, [spec.val_per_class] * len(counts), objects),
    }
    documents, first_id = {}, 1
    for split, image_labels in splits.items():
        styles = train_styles if split == "train" else dict.fromkeys(train_styles, every)
        documents[split] = _draw_split(
            rng, split, image_labels, names, spec, root, first_id, styles
        )
        first_id += len(image_labels)
    categories = _categories(names, documents["train"]["annotations"])
    for split, document in documents.items():
        document["categories"] = categories
        document["info"] = {"description": f"synthetic long-tailed detection, {split}"}
        document["licenses"] = []
        with atomic_path(root / f"{split}.json") as tmp:
            tmp.write_text(json.dumps(document))
    with atomic_path(root / "spec.json") as tmp:
        tmp.write_text(json.dumps(dataclasses.asdict(spec)))


def _draw_split(rng, split, image_labels, names, spec, root: Path, first_id, styles) -> dict:
    """One split's images (drawn and saved) and annotation records, ids from ``first_id``;
    ``styles[label]``: the style indices that class's objects are drawn in."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, labels in enumerate(image_labels, start=first_id):
        pixels, boxes, drawn = _render(rng, labels, names, spec, styles)
        file_name = f"{split}/{image_id:06d}.png"
        Image.fromarray(pixels).save(root / "images" / file_name)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": spec.image_size,
                "height": spec.image_size,
                "neg_category_ids": sorted(set(range(1, len(names) + 1)) - set(labels)),
                "not_exhaustive_category_ids": [],
            }
        )
        for label, (x, y, w, h), style in zip(labels, boxes, drawn):
            annotations.append(
                {
                    **({"style": style} if spec.styles > 1 else {}),
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
    return {"images": images, "annotations": annotations}


def _categories(names: Sequence[str], train: list[dict]) -> list[dict]:
    """LVIS category records, with counts and frequency from the training annotations."""
    categories = []
    for c, name in enumerate(names, start=1):
        instance_count = sum(1 for a in train if a["category_id"] == c)
        image_count = len({a["image_id"] for a in train if a["category_id"] == c})
        categories.append(
            {
                "id": c,
                "name": name,
                "synset": f"synthetic.{name}",
                "frequency": frequency(image_count),
                "image_count": image_count,
                "instance_count": instance_count,
            }
        )
    return categories


def pretraining_classes(categories: Sequence[dict], min_instances: int = RARE_BELOW) -> list[str]:
    """The classes a pretraining set takes from a long-tailed set's categories: those with at
    least ``min_instances`` training instances, which must show every shape and colour."""
    names = [c["name"] for c in categories]
    chosen = [c["name"] for c in categories if c["instance_count"] >= min_instances]
    if not chosen or not covers_attributes(chosen, names):
        raise ValueError(
            f"the classes with >= {min_instances} training instances do not show every shape "
            "and colour of the long-tailed set"
        )
    return chosen


def synthesize(
    spec: dict, out: Path, classes_from: Path | None = None, min_instances: int = RARE_BELOW
) -> None:
    """The ``generate`` step of the pipeline: a long-tailed set from ``spec``, or, given the
    long-tailed set's ``classes_from`` train file, its pretraining set."""
    classes = None
    if classes_from is not None:
        categories = json.loads(Path(classes_from).read_text())["categories"]
        classes = pretraining_classes(categories, min_instances)
        spec = {**spec, "train_counts": [[len(classes), spec["per_class"], spec["per_class"]]]}
        spec.pop("per_class")
    try:
        parsed = SyntheticSpec(**spec)
    except TypeError as error:
        raise ValueError(f"synthetic dataset spec: {error}") from error
    generate(parsed, Path(out), classes)


def tuning_split(data: Path | str, out: Path | str, per_class: int, seed: int) -> None:
    """``out/val.json`` (and images): ``per_class`` new instances of every class of the set in
    ``data``, drawn by its own spec (``spec.json``; the defaults for a set drawn before specs
    were recorded) with ``seed``, and listing that set's categories, so that APr, APc and APf
    are its own. Where a schedule is chosen, never on val."""
    data, out = Path(data), Path(out)
    categories = sorted(
        json.loads((data / "train.json").read_text())["categories"], key=lambda c: c["id"]
    )
    names = [c["name"] for c in categories]
    drawn = data / "spec.json"
    spec = json.loads(drawn.read_text()) if drawn.exists() else {}
    spec.update(train_counts=[[len(names), 1, 1]], val_per_class=per_class, seed=seed)
    generate(SyntheticSpec(**spec), out, names)
    split = json.loads((out / "val.json").read_text())
    with atomic_path(out / "val.json") as tmp:
        tmp.write_text(json.dumps({**split, "categories": categories}))
