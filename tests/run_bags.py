"""``python -m bags`` with test probes, for tests that must watch a run from outside.

    python tests/run_bags.py [--record DIR] [--watch DIR] [--signal-after N --signal NAME]
        -- <bags arguments>

It runs the CLI unchanged, through public mechanisms only:
- a global optimizer-step hook (torch's ``register_optimizer_step_post_hook``) counts the
  optimizer steps this process takes and, with ``--signal-after N``, sends this process the
  signal NAME (``TERM``, ``KILL``) right after its N-th step: a point in training that the
  test chooses, whatever the machine's speed;
- an audit hook (PEP 578) lists the files this process creates, writes, renames or deletes
  under ``--watch``.
At exit, ``--record DIR`` gets ``rank<RANK>.json`` (``RANK`` as torchrun sets it, else 0) with
the exit code, the steps taken and the files written. A process ended by SIGKILL leaves none.
It is started as a script (also by torchrun), so it is not a test module.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: run_bags.py [options] -- <bags arguments>")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="run_bags.py")
    parser.add_argument("--record", type=Path)
    parser.add_argument("--watch", type=Path)
    parser.add_argument("--signal-after", type=int)
    parser.add_argument("--signal", default="TERM", choices=["TERM", "KILL", "INT"])
    return parser.parse_args(argv[:cut]), argv[cut + 1 :]


def main(argv: list[str]) -> int:
    options, bags_args = parse(argv)
    state = {"steps": 0, "writes": [], "recording": True}
    watch = os.path.abspath(options.watch) + os.sep if options.watch else None

    def note(path) -> None:
        if not state["recording"] or watch is None or isinstance(path, int):
            return
        path = os.path.abspath(os.fsdecode(path))
        if path.startswith(watch):
            state["writes"].append(os.path.relpath(path, watch))

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & WRITE_FLAGS
            ):
                note(path)
        elif event == "os.rename":
            note(args[0])
            note(args[1])
        elif event in ("os.remove", "os.mkdir", "os.rmdir"):
            note(args[0])

    sys.addaudithook(audit)

    from torch.optim.optimizer import register_optimizer_step_post_hook

    def after_step(optimizer, args, kwargs) -> None:
        state["steps"] += 1
        if state["steps"] == options.signal_after:
            os.kill(os.getpid(), getattr(signal, f"SIG{options.signal}"))

    register_optimizer_step_post_hook(after_step)

    from bags.cli import main as bags_main

    code: int | str | None = 0
    try:
        code = bags_main(bags_args)
    except SystemExit as stop:
        code = stop.code
    finally:
        state["recording"] = False
        if options.record is not None:
            options.record.mkdir(parents=True, exist_ok=True)
            record = {"code": code, "steps": state["steps"], "writes": state["writes"]}
            rank = os.environ.get("RANK", "0")
            (options.record / f"rank{rank}.json").write_text(json.dumps(record))
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
