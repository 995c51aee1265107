"""Resumable, verified downloads and safe unpacking for the LVIS/COCO data stage.

A download is written to `<dest>.part` and renamed onto `dest` only once it is complete and
verified, so `dest` exists only when whole. An interrupted download resumes with an HTTP Range
request, from the bytes already in the part file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from bags.digest import file_hasher, sha256_file
from bags.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

# What a dropped connection, a timeout or a body cut short raises while talking to the server.
_TRANSIENT = (OSError, http.client.HTTPException)


class DownloadError(RuntimeError):
    """A download that failed for good; the message names the URL and what went wrong."""


class _Retry(Exception):
    """A failure worth another try: connection error, body cut short, HTTP 5xx."""


def _mismatch(
    path: Path, size: int | None, sha256: str | None, digest: str | None = None
) -> str | None:
    """Why `path` fails the size/sha256 check (None if it passes); `digest` saves re-hashing."""
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        return f"size mismatch: expected {size} bytes, got {got_size}"
    if sha256 is not None:
        got, want = digest or sha256_file(path), sha256.lower()
        if not got.startswith(want):
            if len(want) < len(got):
                return f"sha256 {got} does not start with {want}"
            return f"sha256 mismatch: expected {want}, got {got}"
    return None


def _check_request(url: str, size: int | None, sha256: str | None) -> None:
    """One clear error for what no download could satisfy."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http and https URLs are downloaded")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise DownloadError(f"{url}: size must be a number of bytes >= 0, got {size!r}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{8,64}", sha256):
        raise DownloadError(
            f"{url}: sha256 must be 8 to 64 hexadecimal digits (all or the start of the "
            f"file's), got {sha256!r}"
        )


def _source_file(part: Path) -> Path:
    """Where a part file's origin is kept: its URL and the server's validator of the file."""
    return part.with_name(part.name + ".source")


def _validator(url: str, part: Path) -> str | None:
    """The validator (ETag or Last-Modified) the server gave for the file whose first bytes
    `part` holds, if they came from `url`; sent as If-Range, it makes the server send the rest
    only of that same file."""
    try:
        source = json.loads(_source_file(part).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(source, dict) or source.get("url") != url:
        return None
    validator = source.get("validator")
    return validator if isinstance(validator, str) and validator else None


def _keep_source(url: str, part: Path, headers) -> None:
    etag = headers["ETag"]
    validator = etag if etag and not etag.startswith("W/") else headers["Last-Modified"]
    write_text_atomic(_source_file(part), json.dumps({"url": url, "validator": validator}))


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _source_file(part).unlink(missing_ok=True)


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(start, total) from a Content-Range header such as 'bytes 10-99/100' or 'bytes */100'."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[len("bytes ") :].partition("/")
    start = span.partition("-")[0]
    return (
        int(start) if start.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def _attempt(
    url: str,
    part: Path,
    size: int | None,
    sha256: str | None,
    timeout: float,
    chunk: int,
    progress: bool,
) -> str | None:
    """One request for what `part` still lacks; returns the part's sha256 if one is wanted.

    Raises _Retry for failures worth another try and DownloadError for the others.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    validator = _validator(url, part) if offset else None
    if validator:
        headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            return _complete_part(part, offset, size, sha256, error)
        if error.code >= 500:
            raise _Retry(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except _TRANSIENT as error:
        raise _Retry(f"connection error: {error!r}") from error
    with response:
        if response.status == 206:
            start, _ = _content_range(response.headers["Content-Range"])
            if start != offset:
                _discard(part)
                raise _Retry(f"asked for bytes from {offset}, server sent from {start}; restarting")
        else:
            offset = 0  # the server ignored the Range header, or the file changed: start again
        length_header = response.headers["Content-Length"]
        length = int(length_header) if length_header is not None else None
        total = offset + length if length is not None else None
        if size is not None and total is not None and total != size:
            _discard(part)
            raise DownloadError(f"{url}: size mismatch: expected {size} bytes, server has {total}")
        if not offset:
            _keep_source(url, part, response.headers)
        digest = file_hasher(part) if sha256 and offset else hashlib.sha256()
        received = _receive(response, part, offset, size or total, digest if sha256 else None,
                            chunk, progress)  # fmt: skip
        if length is not None and received < length:
            raise _Retry(f"connection closed after {offset + received} of {total} bytes")
    return digest.hexdigest() if sha256 else None


def _complete_part(part: Path, offset: int, size, sha256, error) -> str | None:
    """HTTP 416: nothing left past ``offset``. The part is complete if it passes the check
    (its sha256 returned); else it is not this file, and it is discarded."""
    expected = size if size is not None else _content_range(error.headers["Content-Range"])[1]
    digest = sha256_file(part) if sha256 else None
    known = expected is not None or sha256 is not None
    if known and _mismatch(part, expected, sha256, digest) is None:
        return digest
    _discard(part)
    raise _Retry(
        f"HTTP 416 for a {offset}-byte part file that fails the check; restarting"
    ) from error


def _receive(response, part: Path, offset: int, total, digest, chunk: int, progress: bool) -> int:
    """Append the response's body to ``part`` (from ``offset``), feeding ``digest``; returns
    the bytes received."""
    received = 0
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.removesuffix(".part"),
        disable=not progress,
    )
    with bar, open(part, "ab" if offset else "wb") as f:
        while True:
            try:
                data = response.read(chunk)
            except _TRANSIENT as error:
                raise _Retry(f"read failed after {offset + received} bytes: {error!r}") from error
            if not data:
                return received
            f.write(data)
            if digest is not None:
                digest.update(data)
            received += len(data)
            bar.update(len(data))


def download(
    url: str,
    dest: Path,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming and retrying; `dest` appears only once verified.

    `sha256` is the file's hex digest or its first 8 or more digits. Tries at most
    `retries + 1` times, sleeping `backoff * 2**attempt` seconds between tries. HTTP 4xx fails
    at once; connection errors, bodies cut short and HTTP 5xx are retried.

    A part file left by an earlier run is resumed when `sha256` is given (the checksum of the
    whole file vouches for the old bytes too), or when the part's recorded origin is this URL
    with a validator (ETag or Last-Modified) that the server then matches (If-Range). A size
    alone cannot show whether the old bytes belong to this file: such a part starts over.
    """
    _check_request(url, size, sha256)
    dest = Path(dest)
    if dest.exists():
        problem = _mismatch(dest, size, sha256)
        if problem:
            raise DownloadError(f"{url}: {dest} already exists but {problem}; delete it to retry")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and sha256 is None and _validator(url, part) is None:
        log.warning("%s: left by an earlier run, nothing to verify it by; starting over", part)
        _discard(part)
    tries = retries + 1
    for attempt in range(tries):
        try:
            digest = _attempt(url, part, size, sha256, timeout, chunk, progress)
            break
        except _Retry as error:
            if attempt + 1 == tries:
                raise DownloadError(f"{url}: gave up after {tries} tries: {error}") from error
            delay = backoff * 2**attempt
            log.warning(
                "download %s: try %d of %d failed (%s); retrying in %.2f s",
                url,
                attempt + 1,
                tries,
                error,
                delay,
            )
            time.sleep(delay)
    problem = _mismatch(part, size, sha256, digest)
    if problem:
        _discard(part)
        raise DownloadError(f"{url}: {problem}")
    os.replace(part, dest)
    _source_file(part).unlink(missing_ok=True)
    return dest


def inner_path(name: str) -> str:
    """``name`` as a path inside an archive or folder; refused if empty or leading outside."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ValueError(f"{name!r}: expected a relative path inside the archive or folder")
    return name


def extract_zip(archive: Path, dest_dir: Path, marker: Path | None = None) -> None:
    """Unzip `archive` into `dest_dir` via a sibling `.partial` folder renamed when done.

    Refuses members that would land outside the folder. `marker`, if given, is written last
    (e.g. a Snakemake output flag).
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if dest_dir.exists():
        raise ValueError(f"{dest_dir}: already exists; not extracting {archive} over it")
    partial = dest_dir.with_name(dest_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted earlier run
    partial.mkdir(parents=True)
    root = partial.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise ValueError(f"{archive}: member {name!r} would extract outside the folder")
            zf.extractall(partial)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        shutil.rmtree(partial)
        raise ValueError(f"{archive}: corrupt zip file ({error})") from error
    except BaseException:
        shutil.rmtree(partial)
        raise
    os.replace(partial, dest_dir)
    if marker is not None:
        write_text_atomic(marker, f"{archive}\n")


def link_existing(source: Path, dest: Path) -> None:
    """Make `dest` a symlink to the user's existing `source` (resolved), without copying."""
    source, dest = Path(source), Path(dest)
    if not source.exists():
        raise FileNotFoundError(f"{source}: not found; cannot link {dest} to it")
    target = source.resolve()
    if dest.exists() or dest.is_symlink():
        if dest.resolve() == target:
            return
        raise FileExistsError(f"{dest}: already exists and does not point to {target}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(target, target_is_directory=target.is_dir())


def download_job(
    url: str, out: Path, size: int | None, sha256: str | None, sha256_prefix: str | None
) -> None:
    """``download`` checked against a full sha256 or its first digits."""
    if sha256 and sha256_prefix and not sha256.lower().startswith(sha256_prefix.lower()):
        raise ValueError(f"--sha256 {sha256} does not start with --sha256-prefix")
    download(url, out, size, sha256 or sha256_prefix, progress=True)


def place(member: str, out: Path, archive: Path | None, existing_folder: Path | None) -> None:
    """One annotation file: linked from an existing folder, or extracted from a zip."""
    inner_path(member)
    if existing_folder is not None:
        link_existing(Path(existing_folder) / member, out)
        return
    if archive is None:
        raise ValueError("give --archive or --existing-folder: where the file comes from")
    try:
        with (
            zipfile.ZipFile(archive) as zipped,
            zipped.open(member) as source,
            atomic_path(out) as tmp,
            tmp.open("wb") as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{archive}: cannot extract {member} ({error})") from error


def unzip_folder(archive: Path, member_prefix: str, out: Path) -> None:
    """An image folder from a zip whose members all sit under ``member_prefix``."""
    if member_prefix.strip("/"):
        inner_path(member_prefix.strip("/"))
    out = Path(out)
    staging = out.with_name(f".{out.name}.unzip")
    if staging.exists():
        shutil.rmtree(staging)
    extract_zip(archive, staging)
    inner = staging / member_prefix.strip("/")
    if not inner.is_dir():
        shutil.rmtree(staging)
        raise ValueError(f"{archive}: no folder {member_prefix} inside")
    inner.rename(out)
    shutil.rmtree(staging)


def link_job(source: Path, out: Path) -> None:
    """``link_existing`` as the pipeline's link step."""
    link_existing(source, out)
