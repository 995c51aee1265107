"""A torch ``Dataset`` over an LVIS/COCO-format annotation file and an image folder."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from bags.data.annotations import contiguous_ids, image_path, load_annotations


class DetectionDataset(Dataset):
    """Images as float tensors in [0, 1]; targets with xyxy ``boxes`` and contiguous ``labels``.

    Every listed image must exist: a missing one is reported at construction, by path and id.
    """

    def __init__(self, annotation_file: Path | str, image_root: Path | str, hflip: bool = False):
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        self.hflip = hflip
        data = load_annotations(self.annotation_file)
        self.categories = sorted(data["categories"], key=lambda c: c["id"])
        self.label_of = contiguous_ids(data)
        self.category_of = {k: cid for cid, k in self.label_of.items()}
        self.images = data["images"]
        self.boxes: dict[int, list] = defaultdict(list)
        for annotation in data["annotations"]:
            self.boxes[annotation["image_id"]].append(annotation)
        for image in self.images:
            path = self.image_root / image_path(image)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: missing image (image id {image['id']} in {self.annotation_file})"
                )

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self.images[index]
        path = self.image_root / image_path(image)
        try:
            with Image.open(path) as file:
                pixels = pil_to_tensor(file.convert("RGB")).float().div_(255)
        except OSError as error:
            raise OSError(f"{path}: cannot read image ({error})") from error
        annotations = self.boxes.get(image["id"], [])
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([self.label_of[a["category_id"]] for a in annotations])
        if self.hflip and torch.rand(1).item() < 0.5:
            pixels = pixels.flip(-1)
            boxes[:, [0, 2]] = pixels.shape[-1] - boxes[:, [2, 0]]
        target = {"boxes": boxes, "labels": labels.long(), "image_id": torch.tensor(image["id"])}
        return pixels, target


def collate(batch):
    return tuple(zip(*batch))
