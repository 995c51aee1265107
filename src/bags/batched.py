"""Faster R-CNN's per-image training steps done for the whole batch at once.

torchvision loops over the images of a batch to match anchors and proposals to ground truth,
to sample foreground and background, to filter proposals and to normalise images: thousands of
small tensor operations per step, which is most of a step's time for a small detector on a CPU.
These versions work on padded (B, N, ...) tensors and give the same numbers: the same formulas
element by element, and the same random draws in the same order (``tests/test_batched.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import boxes as box_ops

from bags.loss_scope import chunk_ranges, mean_over_chunks

BELOW, BETWEEN = -1, -2  # torchvision's Matcher codes: below the low threshold, between the two


def pad(tensors: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(B, L, ...) zero-padded, and (B, L) which entries are real; L >= 1."""
    lengths = torch.tensor([len(t) for t in tensors])
    length = max(int(lengths.max()), 1)
    padded = pad_sequence(tensors, batch_first=True)
    if padded.shape[1] < length:
        padded = torch.cat([padded, padded.new_zeros(len(tensors), 1, *padded.shape[2:])], 1)
    valid = torch.arange(length)[None, :] < lengths[:, None]
    return padded, valid.to(padded.device)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(B, M, N) IoU of (B, M, 4) and (B, N, 4) xyxy boxes, as ``torchvision.ops.box_iou``."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    lt = torch.max(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    rb = torch.min(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, :, None] + area2[:, None, :] - inter)


def match(
    quality: Tensor,
    gt_valid: Tensor,
    pred_valid: Tensor | None,
    high: float,
    low: float,
    allow_low_quality: bool,
) -> Tensor:
    """(B, N) ground-truth index per prediction, or BELOW / BETWEEN: torchvision's ``Matcher``
    on (B, G, N) quality; padded ground truth never matches, padded predictions are BELOW."""
    quality = quality.masked_fill(~gt_valid[:, :, None], -1.0)
    if pred_valid is not None:
        quality = quality.masked_fill(~pred_valid[:, None, :], -1.0)
    values, matches = quality.max(dim=1)
    best_match = matches
    matches = matches.masked_fill(values < low, BELOW)
    matches = matches.masked_fill((values >= low) & (values < high), BETWEEN)
    if allow_low_quality:
        # Each ground truth's best predictions (ties included) keep their best match.
        best = quality.max(dim=2).values.masked_fill(~gt_valid, float("nan"))
        ties = (quality == best[:, :, None]).any(dim=1)
        matches = torch.where(ties, best_match, matches)
    return matches


def sample_fg_bg(
    labels: Tensor, batch_size_per_image: int, positive_fraction: float
) -> tuple[Tensor, Tensor]:
    """(B, N) masks of the sampled positives (label >= 1) and negatives (label 0), drawn as
    torchvision's ``BalancedPositiveNegativeSampler`` draws them, image by image."""
    positive, negative = labels >= 1, labels == 0
    wanted = int(batch_size_per_image * positive_fraction)
    picks: tuple[list[Tensor], list[Tensor]] = ([], [])
    for pos, neg in zip(positive.sum(1).tolist(), negative.sum(1).tolist()):
        num_pos = min(pos, wanted)
        num_neg = min(neg, batch_size_per_image - num_pos)
        picks[0].append(torch.randperm(pos, device=labels.device)[:num_pos])
        picks[1].append(torch.randperm(neg, device=labels.device)[:num_neg])
    return _picked(positive, picks[0]), _picked(negative, picks[1])


def _picked(mask: Tensor, picks: list[Tensor]) -> Tensor:
    """The entries of ``mask`` whose rank among the row's true entries is in that row's picks."""
    rank = mask.long().cumsum(1) - 1
    chosen = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    rows = torch.repeat_interleave(
        torch.arange(len(picks), device=mask.device),
        torch.tensor([len(p) for p in picks], device=mask.device),
    )
    chosen[rows, torch.cat(picks)] = True
    return mask & chosen.gather(1, rank.clamp(min=0))


class BatchedRPN(RegionProposalNetwork):
    """torchvision's RPN with batched anchor matching, sampling and proposal filtering.

    Training settings (``bags.engine.train.apply_loss_settings`` sets them): ``loss_images``,
    the images per loss call (``bags.loss_scope``); ``allowed_border``, None to train on every
    anchor (torchvision), or how far in pixels an anchor may reach outside its image's real
    size (before padding) and still be a positive or negative (mmdetection's
    ``allowed_border``; the reference's 0 keeps the anchors inside the image).
    """

    loss_images: int | None = None
    allowed_border: float | None = None

    @classmethod
    def from_rpn(cls, rpn: RegionProposalNetwork) -> BatchedRPN:
        new = cls.__new__(cls)
        new.__dict__ = rpn.__dict__  # the same submodules and settings
        return new

    def filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):  # type: ignore[override]
        num_images = proposals.shape[0]
        objectness = objectness.detach().reshape(num_images, -1)
        device = proposals.device
        levels = torch.cat(
            [torch.full((n,), k, device=device) for k, n in enumerate(num_anchors_per_level)]
        ).expand_as(objectness)
        top = self._get_top_n_idx(objectness, num_anchors_per_level)
        rows = torch.arange(num_images, device=device)[:, None]
        boxes = _clip(proposals[rows, top], image_shapes)
        scores, levels = torch.sigmoid(objectness[rows, top]), levels[rows, top]
        sizes = boxes[..., 2:] - boxes[..., :2]
        keep = (sizes >= self.min_size).all(dim=-1) & (scores >= self.score_thresh)
        final_boxes, final_scores = [], []
        for b, s, lvl, k in zip(boxes, scores, levels, keep):
            b, s, lvl = b[k], s[k], lvl[k]
            if len(num_anchors_per_level) == 1:  # batched_nms with one level is plain nms
                chosen = box_ops.nms(b, s, self.nms_thresh)
            else:
                chosen = box_ops.batched_nms(b, s, lvl, self.nms_thresh)
            chosen = chosen[: self.post_nms_top_n()]
            final_boxes.append(b[chosen])
            final_scores.append(s[chosen])
        return final_boxes, final_scores

    def forward(self, images, features, targets=None):  # type: ignore[override]
        features = list(features.values())
        objectness, deltas = self.head(features)
        anchors = self.anchor_generator(images, features)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        if not self.training:
            return boxes, {}
        if targets is None:
            raise ValueError("targets should not be None")
        anchors = torch.stack(anchors)
        usable = None
        if self.allowed_border is not None:
            usable = anchors_inside(anchors, images.image_sizes, self.allowed_border)
        gt, gt_valid = pad([t["boxes"] for t in targets])
        matches = match(
            box_iou(gt, anchors),
            gt_valid,
            usable,
            self.proposal_matcher.high_threshold,
            self.proposal_matcher.low_threshold,
            self.proposal_matcher.allow_low_quality_matches,
        )
        labels = (matches >= 0).float().masked_fill(matches == BETWEEN, -1.0)
        if usable is not None:
            labels = labels.masked_fill(~usable, -1.0)  # neither positive nor negative
        matched = gt.gather(1, matches.clamp(min=0)[..., None].expand(-1, -1, 4))
        regression_targets = self.box_coder.encode_single(
            matched.flatten(0, 1), anchors.flatten(0, 1)
        ).view_as(anchors)
        sampler = self.fg_bg_sampler
        positive, negative = sample_fg_bg(
            labels, sampler.batch_size_per_image, sampler.positive_fraction
        )
        objectness = objectness.view(labels.shape)
        deltas = deltas.view(anchors.shape)

        def losses(chunk: slice) -> dict[str, Tensor]:
            pos, sampled = positive[chunk], positive[chunk] | negative[chunk]
            box_loss = torch.nn.functional.smooth_l1_loss(
                deltas[chunk][pos], regression_targets[chunk][pos], beta=1 / 9, reduction="sum"
            ) / max(int(sampled.sum()), 1)
            objectness_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                objectness[chunk][sampled], labels[chunk][sampled]
            )
            return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}

        ranges = chunk_ranges([1] * len(anchors), self.loss_images)  # a row per image
        return boxes, mean_over_chunks(losses, ranges)


def anchors_inside(anchors: Tensor, image_sizes: list[tuple[int, int]], border: float) -> Tensor:
    """(B, A) which anchors lie within ``border`` pixels of their image's real (unpadded) size,
    as mmdetection's ``anchor_inside_flags``: x1, y1 >= -border; x2 < width + border and
    y2 < height + border."""
    heights, widths = torch.tensor(image_sizes, dtype=anchors.dtype, device=anchors.device).T
    return (
        (anchors[..., 0] >= -border)
        & (anchors[..., 1] >= -border)
        & (anchors[..., 2] < widths[:, None] + border)
        & (anchors[..., 3] < heights[:, None] + border)
    )


def _clip(boxes: Tensor, image_shapes: list[tuple[int, int]]) -> Tensor:
    """(B, N, 4) boxes clipped to each image, as ``clip_boxes_to_image`` clips one image's."""
    heights, widths = torch.tensor(image_shapes, dtype=boxes.dtype, device=boxes.device).T
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x = boxes[..., 0::2].clamp(min=zero).minimum(widths[:, None, None])
    y = boxes[..., 1::2].clamp(min=zero).minimum(heights[:, None, None])
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def select_training_samples(heads, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
    """``RoIHeads.select_training_samples`` for the whole batch: the ground truth added to the
    proposals, matched, sampled and encoded; per image, in torchvision's order."""
    dtype = proposals[0].dtype
    gt_boxes = [t["boxes"].to(dtype) for t in targets]
    boxes, valid = pad([torch.cat((p, g)) for p, g in zip(proposals, gt_boxes)])
    gt, gt_valid = pad(gt_boxes)
    matcher = heads.proposal_matcher
    matches = match(
        box_iou(gt, boxes),
        gt_valid,
        valid,
        matcher.high_threshold,
        matcher.low_threshold,
        matcher.allow_low_quality_matches,
    )
    gt_labels, _ = pad([t["labels"] for t in targets])
    labels = gt_labels.gather(1, matches.clamp(min=0)).long()
    labels = labels.masked_fill(matches == BELOW, 0).masked_fill(matches == BETWEEN, -1)
    labels = labels.masked_fill(~valid, -1)  # padding is never sampled
    sampler = heads.fg_bg_sampler
    positive, negative = sample_fg_bg(
        labels, sampler.batch_size_per_image, sampler.positive_fraction
    )
    chosen = positive | negative
    counts = chosen.sum(1).tolist()
    matched = gt.gather(1, matches.clamp(min=0)[..., None].expand(-1, -1, 4))[chosen]
    sampled = boxes[chosen]
    regression_targets = heads.box_coder.encode_single(matched, sampled)
    return (
        list(sampled.split(counts)),
        list(labels[chosen].split(counts)),
        list(regression_targets.split(counts)),
    )


class SameSizeTransform(GeneralizedRCNNTransform):
    """torchvision's transform, with images that already have the model's one size (the small
    detector's) normalised as one batch: resizing them would change nothing."""

    @classmethod
    def from_transform(cls, transform: GeneralizedRCNNTransform) -> SameSizeTransform:
        new = cls.__new__(cls)
        new.__dict__ = transform.__dict__
        return new

    def _same_size(self, images: list[Tensor]) -> bool:
        size = self.min_size[0]
        return (
            len(self.min_size) == 1
            and self.max_size == size
            and self.fixed_size is None
            and size % self.size_divisible == 0
            and all(tuple(image.shape[-2:]) == (size, size) for image in images)
            and all(image.dim() == 3 and image.is_floating_point() for image in images)
        )

    def forward(self, images, targets=None):  # type: ignore[override]
        if not self._same_size(images):
            return super().forward(images, targets)
        if self.training:
            for _ in images:  # torchvision draws a training size per image: the same draws
                self.torch_choice(self.min_size)
        batch = torch.stack(images)
        mean = torch.as_tensor(self.image_mean, dtype=batch.dtype, device=batch.device)
        std = torch.as_tensor(self.image_std, dtype=batch.dtype, device=batch.device)
        batch = (batch - mean[:, None, None]) / std[:, None, None]
        if targets is not None:
            targets = [dict(t) for t in targets]
        size = (batch.shape[-2], batch.shape[-1])
        return ImageList(batch, [size] * len(images)), targets
