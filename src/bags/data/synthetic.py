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

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bags.data.annotations import frequency
from bags.data.drawing import STYLES, attributes, class_names, known_class, render
from bags.io import atomic_path
from bags.values import MAX_SEED, is_int, is_number

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


def covers_attributes(names: Sequence[str], within: Sequence[str]) -> bool:
    """Whether ``names`` show every shape and every colour that ``within`` shows."""
    shown = {part for name in names for part in attributes(name)}
    return shown >= {part for name in within for part in attributes(name)}


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
        unknown = {name for name in classes if not known_class(name)}
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
        pixels, boxes, drawn = render(rng, labels, names, spec, styles)
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
