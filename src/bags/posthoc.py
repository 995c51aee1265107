"""Classifier adjustments made after training, without retraining."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def tau_normalize(layer: nn.Linear, tau: float) -> nn.Linear:
    """Kang et al.'s tau-norm: every row w_c <- w_c / ||w_c||^tau, the bias dropped (set to 0).

    Returns a new layer; ``layer`` is left as it was.
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    new = nn.Linear(layer.in_features, layer.out_features).to(layer.weight.device)
    norms = layer.weight.norm(dim=1, keepdim=True).clamp(min=1e-12)
    new.weight.copy_(layer.weight / norms**tau)
    new.bias.zero_()
    return new
