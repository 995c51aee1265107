"""Horizontal flip: boxes go with the pixels; the flips are a function of (seed, epoch, image).

The images are wider than tall and hold solid rectangles of one colour per class, each box
exactly around its rectangle, so the box of a flipped image can be read off its pixels.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from bags.builders import build_detector
from bags.data.dataset import DetectionDataset, collate
from bags.detector import to_softmax
from bags.engine.settings import TrainConfig
from bags.engine.train import train

WIDTH, HEIGHT, IMAGES = 48, 32, 24
COLOURS = {1: (255, 0, 0), 2: (0, 255, 0)}  # category id -> its rectangles' colour


def rectangles(k: int) -> list[tuple[int, list[int]]]:
    """(category, [x, y, w, h]) of image k: off-centre, so a flip moves them."""
    return [(1, [2 + k % 7, 3, 9 + k % 4, 7]), (2, [26 + k % 5, 14 + k % 3, 5, 12])]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flip")
    (root / "images").mkdir()
    images, annotations = [], []
    for k in range(IMAGES):
        pixels = Image.new("RGB", (WIDTH, HEIGHT))
        for category, (x, y, w, h) in rectangles(k):
            pixels.paste(COLOURS[category], (x, y, x + w, y + h))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": k + 1, "category_id": category,
                 "bbox": [x, y, w, h], "area": w * h}
            )  # fmt: skip
        pixels.save(root / "images" / f"{k}.png")
        images.append({"id": k + 1, "file_name": f"{k}.png", "width": WIDTH, "height": HEIGHT})
    categories = [{"id": c, "name": f"class{c}"} for c in COLOURS]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (root / "train.json").write_text(json.dumps(document))
    return root


def dataset(root: Path, hflip: bool = True) -> DetectionDataset:
    return DetectionDataset(root / "train.json", root / "images", hflip=hflip)


def box_of_colour(pixels: torch.Tensor, colour: tuple[int, int, int]) -> list[float]:
    """xyxy box around the pixels of one colour."""
    mask = (pixels == torch.tensor(colour).view(3, 1, 1) / 255).all(dim=0)
    rows, columns = torch.where(mask)
    return [columns.min() + 0.0, rows.min() + 0.0, columns.max() + 1.0, rows.max() + 1.0]


def flips(data: DetectionDataset, original: DetectionDataset, order) -> dict[int, bool]:
    """Which images come out flipped (read off the pixels), loading them in ``order``."""
    found = {}
    for index in order:
        pixels, _ = data[index]
        plain, _ = original[index]
        if torch.equal(pixels, plain):
            found[index] = False
        else:
            assert torch.equal(pixels, plain.flip(-1)), f"image {index}: neither as is nor flipped"
            found[index] = True
    return found


def test_boxes_are_flipped_with_the_pixels(root):
    data = dataset(root)
    flipped = 0
    for epoch in range(3):
        data.set_epoch(0, epoch)
        for index in range(len(data)):
            pixels, target = data[index]
            assert pixels.shape == (3, HEIGHT, WIDTH)
            for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
                category = data.category_of[label]
                assert box == box_of_colour(pixels, COLOURS[category]), (epoch, index, category)
            x = rectangles(int(target["image_id"]) - 1)[0][1][0]
            flipped += target["boxes"][0, 0].item() != x
    assert 0 < flipped < 3 * IMAGES  # some images were flipped, some not


def test_no_flips_without_hflip(root):
    data, original = dataset(root, hflip=False), dataset(root, hflip=False)
    for epoch in range(3):
        data.set_epoch(0, epoch)
        assert not any(flips(data, original, range(IMAGES)).values())


def test_flips_depend_on_seed_epoch_and_image_only(root):
    original = dataset(root, hflip=False)
    data = dataset(root)
    by_epoch = []
    for epoch in range(4):
        data.set_epoch(7, epoch)
        forward = flips(data, original, range(IMAGES))
        backward = flips(data, original, reversed(range(IMAGES)))
        # Loaded again, in another order, by another dataset object: the same flips.
        other = dataset(root)
        other.set_epoch(7, epoch)
        assert forward == backward == flips(other, original, [5, 0, 17, 3, *range(IMAGES)])
        assert 0 < sum(forward.values()) < IMAGES  # a coin per image, not one per epoch
        by_epoch.append([forward[i] for i in range(IMAGES)])
    assert len({tuple(f) for f in by_epoch}) == 4  # every epoch flips other images
    data.set_epoch(8, 0)
    assert [flips(data, original, range(IMAGES))[i] for i in range(IMAGES)] != by_epoch[0]


def test_flips_are_the_same_in_loading_processes(root):
    original = dataset(root, hflip=False)
    data = dataset(root)
    data.set_epoch(3, 2)
    expected = flips(data, original, range(IMAGES))
    loader = DataLoader(data, batch_size=5, num_workers=2, collate_fn=collate)
    for images, targets in loader:
        for pixels, target in zip(images, targets):
            index = int(target["image_id"]) - 1
            plain, _ = original[index]
            same = torch.equal(pixels, plain.flip(-1) if expected[index] else plain)
            assert same, f"image {index}: not flipped as in (seed 3, epoch 2)"


def test_flips_are_the_same_in_another_python_process(root):
    """A fresh interpreter with another string-hash seed (as every torchrun process has)."""
    data = dataset(root)
    data.set_epoch(3, 2)
    expected = [data[i][1]["boxes"].tolist() for i in range(IMAGES)]  # flipped with the pixels
    assert len({tuple(boxes[0]) for boxes in expected}) > 1
    script = (
        "import json, sys; from bags.data.dataset import DetectionDataset\n"
        "data = DetectionDataset(sys.argv[1] + '/train.json', sys.argv[1] + '/images', True)\n"
        "data.set_epoch(3, 2)\n"
        "print(json.dumps([data[i][1]['boxes'].tolist() for i in range(len(data))]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout) == expected


def test_training_flips_each_epochs_images_by_seed_epoch_and_image(root, tmp_path):
    """The images the training loop feeds the model follow the flips of (its seed, the epoch,
    the image). They are caught on their way into the model, however they were loaded."""
    config = TrainConfig.from_dict(
        dict(epochs=2, batch_size=4, lr=0.001, warmup_iters=1, hflip=True, seed=5)
    )
    data = dataset(root)
    torch.manual_seed(0)
    arch = {"name": "small", "image_size": 48, "channels": 4, "layers": 2, "representation": 8}
    model = to_softmax(build_detector(arch, data.num_classes))
    fed = []
    model.register_forward_pre_hook(lambda module, args: fed.extend(args[0]))
    meta = {"arch": arch, "num_classes": data.num_classes}
    train(model, data, config, meta, tmp_path / "m.pt", tmp_path / "ck", tmp_path / "log.csv")

    original = dataset(root, hflip=False)
    plain = [original[i][0] for i in range(IMAGES)]

    def which(pixels) -> tuple[int, bool]:
        """The image these pixels are, and whether they are flipped."""
        for index, image in enumerate(plain):
            for flipped in (False, True):
                if torch.equal(pixels, image.flip(-1) if flipped else image):
                    return index, flipped
        raise AssertionError("the model was fed an image that is none of the dataset's")

    assert len(fed) == 2 * IMAGES  # 24 images: whole batches, nothing padded
    for epoch in range(2):
        reference = dataset(root)
        reference.set_epoch(5, epoch)
        expected = flips(reference, original, range(IMAGES))
        seen = dict(which(pixels) for pixels in fed[epoch * IMAGES : (epoch + 1) * IMAGES])
        assert sorted(seen) == list(range(IMAGES))
        assert seen == expected, f"epoch {epoch}: not flipped as (seed 5, epoch {epoch}) says"
