"""Which RoIs share a loss call: the reference's per-GPU scope.

mmdetection computes every loss on each GPU over that GPU's own images (2 in the reference's LVIS
configs) and DDP averages the GPUs' losses. A loss that is not a plain mean over RoIs (BAGS's
"others" sampling and per-group means, EQL's and re-weighting's normalisers, the box loss's
division by the sampled count) then depends on that grouping. ``loss_images`` reproduces it on
any batch: the batch's images in consecutive chunks of that many, each chunk's losses computed
alone, the chunks averaged. ``None`` computes the whole batch in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def chunk_ranges(rows_per_image: Sequence[int], loss_images: int | None) -> list[slice]:
    """The row ranges of consecutive chunks of ``loss_images`` images (rows are the images'
    rows one image after another); one range over every row when ``loss_images`` is None."""
    total = sum(rows_per_image)
    if loss_images is None:
        return [slice(0, total)]
    if loss_images < 1 or len(rows_per_image) % loss_images:
        raise ValueError(
            f"a batch of {len(rows_per_image)} images does not split into chunks of "
            f"loss_images={loss_images}"
        )
    ends = [0]
    for count in rows_per_image:
        ends.append(ends[-1] + count)
    starts = range(0, len(rows_per_image), loss_images)
    return [slice(ends[i], ends[i + loss_images]) for i in starts]


def mean_over_chunks(
    compute: Callable[[slice], dict[str, torch.Tensor]], ranges: Sequence[slice]
) -> dict[str, torch.Tensor]:
    """Each loss of ``compute`` averaged over the chunks ``ranges`` (as DDP averages GPUs)."""
    parts = [compute(rows) for rows in ranges]
    return {name: torch.stack([part[name] for part in parts]).mean() for name in parts[0]}
