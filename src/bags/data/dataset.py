"""A torch ``Dataset`` over an LVIS/COCO-format annotation file and an image folder."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from bags.data.annotations import contiguous_ids, image_path, load_annotations

log = logging.getLogger(__name__)


class DetectionDataset(Dataset):
    """Images as float tensors in [0, 1]; targets with xyxy ``boxes`` and contiguous ``labels``.

    Every listed image must exist: a missing one is reported at construction, by path and id,
    or, with ``on_bad="skip"``, dropped and counted (so are bad annotations, see
    ``load_annotations``). ``image_paths``: ``file_name`` or ``coco_url`` (see ``image_path``).
    """

    def __init__(
        self,
        annotation_file: Path | str,
        image_root: Path | str,
        hflip: bool = False,
        on_bad: str = "stop",
        image_paths: str = "file_name",
    ):
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        self.hflip = hflip
        self.flip_seed = (0, 0)
        self.image_paths = image_paths
        data = load_annotations(self.annotation_file, on_bad, keep_segmentation=False)
        self.categories = sorted(data["categories"], key=lambda c: c["id"])
        self.label_of = contiguous_ids(data)
        self.category_of = {k: cid for cid, k in self.label_of.items()}
        self.boxes: dict[int, list] = defaultdict(list)
        for annotation in data["annotations"]:
            self.boxes[annotation["image_id"]].append(annotation)
        self.images = []
        for image in data["images"]:
            path = self.image_root / image_path(image, image_paths)
            if path.is_file():
                self.images.append(image)
            elif on_bad == "stop":
                raise FileNotFoundError(
                    f"{path}: missing image (image id {image['id']} in {self.annotation_file})"
                )
        missing = len(data["images"]) - len(self.images)
        if missing:
            log.warning("%s: skipped %d missing image(s)", self.annotation_file, missing)

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Horizontal flips are a function of (seed, epoch, image), in any loading process."""
        self.flip_seed = (seed, epoch)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self.images[index]
        path = self.image_root / image_path(image, self.image_paths)
        try:
            with Image.open(path) as file:
                pixels = pil_to_tensor(file.convert("RGB")).float().div_(255)
        except OSError as error:
            raise OSError(f"{path}: cannot read image ({error})") from error
        annotations = self.boxes.get(image["id"], [])
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([self.label_of[a["category_id"]] for a in annotations])
        if self.hflip and random.Random(hash((*self.flip_seed, index))).random() < 0.5:
            pixels = pixels.flip(-1)
            boxes[:, [0, 2]] = pixels.shape[-1] - boxes[:, [2, 0]]
        target = {"boxes": boxes, "labels": labels.long(), "image_id": torch.tensor(image["id"])}
        return pixels, target


def collate(batch):
    return tuple(zip(*batch))
