"""Training checkpoints: named by optimizer step, tagged with the config and code they came from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

import bags
from bags.io import atomic_path
from bags.safe_load import load_weights_only
from bags.values import is_int, is_number


def code_version() -> str:
    """The package version and a hash of its source files."""
    digest = hashlib.sha256()
    root = Path(bags.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{bags.__version__}+{digest.hexdigest()[:12]}"


# What a resumed run takes from a checkpoint (see ``train._save``), besides its tags.
RESUMED = ("model", "optimizer", "scheduler", "scaler", "step", "rows", "partials")


def checkpoint_path(work_dir: Path, step: int) -> Path:
    return work_dir / f"step_{step:09d}.pt"


def latest_checkpoint(work_dir: Path) -> Path | None:
    found = sorted(work_dir.glob("step_*.pt"))
    return found[-1] if found else None


def save_checkpoint(work_dir: Path, step: int, state: dict[str, Any], keep: int) -> None:
    """Write the step's checkpoint, keep the last ``keep``; what a killed save left is removed."""
    for stale in work_dir.glob(".step_*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    with atomic_path(checkpoint_path(work_dir, step)) as tmp:
        torch.save(state, tmp)
    for old in sorted(work_dir.glob("step_*.pt"))[:-keep]:
        old.unlink()


class OtherRun(ValueError):
    """A checkpoint made with other settings or other code. ``finished``: its run had ended
    (every epoch done), so nothing of it is left to resume."""

    def __init__(
        self, path: Path, reason: str, finished: bool, hint: str = "", changed: tuple = ()
    ) -> None:
        super().__init__(f"{path}: {reason}; delete {path.parent} to start over{hint}")
        self.path, self.reason, self.finished = path, reason, finished
        self.changed = changed  # the tags that differ


def finished_run(state: dict[str, Any]) -> bool:
    """Whether a checkpoint is its run's last: saved at the end of its schedule's last epoch."""
    epochs = state.get("settings", {}).get("train", {}).get("epochs")
    return state.get("partials") is None and epochs == len(state.get("rows", ()))


def load_checkpoint(path: Path, settings: dict[str, Any], version: str) -> dict[str, Any]:
    """The checkpoint's state; ``OtherRun`` if made with other settings or another code version.

    Loaded with ``weights_only`` (see ``bags.safe_load``): a checkpoint from elsewhere cannot
    run code when unpickled.
    """
    try:
        state = load_weights_only(path, "readable checkpoint")
    except ValueError as error:
        raise ValueError(f"{error}; delete it to start over") from error
    missing = [key for key in RESUMED if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint (lacks {missing})")
    made_with = state.get("settings", {})
    if not isinstance(made_with, dict) or not isinstance(made_with.get("train", {}), dict):
        raise ValueError(f"{path}: not a training checkpoint (its 'settings' are no mapping)")
    if made_with != settings:
        changed = sorted(
            key
            for key in set(made_with) | set(settings)
            if json.dumps(made_with.get(key), sort_keys=True, default=str)
            != json.dumps(settings.get(key), sort_keys=True, default=str)
        )
        reason = f"made with another configuration (differs in {', '.join(changed)})"
        raise OtherRun(path, reason, finished_run(state), changed=tuple(changed))
    if state.get("code_version") != version:
        reason = f"made with code version {state.get('code_version')}, this is {version}"
        hint = ", or resume with the code that made it"
        raise OtherRun(path, reason, finished_run(state), hint)
    return state


def keep_rng(partial: dict, device: torch.device) -> None:
    """This process's random state (RoI and "others" sampling draw from it) into ``partial``."""
    partial["rng"] = torch.get_rng_state()
    if device.type == "cuda":
        partial["cuda_rng"] = torch.cuda.get_rng_state(device)


def is_partial(partial: Any) -> bool:
    """Whether a checkpoint's ``partial`` is what ``_keep_rng`` and the step loop keep."""
    return (
        isinstance(partial, dict)
        and isinstance(partial.get("sums"), dict)
        and all(is_number(value) for value in partial["sums"].values())
        and is_int(partial.get("images"))
        and is_number(partial.get("seconds"))
        and isinstance(partial.get("rng"), torch.Tensor)
        and partial["rng"].dtype == torch.uint8
    )


def restore_rng(partial: dict, device: torch.device) -> None:
    torch.set_rng_state(partial["rng"])
    if device.type == "cuda" and "cuda_rng" in partial:
        torch.cuda.set_rng_state(partial["cuda_rng"], device)
