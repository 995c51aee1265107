"""A torch ``Dataset`` over an LVIS/COCO-format annotation file and an image folder."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from bags.data.annotations import contiguous_ids, image_path, load_annotations
from bags.data.image_files import ImageFileError, image_problem

log = logging.getLogger(__name__)
DECODED_BYTES = 512 << 20  # a set whose decoded images fit in this keeps them in memory


TRAIN_FILTERS = ("checked", "reference")
REFERENCE_MIN_SIDE = 32  # mmdetection v1 trains on no image with a side shorter than this


class DetectionDataset(Dataset):
    """Images as float tensors in [0, 1]; targets with xyxy ``boxes`` and contiguous ``labels``.

    Every listed image must exist and pass ``image_problem`` (readable header, the size the
    annotations give, not cut short): a bad one is reported at construction, by path and id,
    or, with ``on_bad="skip"``, dropped and counted (so are bad annotations, see
    ``load_annotations``). ``image_paths``: ``file_name`` or ``coco_url`` (see ``image_path``).

    ``train_filter``: ``checked`` keeps every image and refuses (or skips) a box outside its
    image; ``reference`` reads a training set as the reference's mmdetection v1 does: boxes
    that reach outside the image kept and clipped to it, boxes narrower or shorter than 1 pixel
    (or of area 0) dropped, and images left without boxes or with a side under 32 pixels
    dropped.
    """

    def __init__(
        self,
        annotation_file: Path | str,
        image_root: Path | str,
        hflip: bool = False,
        on_bad: str = "stop",
        image_paths: str = "file_name",
        train_filter: str = "checked",
    ):
        if train_filter not in TRAIN_FILTERS:
            raise ValueError(f"train_filter must be one of {TRAIN_FILTERS}, got {train_filter!r}")
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        self.hflip = hflip
        self.flip_seed = (0, 0)
        reference = train_filter == "reference"
        data = load_annotations(
            self.annotation_file, on_bad, keep_segmentation=False, keep_outside=reference
        )
        if reference:
            data = reference_training_set(data, self.annotation_file)
        self.categories = sorted(data["categories"], key=lambda c: c["id"])
        self.label_of = contiguous_ids(data)
        self.category_of = {k: cid for cid, k in self.label_of.items()}
        per_image: dict[int, list] = defaultdict(list)
        for annotation in data["annotations"]:
            per_image[annotation["image_id"]].append(annotation)
        # Only what loading needs, as compact arrays (loading processes get copies of it).
        self.image_ids: list[int] = []
        self.paths: list[str] = []
        self.landscape: list[bool] = []  # wider than tall, as mmdetection's group flag
        self.targets: list[tuple[torch.Tensor, torch.Tensor]] = []
        skipped: Counter[str] = Counter()
        for image in data["images"]:
            relative = image_path(image, image_paths)
            problem = image_problem(self.image_root, relative, image["width"], image["height"])
            if problem is not None:
                reason, detail = problem
                if on_bad == "stop":
                    error = FileNotFoundError if reason == "missing" else ImageFileError
                    raise error(
                        f"{self.image_root / relative}: {detail} (image id {image['id']} in "
                        f"{self.annotation_file})"
                    )
                skipped[reason] += 1
                continue
            self.image_ids.append(image["id"])
            self.paths.append(relative)
            self.landscape.append(image["width"] > image["height"])
            self.targets.append(self._target(per_image.get(image["id"], [])))
        for reason, count in skipped.most_common():
            log.warning("%s: skipped %d %s image(s)", self.annotation_file, count, reason)
        # A small set keeps its decoded images: later epochs skip decoding them again.
        pixels = sum(int(i.get("width", 0)) * int(i.get("height", 0)) for i in data["images"])
        self.decoded: dict[int, torch.Tensor] | None = (
            {} if 0 < 3 * pixels <= DECODED_BYTES else None
        )

    def _target(self, annotations: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """xyxy boxes and contiguous labels of one image."""
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([self.label_of[a["category_id"]] for a in annotations])
        return boxes, labels.long()

    def _pixels(self, index: int) -> torch.Tensor:
        """(3, H, W) uint8 pixels of image ``index``."""
        if self.decoded is not None and index in self.decoded:
            return self.decoded[index]
        path = self.image_root / self.paths[index]
        try:
            with Image.open(path) as file:
                pixels = pil_to_tensor(file.convert("RGB"))
        except Exception as error:  # PIL raises many kinds for damaged data (OSError, SyntaxError)
            raise ImageFileError(
                f"{path}: cannot read image {self.image_ids[index]} ({error})"
            ) from error
        if self.decoded is not None:
            self.decoded[index] = pixels
        return pixels

    def digest(self) -> str:
        """What the set trains on: each kept image's id, path and file size, and its boxes and
        labels as read (after filtering). Another annotation file, filter or image set gives
        another digest."""
        digest = hashlib.sha256()
        for image_id, path, (boxes, labels) in zip(self.image_ids, self.paths, self.targets):
            size = (self.image_root / path).stat().st_size
            digest.update(f"{image_id}\0{path}\0{size}\0".encode())
            digest.update(boxes.numpy().tobytes())
            digest.update(labels.numpy().tobytes())
        digest.update(json.dumps(self.label_of, sort_keys=True).encode())
        return digest.hexdigest()

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Horizontal flips are a function of (seed, epoch, image), in any loading process."""
        self.flip_seed = (seed, epoch)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def category_ids(self) -> list[int]:
        """The category id of each class 1..C, ascending."""
        return [category["id"] for category in self.categories]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pixels = self._pixels(index).float().div_(255)
        boxes, labels = self.targets[index]
        boxes = boxes.clone()
        if self.hflip and random.Random(hash((*self.flip_seed, index))).random() < 0.5:
            pixels = pixels.flip(-1)
            boxes[:, [0, 2]] = pixels.shape[-1] - boxes[:, [2, 0]]
        target = {"boxes": boxes, "labels": labels, "image_id": torch.tensor(self.image_ids[index])}
        return pixels, target


def reference_training_set(data: dict, source: Path) -> dict:
    """``data`` as the reference trains on it (see ``DetectionDataset``): boxes clipped to their
    image, tiny boxes dropped, then images without boxes or too small dropped."""
    sizes = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
    kept, tiny, outside = [], 0, 0
    for annotation in data["annotations"]:
        x, y, w, h = annotation["bbox"]
        area = annotation.get("area", w * h)
        if w < 1 or h < 1 or not (isinstance(area, int | float) and area > 0):
            tiny += 1
            continue
        width, height = sizes[annotation["image_id"]]
        x1, y1 = min(max(x, 0), width), min(max(y, 0), height)
        x2, y2 = min(max(x + w, 0), width), min(max(y + h, 0), height)
        if x2 <= x1 or y2 <= y1:  # wholly outside its image: nothing left to train on
            outside += 1
            continue
        kept.append({**annotation, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    with_boxes = {a["image_id"] for a in kept}
    images = [
        image
        for image in data["images"]
        if image["id"] in with_boxes and min(image["width"], image["height"]) >= REFERENCE_MIN_SIDE
    ]
    log.info(
        "%s: as the reference trains: %d box(es) under 1 pixel and %d wholly outside their "
        "image dropped, %d image(s) without boxes or under %d pixels dropped",
        source,
        tiny,
        outside,
        len(data["images"]) - len(images),
        REFERENCE_MIN_SIDE,
    )
    return {**data, "images": images, "annotations": kept}


def collate(batch):
    return tuple(zip(*batch))
