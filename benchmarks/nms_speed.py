"""Per-class NMS of one image's detections: torchvision's ``batched_nms`` over every box, then
the top 300, against ``bags.roi_heads.top_batched_nms`` (the same detections from the
highest-scored boxes alone).

    python benchmarks/nms_speed.py [--device auto] [--proposals 1000] [--classes 1203 40]
                                   [--images 5] [--top 300] [--seed 0]

Each image has --proposals proposals around a dozen objects, and a box and a score for every
class of every proposal, as the box head gives them at a score threshold of 0.0: a softmax over
random logits, so every score is above the threshold. Prints the seconds per image of both, their
ratio and whether they kept the same boxes.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torchvision.ops import batched_nms

from bags.engine.device import pick_device
from bags.roi_heads import top_batched_nms


def image_detections(proposals: int, classes: int, generator: torch.Generator):
    """Boxes (proposals * classes, 4), scores and labels of one image, as the box head's."""
    objects = torch.rand(12, 2, generator=generator) * 600 + 100
    centres = objects[torch.randint(12, (proposals,), generator=generator)][:, None]
    centres = centres + torch.randn(proposals, 1, 2, generator=generator) * 20
    shifts = torch.randn(proposals, classes, 2, generator=generator) * 4
    sizes = 30 + torch.rand(proposals, 1, 2, generator=generator) * 150
    low, high = centres + shifts - sizes / 2, centres + shifts + sizes / 2
    boxes = torch.cat([low, high], dim=2).clamp(0, 800).reshape(-1, 4)
    logits = torch.randn(proposals, classes + 1, generator=generator) * 3
    scores = logits.softmax(dim=1)[:, 1:].reshape(-1)
    labels = torch.arange(1, classes + 1).repeat(proposals)
    return boxes, scores, labels


def seconds_per_image(nms, images: list, device: torch.device) -> tuple[float, list]:
    """Seconds per image of ``nms`` over ``images`` (after one warm-up), and what it kept."""
    nms(*images[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    kept = [nms(*image) for image in images]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / len(images), kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--classes", type=int, nargs="+", default=[1203, 40])
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--top", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.proposals} proposals, top {args.top}")  # fmt: skip
    print(f"{'classes':>8}{'batched_nms s':>15}{'top_batched_nms s':>19}{'ratio':>8}  same")
    for classes in args.classes:
        generator = torch.Generator().manual_seed(args.seed)
        images = [
            [t.to(device) for t in image_detections(args.proposals, classes, generator)]
            for _ in range(args.images)
        ]

        def everything(boxes, scores, labels):
            return batched_nms(boxes, scores, labels, 0.5)[: args.top]

        def top(boxes, scores, labels):
            return top_batched_nms(boxes, scores, labels, 0.5, args.top)

        old, old_kept = seconds_per_image(everything, images, device)
        new, new_kept = seconds_per_image(top, images, device)
        same = all(torch.equal(a, b) for a, b in zip(old_kept, new_kept))
        print(f"{classes:>8}{old:>15.4f}{new:>19.4f}{old / new:>8.1f}  {same}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
