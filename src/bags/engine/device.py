"""Where a job runs: the device (``auto``: the GPU if there is one) and its mixed precision."""

from __future__ import annotations

import torch

from bags.safe_load import one_line

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = (*AMP_DTYPES, "auto")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``: bf16 where the device runs it faster than fp32, else none. On a CPU that means
    AMX tiles: without them oneDNN's bf16 is slower than fp32 (the small detector's training,
    oneDNN capped: 0.87x with AVX512-BF16, 0.12x with AVX2 only); on a GPU, bf16 support."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if amx and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        if device.type == "cuda":
            torch.empty(0, device=device)  # a GPU that is not there fails here, not mid-run
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"--device {name!r}: no such device here ({one_line(error)})") from error
    return device
