"""Training and inference speed and peak memory of the paper recipe's detector (R50-FPN + BAGS).

    python benchmarks/r50_fpn_speed.py [--device auto] [--amp none bf16] [--size 1333 800]
                                       [--classes 1203] [--train-batch 2] [--infer-batch 1]
                                       [--losses torchvision reference]
                                       [--steps 20] [--warmup 5] [--out FILE.json]

The script makes an LVIS-format set (JPEG images of --size, LVIS v1's 1,203 categories with a
long-tailed instance count, images found through ``coco_url`` as LVIS v1's are) and loads it with
the project's dataset. The detector is the LVIS configs' torchvision Faster R-CNN R50-FPN with
the BAGS last layer (groups from the made counts), randomly initialised: speed and memory do not
depend on the weights. Training runs the project's own step (SGD, gradient clipping at 35) at
the reference's two images per GPU; inference runs the model in eval mode. Each precision gets
a fresh model with the same seed. Images are decoded once beforehand, so the figures are the
model's (on a cluster the loader's processes decode in parallel with it). Figures: images per
second over --steps batches after --warmup, the peak of memory allocated on the GPU, and the
share of inference spent after the box head (scores, per-class boxes, NMS over every class): at
the reference's score threshold, 0.0, all of an image's 1,000 x 1,203 boxes go to NMS.
``--losses`` times the training step with torchvision's loss settings, the LVIS configs' (the
reference's: losses over each 2 images, RPN anchors inside the image, box smooth L1 at beta 1),
or both side by side; the last column is each row's training speed over the first row's of its
precision.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bags.builders import build_detector
from bags.classifiers import GroupSoftmaxClassifier
from bags.data.dataset import DetectionDataset
from bags.detector import set_classifier
from bags.engine.device import AMP_DTYPES, pick_device
from bags.engine.settings import TrainConfig
from bags.engine.train import _step, apply_loss_settings
from bags.groups import assign_groups


def make_lvis_set(folder: Path, images: int, size: tuple[int, int], classes: int) -> list[int]:
    """An LVIS v1-format train file and its JPEGs; returns the instance count per class."""
    rng = np.random.default_rng(0)
    width, height = size
    # Instance counts from 1 to 50,000 on a power law, as LVIS v1's span its four bins.
    counts = np.maximum(1, (50_000 * np.arange(1, classes + 1) ** -1.6).astype(int)).tolist()
    weights = np.array(counts, dtype=float) / sum(counts)
    records, annotations = [], []
    (folder / "train2017").mkdir(parents=True)
    for index in range(1, images + 1):
        name = f"{index:012d}.jpg"
        pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((width, height)).save(folder / "train2017" / name)
        records.append(
            {"id": index, "width": width, "height": height,
             "coco_url": f"http://images.cocodataset.org/train2017/{name}"}
        )  # fmt: skip
        for _ in range(rng.integers(5, 20)):
            w, h = rng.uniform(32, width / 3), rng.uniform(32, height / 3)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": index, "area": w * h,
                 "category_id": int(rng.choice(classes, p=weights)) + 1,
                 "bbox": [x, y, w, h]}
            )  # fmt: skip
    frequency = ["f" if n >= 100 else "c" if n >= 10 else "r" for n in counts]
    categories = [
        {"id": c + 1, "name": f"class_{c + 1}", "frequency": frequency[c],
         "instance_count": counts[c]}
        for c in range(classes)
    ]  # fmt: skip
    document = {"images": records, "annotations": annotations, "categories": categories}
    (folder / "train.json").write_text(json.dumps(document))
    return counts


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def fresh_model(counts: list[int], device: torch.device, min_size: int, max_size: int):
    torch.manual_seed(0)
    model = build_detector(
        {"name": "r50_fpn", "min_size": min_size, "max_size": max_size}, len(counts)
    )
    model = set_classifier(model, GroupSoftmaxClassifier(assign_groups(counts), 8.0), True)
    return model.to(device)


def batches(dataset: DetectionDataset, size: int, count: int) -> list:
    """``count`` batches of decoded images, cycling over the set."""
    samples = [dataset[i % len(dataset)] for i in range(size * count)]
    return [list(zip(*samples[i : i + size])) for i in range(0, len(samples), size)]


# The training settings of each --losses choice: torchvision's, and the LVIS configs'.
LOSSES = {
    "torchvision": {},
    "reference": {"loss_images": 2, "rpn_allowed_border": 0, "box_loss_beta": 1.0},
}


def time_training(model, data, args, amp: str, losses: str, device: torch.device) -> dict:
    lr = 0.02 * args.train_batch / 16
    config = TrainConfig.from_dict(dict(epochs=1, batch_size=args.train_batch, lr=lr,
                                        grad_clip=35.0, amp=amp, **LOSSES[losses]))  # fmt: skip
    apply_loss_settings(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    for images, targets in data[: args.warmup]:
        _step(model, images, targets, optimizer, scheduler, scaler, config, amp, device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for images, targets in data[args.warmup :]:
        _step(model, images, targets, optimizer, scheduler, scaler, config, amp, device)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": args.train_batch * args.steps / seconds,
            "peak_gb": peak_memory_gb(device)}  # fmt: skip


@torch.no_grad()
def time_inference(model, data, args, amp: str, device: torch.device) -> dict:
    model.eval()
    dtype = AMP_DTYPES[amp]
    heads = model.roi_heads
    postprocess_seconds = [0.0]

    def timed_postprocess(*args, **kwargs):
        # The scores, per-class boxes and NMS over every class: the part that grows with C.
        synchronize(device)
        start = time.perf_counter()
        result = type(heads).postprocess_detections(heads, *args, **kwargs)
        synchronize(device)
        postprocess_seconds[0] += time.perf_counter() - start
        return result

    heads.postprocess_detections = timed_postprocess

    def run(images):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = model([image.to(device, non_blocking=True) for image in images])
        return [{k: v.float().cpu() for k, v in output.items()} for output in outputs]

    for images, _ in data[: args.warmup]:
        run(images)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    postprocess_seconds[0] = 0.0
    start = time.perf_counter()
    detections = 0
    for images, _ in data[args.warmup :]:
        detections += sum(len(out["scores"]) for out in run(images))
    seconds = time.perf_counter() - start
    del heads.postprocess_detections
    return {"images_per_s": args.infer_batch * args.steps / seconds,
            "peak_gb": peak_memory_gb(device),
            "postprocess_share": postprocess_seconds[0] / seconds,
            "detections_per_image": detections / (args.infer_batch * args.steps)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", nargs="+", default=["none", "bf16"], choices=["none", "bf16"])
    parser.add_argument("--size", type=int, nargs=2, default=[1333, 800], metavar=("W", "H"))
    parser.add_argument("--classes", type=int, default=1203)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--infer-batch", type=int, default=1)
    parser.add_argument("--losses", nargs="+", default=["torchvision"], choices=list(LOSSES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    width, height = args.size
    runs = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = max(args.train_batch, args.infer_batch) * runs
        counts = make_lvis_set(folder, min(images, 64), (width, height), args.classes)
        dataset = DetectionDataset(folder / "train.json", folder, image_paths="coco_url")
        train_data = batches(dataset, args.train_batch, runs)
        infer_data = batches(dataset, args.infer_batch, runs)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {width}x{height}, {args.classes} classes")
    results = {"device": name, "torch": torch.__version__, "size": [width, height],
               "classes": args.classes, "train_batch": args.train_batch,
               "infer_batch": args.infer_batch, "steps": args.steps, "rows": []}  # fmt: skip
    print(f"{'precision':<10}{'losses':<13}{'train img/s':>12}{'train peak GB':>15}"
          f"{'infer img/s':>13}{'infer peak GB':>15}{'postprocess':>13}"
          f"{'train ratio':>13}")  # fmt: skip
    for amp, losses in itertools.product(args.amp, args.losses):
        model = fresh_model(counts, device, min(width, height), max(width, height))
        train = time_training(model, train_data, args, amp, losses, device)
        model.zero_grad(set_to_none=True)  # the gradients stay out of inference's peak
        if device.type == "cuda":
            torch.cuda.empty_cache()
        infer = time_inference(model, infer_data, args, amp, device)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        first = next((r["train"] for r in results["rows"] if r["amp"] == amp), train)
        train["ratio"] = train["images_per_s"] / first["images_per_s"]
        results["rows"].append({"amp": amp, "losses": losses, "train": train, "inference": infer})

        def gb(value):
            return "-" if value is None else f"{value:.2f}"

        print(f"{amp:<10}{losses:<13}{train['images_per_s']:>12.2f}{gb(train['peak_gb']):>15}"
              f"{infer['images_per_s']:>13.2f}{gb(infer['peak_gb']):>15}"
              f"{infer['postprocess_share']:>13.0%}{train['ratio']:>13.3f}",
              flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
