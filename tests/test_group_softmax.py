import math

import pytest
import torch
import torch.nn.functional as F

from bags.group_softmax import group_softmax_loss, group_softmax_scores, sample_counted
from bags.groups import assign_groups

# Groups: g1 = {1, 4}, g2 = {2, 6}, g3 = {5}, g4 = {3}; 12 logits.
GROUPS = assign_groups([5, 50, 2000, 3, 150, 10])


def hand_loss(logits, labels, keep):
    """The spec's loss computed RoI by RoI; keep[g] is the set of RoIs counted in group g."""
    total = 0.0
    start = 0
    for g, width in enumerate(GROUPS.widths):
        chunk = logits[:, start : start + width]
        start += width
        terms = []
        for i in sorted(keep[g]):
            y = int(labels[i])
            if g == 0:
                target = 0 if y == 0 else 1
            elif GROUPS.class_group[y] == g:
                target = GROUPS.members[g - 1].index(y) + 1
            else:
                target = 0
            terms.append(-F.log_softmax(chunk[i], dim=0)[target])
        if terms:
            total = total + torch.stack(terms).mean()
    return total


def test_loss_with_every_roi_kept_matches_hand_computation():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 4, 2, 0, 3, 5, 0])  # group 2 has class 2 only; 6 absent
    logits = torch.randn(len(labels), GROUPS.num_logits)
    loss = group_softmax_loss(logits, labels, GROUPS, beta=1e6)
    everyone = set(range(len(labels)))
    keep = [everyone, everyone, everyone, everyone, everyone]
    assert torch.allclose(loss, hand_loss(logits, labels, keep), atol=1e-6)
    assert torch.allclose(group_softmax_loss(logits, labels, GROUPS, beta=math.inf), loss)


def test_group_without_own_rois_adds_nothing():
    torch.manual_seed(1)
    labels = torch.tensor([0, 0, 1, 4, 0])  # only group 1 has foreground
    logits = torch.randn(len(labels), GROUPS.num_logits)
    loss = group_softmax_loss(logits, labels, GROUPS, beta=1e6)
    everyone = set(range(len(labels)))
    assert torch.allclose(
        loss, hand_loss(logits, labels, [everyone, everyone, set(), set(), set()])
    )
    # Changing the logits of the groups without foreground does not change the loss.
    shifted = logits.clone()
    shifted[:, 5:] += torch.randn(len(labels), GROUPS.num_logits - 5) * 10
    assert torch.allclose(group_softmax_loss(shifted, labels, GROUPS, beta=1e6), loss)


def test_all_background_batch_is_group_zero_only():
    logits = torch.randn(4, GROUPS.num_logits)
    labels = torch.zeros(4, dtype=torch.long)
    expected = F.cross_entropy(logits[:, :2], labels)
    assert torch.allclose(group_softmax_loss(logits, labels, GROUPS, 8.0), expected)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 8.0])
def test_sampling_counts(beta):
    # 2 RoIs of group 1, 1 of group 3, 40 "others" everywhere else.
    labels = torch.tensor([1, 4, 5] + [0] * 30 + [2] * 5 + [3] * 5)
    counted = sample_counted(labels, GROUPS, beta, torch.Generator().manual_seed(3))
    n = len(labels)
    assert counted[:, 0].all()
    in_group = GROUPS.class_group[labels]
    for g in range(1, GROUPS.num_groups):
        own = in_group == g
        n_fg = int(own.sum())
        n_others = n - n_fg
        assert counted[own, g].all()
        drawn = int(counted[~own, g].sum())
        expected = 0 if n_fg == 0 else min(math.floor(beta * n_fg), n_others)
        assert drawn == expected, (g, drawn, expected)


def test_sampling_keeps_all_others_when_quota_exceeds_them():
    labels = torch.tensor([1, 1, 1, 0])  # group 1: 3 own, 1 other; quota 24
    counted = sample_counted(labels, GROUPS, 8.0)
    assert counted[:, 1].all()
    assert not counted[:, 2:].any()


def test_sampling_is_uniform_and_reproducible():
    labels = torch.tensor([1] + [0] * 9)  # quota 2 of 9 others
    picks = torch.zeros(10)
    for seed in range(3000):
        counted = sample_counted(labels, GROUPS, 2.0, torch.Generator().manual_seed(seed))
        picks += counted[:, 1].float()
    frequency = picks[1:] / 3000
    assert torch.allclose(frequency, torch.full((9,), 2 / 9), atol=0.03)
    one = sample_counted(labels, GROUPS, 2.0, torch.Generator().manual_seed(7))
    two = sample_counted(labels, GROUPS, 2.0, torch.Generator().manual_seed(7))
    assert torch.equal(one, two)


def test_loss_counts_only_sampled_others():
    torch.manual_seed(2)
    labels = torch.tensor([1, 0, 0, 0, 0, 2, 2, 0])
    logits = torch.randn(len(labels), GROUPS.num_logits)
    generator = torch.Generator().manual_seed(11)
    counted = sample_counted(labels, GROUPS, 1.0, torch.Generator().manual_seed(11))
    keep = [set(torch.where(counted[:, g])[0].tolist()) for g in range(GROUPS.num_groups)]
    assert len(keep[1]) == 2 and len(keep[2]) == 4
    loss = group_softmax_loss(logits, labels, GROUPS, beta=1.0, generator=generator)
    assert torch.allclose(loss, hand_loss(logits, labels, keep), atol=1e-6)


def test_loss_gradient_flows_only_through_counted_groups():
    labels = torch.tensor([1, 0])
    logits = torch.randn(2, GROUPS.num_logits, requires_grad=True)
    group_softmax_loss(logits, labels, GROUPS, 8.0).backward()
    assert logits.grad[:, :5].abs().sum() > 0
    assert logits.grad[:, 5:].abs().sum() == 0


def test_scores_merge_formula():
    torch.manual_seed(4)
    logits = torch.randn(3, GROUPS.num_logits)
    scores = group_softmax_scores(logits, GROUPS)
    assert scores.shape == (3, 7)
    p0 = F.softmax(logits[:, 0:2], dim=1)
    assert torch.allclose(scores[:, 0], p0[:, 0])
    start = 2
    for _g, group in enumerate(GROUPS.members, start=1):
        width = len(group) + 1
        pg = F.softmax(logits[:, start : start + width], dim=1)
        for k, c in enumerate(group, start=1):
            assert torch.allclose(scores[:, c], p0[:, 1] * pg[:, k])
        start += width
    # no renormalisation: rows do not sum to one in general
    assert not torch.allclose(scores.sum(1), torch.ones(3))


# The logit layout of GROUPS written out by hand (spec section 2): [bg, fg], then per group
# [others, its classes in ascending order]. Class -> (its group's columns, its own column).
HAND_LAYOUT = {
    1: (slice(2, 5), 3),
    4: (slice(2, 5), 4),
    2: (slice(5, 8), 6),
    6: (slice(5, 8), 7),
    5: (slice(8, 10), 9),
    3: (slice(10, 12), 11),
}


def hand_scores(logits: torch.Tensor) -> torch.Tensor:
    """The merge in float64, row by row of the whole matrix: p0(bg), p0(fg) * p_g(c)."""
    x = logits.double()

    def softmax_column(columns: slice, column: int) -> torch.Tensor:
        chunk = x[:, columns]
        e = (chunk - chunk.max(dim=1, keepdim=True).values).exp()
        return e[:, column - columns.start] / e.sum(dim=1)

    scores = torch.empty(len(x), 7, dtype=torch.float64)
    scores[:, 0] = softmax_column(slice(0, 2), 0)
    foreground = softmax_column(slice(0, 2), 1)
    for c, (columns, column) in HAND_LAYOUT.items():
        scores[:, c] = foreground * softmax_column(columns, column)
    return scores


@pytest.mark.parametrize(("rows", "block_rows"), [(2 * 1024 + 300, 1024), (50, 7), (7, 7)])
def test_scores_merge_every_row_of_every_block(rows, block_rows):
    generator = torch.Generator().manual_seed(5)
    # Rows of very different scales, so a row scored with another row's numbers shows.
    logits = torch.randn(rows, GROUPS.num_logits, generator=generator)
    logits *= torch.linspace(0.1, 6.0, rows)[:, None]
    assert sorted(HAND_LAYOUT) == list(range(1, GROUPS.num_classes + 1))
    scores = group_softmax_scores(logits, GROUPS, block_rows=block_rows)
    assert scores.shape == (rows, GROUPS.num_classes + 1)
    expected = hand_scores(logits)
    wrong = ~torch.isclose(scores.double(), expected, rtol=1e-5, atol=1e-7).all(dim=1)
    assert not wrong.any(), f"rows scored wrong: {torch.where(wrong)[0].tolist()[:10]} ..."
    if block_rows == 1024:  # the default block size
        assert torch.equal(group_softmax_scores(logits, GROUPS), scores)


def test_scores_of_half_precision_logits_are_float32():
    # Mixed-precision inference hands over bf16 logits; the scores are float32, as a softmax
    # gives under CUDA autocast (a bf16 output there once failed the merge's index_select).
    logits = torch.randn(5, GROUPS.num_logits, generator=torch.Generator().manual_seed(6))
    logits = logits.bfloat16()
    scores = group_softmax_scores(logits, GROUPS, block_rows=2)
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, group_softmax_scores(logits.float(), GROUPS), atol=1e-7)


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (torch.zeros(2, 11), torch.tensor([0, 1]), r"shape \(N, 12\)"),
        (torch.zeros(2, 12, 1), torch.tensor([0, 1]), r"shape \(N, 12\)"),
        (torch.zeros(2, 12), torch.tensor([0, 7]), r"labels must lie in 0\.\.6"),
        (torch.zeros(2, 12), torch.tensor([-1, 1]), r"labels must lie in 0\.\.6"),
        (torch.zeros(2, 12), torch.tensor([0, 1, 2]), r"labels must have shape \(2,\)"),
    ],
)
def test_bad_input(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        group_softmax_loss(logits, labels, GROUPS, 8.0)


def test_scores_reject_wrong_width():
    with pytest.raises(ValueError, match=r"shape \(N, 12\)"):
        group_softmax_scores(torch.zeros(2, 13), GROUPS)


def test_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        group_softmax_loss(torch.zeros(1, 12), torch.tensor([1]), GROUPS, beta=0)
