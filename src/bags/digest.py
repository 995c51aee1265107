"""File digests: what downloads are checked against and what checkpoints and caches record."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_hasher(path: Path, chunk: int = 1 << 20) -> hashlib._Hash:
    """A SHA-256 hasher fed the whole file, read in chunks (more may be fed after)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(chunk):
            digest.update(data)
    return digest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    return file_hasher(path, chunk).hexdigest()
