"""Reading torch files from anywhere without running what they hold.

Every file a user may be handed (checkpoints, model files, feature caches, COCO weights) is
loaded with ``weights_only=True``: tensors, numbers, strings and plain containers only. A pickle
that names any other callable is refused before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def load_weights_only(path: Path | str, what: str) -> Any:
    """The content of the torch file ``path``; one ValueError (one line) naming the file if it
    cannot be read: "``path``: not a ``what`` (why)"."""
    import torch  # here: the command line imports this module for ``one_line``

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        raise ValueError(f"{path}: not a {what} ({one_line(error)})") from error


def one_line(error: BaseException) -> str:
    """An error's message on one line (torch's are often several)."""
    text = str(error)
    if "\nOriginal Traceback" in text:  # re-raised from a DataLoader worker: its last line
        text = text.strip().splitlines()[-1].partition(": ")[2]
    if isinstance(error, pickle.UnpicklingError) and text.startswith("Weights only"):
        named = next((line for line in text.splitlines() if "GLOBAL" in line), "")
        text = f"it holds objects that could run code when loaded; refused. {named}"
    return " ".join(text.split()) or type(error).__name__
