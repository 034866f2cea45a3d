"""Find a data file locally, or fetch it once (optionally out of a zip), or say exactly how to get it.

Runs stay offline-friendly: an existing file is never touched, a download gets a short timeout, and any
failure becomes a ``FileNotFoundError`` that names the expected path, the URL and the manual steps.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from attnlab import MissingFileError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 10.0  # seconds to wait for the server; offline machines fail fast


def ensure_file(
    path: str | os.PathLike,
    url: str,
    sha256: str | None = None,
    member: str | None = None,
    *,
    how_to_get: str,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Return ``path``, downloading ``url`` (the zip holding ``member``, when given) first when the file is absent.

    ``sha256`` (of the final file) is checked when given. The file appears atomically: no partial download is seen.
    """
    path = Path(path)
    if path.is_file():
        return path
    log.info("%s is missing; fetching %s", path, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp_dir:
        fetched = Path(tmp_dir) / "download"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(fetched, "wb") as f:
                shutil.copyfileobj(response, f)
            if member:
                with zipfile.ZipFile(fetched) as zf:
                    fetched = Path(zf.extract(member, Path(tmp_dir) / "member"))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:  # URLError and timeouts are OSErrors
            raise MissingFileError(
                f"{path} does not exist and downloading it failed ({type(err).__name__}: {err}). "
                f"URL: {url}{f' (zip member {member})' if member else ''}. How to get it: {how_to_get}"
            ) from err
        if sha256 is not None and (actual := _sha256(fetched)) != sha256.lower():
            raise ValueError(f"download of {url} for {path} has sha256 {actual}, expected {sha256}; file not written")
        os.chmod(fetched, 0o644)
        os.replace(fetched, path)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:  # in blocks: a user's URL may be a large corpus
        return hashlib.file_digest(f, "sha256").hexdigest()
