"""Training throughput of the small detector: this code against an earlier commit, side by side.

    python benchmarks/train_speed.py [--against b246e30] [--steps 60] [--threads 1] [--rounds 2]
                                     [--amp auto]

Both versions train the default detector (the small Faster R-CNN at 64x64, the same weights and
seed) on the same synthetic long-tailed data, epoch after epoch over its first --images images,
in fresh processes, one after the other, the rounds alternating. Each prints images per second
and the time per step spent loading data, in the forward pass, the backward pass and the
optimizer step; the losses of both are compared step by step. This code trains at the
precision --amp gives (the default config's ``auto``: bf16 on a CPU with AMX, else fp32), the
earlier commit in fp32 as it did. The earlier commit is checked
out in a temporary ``git worktree``. Run it on a quiet machine: another process on the cores
makes the figures worthless.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG_TAIL = [[16, 2, 9], [14, 10, 99], [8, 100, 400], [2, 1000, 1300]]  # the default tiers


def child(args: argparse.Namespace) -> None:
    """One version's timed training steps; prints a JSON line (run with that version's src)."""
    import torch
    from torch.utils.data import DataLoader

    from bags.builders import build_detector
    from bags.data.dataset import DetectionDataset, collate
    from bags.detector import to_softmax
    from bags.engine.device import AMP_DTYPES

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    dataset = DetectionDataset(data / "train.json", data / "images")
    torch.manual_seed(0)
    model = to_softmax(build_detector({"name": "small", "image_size": 64}, dataset.num_classes))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    # Epochs over the first --images images, as training visits every image once an epoch.
    generator = torch.Generator().manual_seed(0)
    batches: list[list[int]] = []
    while len(batches) < args.steps + args.warmup:
        order = torch.randperm(args.images, generator=generator).tolist()
        batches += [order[i : i + 16] for i in range(0, args.images, 16)]
    loader = iter(DataLoader(dataset, batch_sampler=batches, collate_fn=collate))
    dtype = AMP_DTYPES[args.amp]  # the package's map (b246e30 has it too)
    torch.manual_seed(1)
    times = {"load": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    losses = []
    for step in range(args.steps + args.warmup):
        if step == args.warmup:
            times = dict.fromkeys(times, 0.0)
        t0 = time.perf_counter()
        images, targets = next(loader)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = sum(model(list(images), [dict(t) for t in targets]).values())
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key] += seconds
        losses.append(loss.item())
    total = sum(times.values())
    result = {
        "images_per_s": 16 * args.steps / total,
        "ms_per_step": {k: 1000 * v / args.steps for k, v in times.items()},
        "losses": losses,
    }
    print(json.dumps(result))


def run_child(src: Path, data: Path, amp: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", "--data", str(data), "--amp", amp]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    command += ["--threads", str(args.threads), "--images", str(args.images)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="b246e30", help="the earlier commit")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of 16 images")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=320, help="images per epoch (x16)")
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "none", "bf16"],
        help="this code's precision (the earlier commit's is fp32)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        earlier = scratch / "earlier"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(earlier), args.against],
                       check=True, capture_output=True)  # fmt: skip
        try:
            sys.path.insert(0, str(ROOT / "src"))
            from bags.data.synthetic import SyntheticSpec, generate

            generate(
                SyntheticSpec(train_counts=LONG_TAIL, val_per_class=0, seed=1), scratch / "data"
            )
            import torch

            from bags.engine.device import resolve_amp

            amp = resolve_amp(args.amp, torch.device("cpu"))
            versions = {"this code": (ROOT / "src", amp), args.against: (earlier / "src", "none")}
            print(f"this code trains at precision {amp!r}, {args.against} at 'none' (fp32)")
            results: dict[str, list[dict]] = {name: [] for name in versions}
            for _ in range(args.rounds):
                for name, (src, precision) in versions.items():
                    results[name].append(run_child(src, scratch / "data", precision, args))
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(earlier)], check=True)
    report(results, args)


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    print(f"{args.steps} steps of 16 images, {args.threads} thread(s), {args.rounds} round(s)")
    print(
        f"{'version':>12} {'images/s':>9} {'load':>7} {'forward':>8} {'backward':>9} {'optim':>7}"
    )
    best = {}
    for name, runs in results.items():
        fastest = max(runs, key=lambda r: r["images_per_s"])
        best[name] = fastest["images_per_s"]
        ms = fastest["ms_per_step"]
        print(
            f"{name:>12} {fastest['images_per_s']:9.1f} {ms['load']:7.1f} {ms['forward']:8.1f} "
            f"{ms['backward']:9.1f} {ms['optimizer']:7.1f}   (ms per step; best of rounds)"
        )
    (ours, theirs) = best.values()
    print(f"speed-up: {ours / theirs:.2f}x")
    first, second = (results[name][0]["losses"] for name in results)
    gaps = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(first, second)]
    # The first step shows the rounding; later steps add up how far the trajectories drifted.
    print(
        f"relative loss difference: first step {gaps[0]:.2e}, "
        f"largest over {len(gaps)} steps {max(gaps):.2e}"
    )


if __name__ == "__main__":
    main()
