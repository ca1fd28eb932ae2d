"""Downloading dataset files with urllib, checked against a published checksum before use.

A file is written to a temporary name and renamed only once its checksum matches, so an interrupted or
corrupted download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path


class DownloadError(RuntimeError):
    """A dataset file could not be fetched or failed its checksum."""


def file_digest(path: str | os.PathLike, algorithm: str = "md5", chunk_size: int = 1 << 20) -> str:
    """The hex digest of a file ('md5' or 'sha256'), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def check_integrity(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None) -> bool:
    """True when `path` exists and matches every checksum given (none given: it only has to exist)."""
    if not os.path.isfile(path):
        return False
    if md5 is not None and file_digest(path, "md5") != md5.lower():
        return False
    if sha256 is not None and file_digest(path, "sha256") != sha256.lower():
        return False
    return True


def download_url(url: str, root: str | os.PathLike, filename: str | None = None, md5: str | None = None,
                 sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download `url` into `root/filename` unless a file with the right checksum is already there.

    Raises DownloadError naming the URL and the folder when the network fails or the checksum differs."""
    root = Path(root).expanduser()
    path = root / (filename or url.rstrip("/").rsplit("/", 1)[-1])
    if check_integrity(path, md5, sha256):
        return path
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url} into {root}: {e}. Hint: without network access, "
                            f"copy the file there by hand as {path.name}") from e
    for algorithm, want in (("md5", md5), ("sha256", sha256)):
        if want is not None:
            got = file_digest(tmp, algorithm)
            if got != want.lower():
                tmp.unlink(missing_ok=True)
                raise DownloadError(f"{url}: downloaded file has {algorithm} {got}, expected {want}; it was "
                                    f"deleted from {root}. The mirror may be corrupt: try again or another "
                                    "mirror")
    os.replace(tmp, path)
    return path


def download_any(urls: list[str], root, filename: str, md5: str | None = None,
                 sha256: str | None = None) -> Path:
    """Try each mirror in turn; the error lists every URL tried."""
    errors = []
    for url in urls:
        try:
            return download_url(url, root, filename, md5=md5, sha256=sha256)
        except DownloadError as e:
            errors.append(str(e))
    raise DownloadError(f"could not download {filename} into {root} from any mirror:\n  "
                        + "\n  ".join(errors))
