"""Atomic file writes: a crash never leaves a half-written output."""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The temporary file sits in the same folder so that os.replace is an atomic rename. Its name
    does not keep the suffix of `path`, so writers must not infer the format from the name.
    Temporaries of `path` left by a killed writer (SIGKILL runs no cleanup) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'[0-9a-f]' * 16}.tmp"):
        stale.unlink(missing_ok=True)
    # Not mkstemp: it creates the file with mode 0600; the writer creates it with the umask's mode.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename in (str(tmp), tmp):  # say the output, not its hidden temporary
            raise type(error)(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
