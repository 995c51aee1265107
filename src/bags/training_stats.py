"""What the methods' rules know of the training set: per-class instance and image counts, and
each image's labels."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bags.data.dataset import DetectionDataset


@dataclass(frozen=True)
class TrainingStats:
    """What the rules need to know about the training set (classes are 1..C, in id order)."""

    instance_counts: list[int]  # per class, as the groups are made from (the counts file)
    image_counts: list[int]  # per class: training images that contain it
    image_classes: list[list[int]]  # per training image: its box labels
    category_ids: list[int] | None = None  # the dataset's id of each class, when known

    @property
    def num_classes(self) -> int:
        return len(self.instance_counts)

    @classmethod
    def from_images(
        cls,
        instance_counts: list[int],
        image_classes: list[list[int]],
        category_ids: list[int] | None = None,
    ) -> TrainingStats:
        """Image counts follow from each image's labels."""
        image_counts = [0] * len(instance_counts)
        for classes in image_classes:
            for c in set(classes):
                image_counts[c - 1] += 1
        return cls(instance_counts, image_counts, image_classes, category_ids)

    @classmethod
    def from_dataset(cls, dataset: DetectionDataset, counts: pd.DataFrame) -> TrainingStats:
        """The dataset's images with the instance counts of its counts file (what the groups
        are made from)."""
        ids = dataset.category_ids
        if counts["category_id"].tolist() != ids:
            raise ValueError(
                f"the counts were made for other categories than {dataset.annotation_file}"
            )
        image_classes = [labels.tolist() for _, labels in dataset.targets]
        return cls.from_images(counts["instance_count"].tolist(), image_classes, ids)
