"""Downloads against a local misbehaving HTTP server; zip extraction; linking existing data."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bags.data.download import (
    DownloadError,
    download,
    extract_zip,
    link_existing,
)
from bags.digest import sha256_file

DATA = bytes(range(256)) * 40  # 10240 bytes
SHA = hashlib.sha256(DATA).hexdigest()
FAST = {"backoff": 0.01, "timeout": 5.0, "chunk": 1000, "progress": False}


class _Server(ThreadingHTTPServer):
    """Serves `files` (path -> bytes); `modes` (path -> name) make a path misbehave.

    Modes: "flaky" (first response cut in half), "short" (every response cut in half),
    "error500once" (first answer is HTTP 500), "norange" (ignores Range),
    "stall" (first response sends half then hangs), "nolength" (no Content-Length).
    `etags` (path -> ETag) are sent, and a Range whose If-Range is another ETag is ignored.
    Unknown paths get 404.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.etags: dict[str, str] = {}
        self.log: list[dict] = []  # one {"path", "range", "sent"} per request
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def requests(self, path: str) -> list[dict]:
        with self.lock:
            return [entry for entry in self.log if entry["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        entry = {"path": self.path, "range": self.headers["Range"], "sent": 0,
                 "if_range": self.headers["If-Range"]}  # fmt: skip
        with self.server.lock:
            first = all(e["path"] != self.path for e in self.server.log)
            self.server.log.append(entry)
        body = self.server.files.get(self.path)
        mode = self.server.modes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if mode == "error500once" and first:
            self.send_error(500)
            return
        start = 0
        etag = self.server.etags.get(self.path)
        same = entry["if_range"] is None or entry["if_range"] == etag
        if entry["range"] and mode != "norange" and same:
            start = int(entry["range"].removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        if etag:
            self.send_header("ETag", etag)
        if mode != "nolength":
            self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if mode == "short" or (mode in ("flaky", "stall") and first):
            rest = rest[: len(rest) // 2]
        entry["sent"] = len(rest)  # before writing: the client may finish reading first
        self.wfile.write(rest)
        self.wfile.flush()
        if mode == "stall" and first:
            time.sleep(1.0)  # longer than the client's timeout; then close without the rest
        self.close_connection = True


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _serve(server: _Server, path: str = "/f.zip", mode: str | None = None) -> str:
    server.files[path] = DATA
    if mode:
        server.modes[path] = mode
    return server.url(path)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- download ---------------------------------------------------------------------------------


def test_clean_download(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    dest = tmp_path / "sub" / "f.zip"
    assert download(url, dest, size=len(DATA), sha256=SHA, **FAST) == dest
    assert dest.read_bytes() == DATA
    assert sha256_file(dest) == SHA
    assert _leftovers(dest.parent) == ["f.zip"]
    assert [e["range"] for e in server.requests("/f.zip")] == [None]


def test_resumes_after_connection_closed_mid_file(
    server: _Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = _serve(server, mode="flaky")
    dest = tmp_path / "f.zip"
    with caplog.at_level(logging.WARNING, logger="bags.data.download"):
        download(url, dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    half = len(DATA) // 2
    requests = server.requests("/f.zip")
    assert [e["range"] for e in requests] == [None, f"bytes={half}-"]
    assert [e["sent"] for e in requests] == [half, len(DATA) - half]
    assert _leftovers(tmp_path) == ["f.zip"]
    retry_lines = [r.getMessage() for r in caplog.records]
    assert len(retry_lines) == 1
    assert url in retry_lines[0] and "try 1 of 6" in retry_lines[0]


def test_resumes_after_socket_timeout(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="stall")
    dest = tmp_path / "f.zip"
    download(url, dest, sha256=SHA, **{**FAST, "timeout": 0.2})
    assert dest.read_bytes() == DATA
    first, second = server.requests("/f.zip")
    # Resumes from what reached the part file before the timeout (at most what was sent).
    offset = int(second["range"].removeprefix("bytes=").removesuffix("-"))
    assert first["range"] is None and 0 < offset <= first["sent"]


def test_resumes_existing_part_file(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    dest = tmp_path / "f.zip"
    half = len(DATA) // 2
    (tmp_path / "f.zip.part").write_bytes(DATA[:half])
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    requests = server.requests("/f.zip")
    assert [(e["range"], e["sent"]) for e in requests] == [(f"bytes={half}-", len(DATA) - half)]
    assert _leftovers(tmp_path) == ["f.zip"]


def test_complete_part_file_answered_416_is_kept(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    (tmp_path / "f.zip.part").write_bytes(DATA)
    download(url, tmp_path / "f.zip", sha256=SHA, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert [(e["range"], e["sent"]) for e in server.requests("/f.zip")] == [
        (f"bytes={len(DATA)}-", 0)
    ]


def test_invalid_part_file_answered_416_restarts(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    (tmp_path / "f.zip.part").write_bytes(b"x" * (len(DATA) + 5))
    download(url, tmp_path / "f.zip", sha256=SHA, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert [e["range"] for e in server.requests("/f.zip")] == [f"bytes={len(DATA) + 5}-", None]


def test_part_of_an_unknown_origin_restarts_when_only_the_size_is_known(
    server: _Server, tmp_path: Path
) -> None:
    url = _serve(server)
    (tmp_path / "f.zip.part").write_bytes(b"x" * 5000)  # whose bytes? nothing tells
    download(url, tmp_path / "f.zip", size=len(DATA), **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert [e["range"] for e in server.requests("/f.zip")] == [None]
    assert _leftovers(tmp_path) == ["f.zip"]


def test_part_resumes_with_only_the_size_if_the_server_vouches_for_it(
    server: _Server, tmp_path: Path
) -> None:
    url = _serve(server, mode="short")
    server.etags["/f.zip"] = '"v1"'
    with pytest.raises(DownloadError):
        download(url, tmp_path / "f.zip", size=len(DATA), retries=0, **FAST)
    server.modes.clear()
    download(url, tmp_path / "f.zip", size=len(DATA), **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    half = len(DATA) // 2
    last = server.requests("/f.zip")[-1]
    assert (last["range"], last["if_range"], last["sent"]) == (f"bytes={half}-", '"v1"', half)
    assert _leftovers(tmp_path) == ["f.zip"]


def test_part_of_a_file_changed_since_restarts(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="short")
    server.etags["/f.zip"] = '"v1"'
    with pytest.raises(DownloadError):
        download(url, tmp_path / "f.zip", size=len(DATA), retries=0, **FAST)
    server.modes.clear()
    server.files["/f.zip"] = DATA[::-1]
    server.etags["/f.zip"] = '"v2"'
    download(url, tmp_path / "f.zip", size=len(DATA), **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA[::-1]  # not old bytes with a new tail


def test_server_ignoring_range_restarts_from_zero(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="norange")
    (tmp_path / "f.zip.part").write_bytes(b"junk" * 100)
    download(url, tmp_path / "f.zip", size=len(DATA), sha256=SHA, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert [(e["range"], e["sent"]) for e in server.requests("/f.zip")] == [
        ("bytes=400-", len(DATA))
    ]


def test_checksum_mismatch(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.zip", sha256=wrong, **FAST)
    message = str(info.value)
    assert url in message and "sha256" in message and wrong in message and SHA in message
    assert _leftovers(tmp_path) == []


def test_size_mismatch_reported_by_server(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.zip", size=len(DATA) + 1, **FAST)
    message = str(info.value)
    assert url in message and "size" in message
    assert str(len(DATA) + 1) in message and str(len(DATA)) in message
    assert _leftovers(tmp_path) == []


def test_size_mismatch_found_after_download(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="nolength")  # no Content-Length: only the finished file tells
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.zip", size=len(DATA) + 1, **FAST)
    message = str(info.value)
    assert url in message and "size" in message
    assert str(len(DATA) + 1) in message and str(len(DATA)) in message
    assert _leftovers(tmp_path) == []


def test_complete_part_file_of_wrong_size(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    (tmp_path / "f.zip.part").write_bytes(DATA)  # answered 416, fails the check, restarts
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.zip", size=len(DATA) - 1, **FAST)
    assert url in str(info.value) and str(len(DATA) - 1) in str(info.value)
    assert _leftovers(tmp_path) == []


def test_404_is_not_retried(server: _Server, tmp_path: Path) -> None:
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.zip", **FAST)
    assert url in str(info.value) and "404" in str(info.value)
    assert len(server.requests("/missing.zip")) == 1
    assert _leftovers(tmp_path) == []


def test_500_once_then_ok(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="error500once")
    download(url, tmp_path / "f.zip", sha256=SHA, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert len(server.requests("/f.zip")) == 2


def test_retries_exhausted(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, mode="short")
    dest = tmp_path / "f.zip"
    with pytest.raises(DownloadError) as info:
        download(url, dest, sha256=SHA, retries=2, **FAST)
    assert url in str(info.value) and "3 tries" in str(info.value)
    assert len(server.requests("/f.zip")) == 3
    assert not dest.exists()
    # What arrived is kept for a later run to resume: halves of what was left, three times.
    assert (tmp_path / "f.zip.part").read_bytes() == DATA[: len(DATA) * 7 // 8]


def test_existing_verified_dest_is_not_downloaded(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    dest = tmp_path / "f.zip"
    dest.write_bytes(DATA)
    assert download(url, dest, size=len(DATA), sha256=SHA, **FAST) == dest
    assert server.requests("/f.zip") == []


def test_existing_mismatching_dest_is_left_alone(server: _Server, tmp_path: Path) -> None:
    url = _serve(server)
    dest = tmp_path / "f.zip"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(DownloadError, match="delete it") as info:
        download(url, dest, sha256=SHA, **FAST)
    assert str(dest) in str(info.value) and url in str(info.value)
    assert dest.read_bytes() == b"the user's own file"
    assert server.requests("/f.zip") == []


# --- extract_zip ------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"val2017/1.jpg": b"one", "top.json": b"{}"})
    marker = tmp_path / "flags" / "a.done"
    extract_zip(archive, tmp_path / "out", marker=marker)
    assert (tmp_path / "out" / "val2017" / "1.jpg").read_bytes() == b"one"
    assert (tmp_path / "out" / "top.json").read_bytes() == b"{}"
    assert marker.exists()
    assert not (tmp_path / "out.partial").exists()
    with pytest.raises(ValueError, match="already exists"):
        extract_zip(archive, tmp_path / "out")


def test_extract_corrupt_zip(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(b"this is not a zip file" * 10)
    with pytest.raises(ValueError, match=r"bad\.zip"):
        extract_zip(archive, tmp_path / "out")
    assert _leftovers(tmp_path) == ["bad.zip"]


def test_extract_zip_slip_refused(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    archive = _zip(tmp_path / "work" / "evil.zip", {"ok.txt": b"ok", "../evil": b"pwned"})
    with pytest.raises(ValueError) as info:
        extract_zip(archive, tmp_path / "work" / "out")
    assert "evil.zip" in str(info.value) and "../evil" in str(info.value)
    assert _leftovers(tmp_path / "work") == ["evil.zip"]
    assert _leftovers(tmp_path) == ["work"]


# --- link_existing ----------------------------------------------------------------------------


def test_link_existing(tmp_path: Path) -> None:
    (tmp_path / "real" / "coco").mkdir(parents=True)
    source = tmp_path / "real" / ".." / "real" / "coco"
    dest = tmp_path / "data" / "coco"
    link_existing(source, dest)
    assert dest.is_symlink()
    assert Path(os.readlink(dest)) == (tmp_path / "real" / "coco").resolve()
    link_existing(source, dest)  # second call: nothing to do
    assert dest.is_symlink()


def test_link_existing_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        link_existing(missing, tmp_path / "dest")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dest = tmp_path / "dest"
    link_existing(tmp_path / "a", dest)
    with pytest.raises(FileExistsError, match="dest"):
        link_existing(tmp_path / "b", dest)
    (tmp_path / "plain").write_text("user file")
    with pytest.raises(FileExistsError, match="plain"):
        link_existing(tmp_path / "a", tmp_path / "plain")
    assert (tmp_path / "plain").read_text() == "user file"


# --- the pipeline's command -------------------------------------------------------------------


def test_download_command_checks_sha256_prefix(server: _Server, tmp_path: Path, capsys) -> None:
    from bags.cli import main

    url = _serve(server, "/fasterrcnn.pth")
    good = hashlib.sha256(DATA).hexdigest()[:8]
    dest = tmp_path / "w.pth"
    assert main(["download", "--url", url, "--sha256-prefix", good, "--out", str(dest)]) == 0
    assert dest.read_bytes() == DATA
    other = tmp_path / "x.pth"
    assert main(["download", "--url", url, "--sha256-prefix", "00000000", "--out", str(other)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert url in error and "does not start with 00000000" in error
    assert not other.exists()
