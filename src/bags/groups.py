"""Balanced group assignment: bins of classes by training instance count.

Logit layout (spec section 2): ``[bg, fg]`` for group 0, then for each group g >= 1
``[others, classes of g in ascending order]``. Contiguous class ids run 1..C; 0 is background.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from bags.bins import bin_index
from bags.schema import EDGES
from bags.values import beta_value, is_int, parse_beta


@dataclass(frozen=True)
class Groups:
    """Which classes share a softmax.

    ``members[k]`` holds the classes of group ``k + 1`` in ascending order; ``bins[k]`` is that
    group's instance-count range ``(low, high)``, ``high`` None for the open last bin.
    """

    num_classes: int
    members: tuple[tuple[int, ...], ...]
    bins: tuple[tuple[int, int | None], ...]
    edges: tuple[int, ...]  # the instance counts that bound the bins

    def __post_init__(self) -> None:
        seen = sorted(c for group in self.members for c in group)
        if seen != list(range(1, self.num_classes + 1)):
            raise ValueError(
                f"groups must hold every class 1..{self.num_classes} exactly once, got {len(seen)} "
                "entries"
            )
        if any(len(group) == 0 for group in self.members):
            raise ValueError("groups must not be empty")
        if any(list(group) != sorted(group) for group in self.members):
            raise ValueError("classes inside a group must be in ascending order")
        if len(self.bins) != len(self.members):
            raise ValueError(
                f"expected {len(self.members)} bins, one per group, got {len(self.bins)}"
            )

    @property
    def sizes(self) -> list[int]:
        """Number of classes in each group g >= 1, in group order."""
        return [len(group) for group in self.members]

    @property
    def num_groups(self) -> int:
        """Groups including group 0 (background/foreground)."""
        return len(self.members) + 1

    @property
    def num_logits(self) -> int:
        return self.num_classes + 1 + self.num_groups

    @property
    def widths(self) -> list[int]:
        """Logits per group, group 0 first."""
        return [2] + [n + 1 for n in self.sizes]

    @cached_property
    def class_group(self) -> torch.Tensor:
        """(C + 1,) group of each label; background is in group 0."""
        table = torch.zeros(self.num_classes + 1, dtype=torch.long)
        for g, group in enumerate(self.members, start=1):
            table[list(group)] = g
        return table

    @cached_property
    def targets(self) -> torch.Tensor:
        """(C + 1, G) in-group target of each label: 0/1 in group 0, 0 ("others") elsewhere."""
        table = torch.zeros(self.num_classes + 1, self.num_groups, dtype=torch.long)
        table[1:, 0] = 1
        for g, group in enumerate(self.members, start=1):
            table[list(group), g] = torch.arange(1, len(group) + 1)
        return table

    @cached_property
    def class_logit(self) -> torch.Tensor:
        """(C,) logit column of class c at position c - 1."""
        columns = torch.zeros(self.num_classes, dtype=torch.long)
        start = 2
        for group in self.members:
            columns[[c - 1 for c in group]] = torch.arange(start + 1, start + 1 + len(group))
            start += len(group) + 1
        return columns

    def to_json(self) -> str:
        return json.dumps(
            {
                "num_classes": self.num_classes,
                "edges": list(self.edges),
                "num_logits": self.num_logits,
                "groups": [
                    {"bin": list(bin_), "classes": list(group)}
                    for bin_, group in zip(self.bins, self.members)
                ],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Groups:
        try:
            data = json.loads(text)
            groups = cls(
                num_classes=_whole(data["num_classes"]),
                members=tuple(tuple(map(_whole, g["classes"])) for g in data["groups"]),
                bins=tuple(
                    (_whole(g["bin"][0]), _optional_int(g["bin"][1])) for g in data["groups"]
                ),
                edges=tuple(map(_whole, data["edges"])),
            )
        except (KeyError, TypeError, IndexError, json.JSONDecodeError) as error:
            raise ValueError(f"not a groups JSON document: {error!r}") from error
        if "num_logits" in data and data["num_logits"] != groups.num_logits:
            raise ValueError(
                f"groups JSON says num_logits {data['num_logits']}, "
                f"its groups give {groups.num_logits}"
            )
        return groups


def _whole(value: object) -> int:
    """An integer as JSON writes it: not "5", 5.0 or true."""
    if not is_int(value):
        raise TypeError(f"expected an integer, got {value!r}")
    return value  # type: ignore[return-value]


def _optional_int(value: object) -> int | None:
    return None if value is None else _whole(value)


def assign_groups(instance_counts: Sequence[int], edges: Sequence[int] = EDGES) -> Groups:
    """Bin classes by training instance count.

    ``instance_counts[i]`` is the count of class ``i + 1``. Bins are ``[0, e1), [e1, e2), ...,
    [e_last, inf)``; a class with no training instance lands in the lowest bin, with a warning.
    Empty bins are dropped.
    """
    edges = tuple(int(e) for e in edges)
    if any(e <= 0 for e in edges) or any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must be positive and strictly increasing, got {list(edges)}")
    counts = [int(n) for n in instance_counts]
    if not counts:
        raise ValueError("instance_counts is empty: expected one count per foreground class")
    negative = [i + 1 for i, n in enumerate(counts) if n < 0]
    if negative:
        raise ValueError(f"instance counts must be >= 0; class(es) {negative[:10]} are negative")
    unseen = [i + 1 for i, n in enumerate(counts) if n == 0]
    if unseen:
        warnings.warn(
            f"{len(unseen)} class(es) have no training instance (e.g. {unseen[:10]}); "
            "they go to the lowest group",
            stacklevel=2,
        )
    lows = (0, *edges)
    highs = (*edges, None)
    members: list[list[int]] = [[] for _ in lows]
    for c, n in enumerate(counts, start=1):
        members[bin_index(n, edges)].append(c)
    kept = [k for k, group in enumerate(members) if group]
    return Groups(
        num_classes=len(counts),
        members=tuple(tuple(members[k]) for k in kept),
        bins=tuple((lows[k], highs[k]) for k in kept),
        edges=edges,
    )


def groups_document(
    category_ids: Sequence[int], instance_counts: Sequence[int], edges: Sequence[int], beta
) -> str:
    """The groups file: the groups of these categories' counts, with beta (a number, or "all")
    and category ids."""
    document = json.loads(assign_groups(instance_counts, edges).to_json())
    document["beta"] = beta_value(parse_beta(beta))
    document["category_ids"] = [int(c) for c in category_ids]
    return json.dumps(document, indent=1)


def read_groups_file(text: str, category_ids: Sequence[int]) -> tuple[Groups, float]:
    """Groups and beta (inf for "all") from a groups file made for ``category_ids``."""
    groups = Groups.from_json(text)
    data = json.loads(text)
    if data.get("category_ids") != [int(c) for c in category_ids]:
        raise ValueError("the groups file was made for other categories")
    if "beta" not in data:
        raise ValueError("the groups file has no 'beta'")
    return groups, parse_beta(data["beta"])


def write_groups(counts_file: Path, edges: Sequence[int], beta, out: Path) -> Groups:
    """The groups file of a counts CSV (see ``groups_document``)."""
    from bags.data.counts import read_counts
    from bags.io import write_text_atomic

    counts = read_counts(counts_file)
    ids, instances = counts["category_id"].tolist(), counts["instance_count"].tolist()
    text = groups_document(ids, instances, edges, beta)
    write_text_atomic(out, text)
    return Groups.from_json(text)
