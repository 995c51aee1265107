"""Single-level RoIAlign as matrix products: the same numbers as torchvision's ``roi_align``
(aligned=False), with a CPU backward several times faster than torchvision's."""

from __future__ import annotations

import math

import torch
from torchvision.ops import MultiScaleRoIAlign


def _axis_weights(
    starts: torch.Tensor, ends: torch.Tensor, size: int, bins: int, sampling_ratio: int
) -> torch.Tensor:
    """(R, bins, size): each output bin's average bilinear weight on each feature row (or
    column), as roi_align samples it: ``sampling_ratio`` points per bin, zero outside
    [-1, size], clamped to the border inside it."""
    steps = bins * sampling_ratio
    offsets = (torch.arange(steps, dtype=starts.dtype, device=starts.device) + 0.5) / steps
    extent = (ends - starts).clamp(min=1.0)  # a box spans at least one feature cell
    points = starts[:, None] + offsets * extent[:, None]  # (R, steps)
    inside = (points >= -1) & (points <= size)
    points = points.clamp(min=0)
    low = points.floor().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = (points - low).clamp(max=1) * (low < size - 1)
    cells = torch.arange(size, device=starts.device)
    weights = (1 - frac)[..., None] * (cells == low[..., None]) + frac[..., None] * (
        cells == high[..., None]
    )
    weights = weights * inside[..., None]
    return weights.reshape(len(starts), bins, sampling_ratio, size).mean(dim=2)


def grid_roi_align(
    features: torch.Tensor,
    boxes: list[torch.Tensor],
    output_size: int,
    scale: float,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """RoIAlign of ``boxes`` (x1, y1, x2, y2 per image, in image pixels) on ``features``
    (N, C, H, W): (R, C, output_size, output_size), RoIs in image order.

    Bilinear sampling is separable, so each RoI's pooling is two small matrix products with
    per-axis weights (see ``_axis_weights``); boxes carry no gradient, as in Faster R-CNN.
    """
    height, width = features.shape[-2:]
    counts = [len(b) for b in boxes]
    scaled = torch.cat(boxes).detach().to(features.dtype) * scale
    rows = _axis_weights(scaled[:, 1], scaled[:, 3], height, output_size, sampling_ratio)
    cols = _axis_weights(scaled[:, 0], scaled[:, 2], width, output_size, sampling_ratio)
    if len(set(counts)) == 1:  # as many RoIs in every image (training): one product per axis
        return _pool_batch(features, rows, cols, counts[0])
    pooled = []
    for image_features, image_rows, image_cols in zip(
        features, rows.split(counts), cols.split(counts)
    ):
        partial = torch.einsum("rph,chw->rcpw", image_rows, image_features)
        pooled.append(torch.einsum("rcpw,rqw->rcpq", partial, image_cols))
    return torch.cat(pooled)


def _pool_batch(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, per_image: int):
    """``grid_roi_align`` with ``per_image`` RoIs in each image, as two batched products."""
    images, channels, height, width = features.shape
    bins = rows.shape[1]
    # (B, R * P, H) x (B, H, C * W): every RoI's rows of its image, for all channels at once.
    by_row = features.permute(0, 2, 1, 3).reshape(images, height, channels * width)
    partial = torch.bmm(rows.reshape(images, per_image * bins, height), by_row)
    # (B * R, P * C, W) x (B * R, W, Q): then its columns.
    partial = partial.reshape(images * per_image, bins * channels, width)
    pooled = torch.bmm(partial, cols.transpose(1, 2))
    pooled = pooled.reshape(images * per_image, bins, channels, bins)
    return pooled.permute(0, 2, 1, 3)


class GridRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` on one feature map, computed by ``grid_roi_align``."""

    def __init__(self, featmap_name: str, output_size: int, sampling_ratio: int = 2) -> None:
        super().__init__([featmap_name], output_size, sampling_ratio)

    def forward(
        self,
        x: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        features = x[self.featmap_names[0]]
        # The scale as torchvision infers it: a power of two from the padded batch's size.
        largest = max(shape[0] for shape in image_shapes)
        scale = 2.0 ** round(math.log2(features.shape[-2] / largest))
        size = self.output_size[0]
        return grid_roi_align(features, boxes, size, scale, self.sampling_ratio)
