"""Artifacts kept as files (``file://`` URIs): their size, their removal, and folders of runs
that no longer exist. Other stores (``s3://``) are left to their own lifecycle rules."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["path_bytes", "remove_artifacts", "sweep_orphans", "uri_path"]


def uri_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (or a plain path); ``None`` for another store."""
    if "://" not in uri:
        return Path(uri)
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder; 0 when it is gone."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def remove_artifacts(uris: Iterable[str]) -> int:
    """Delete the artifacts at these URIs, and their run's folder once empty; bytes freed."""
    freed = 0
    for uri in uris:
        path = uri_path(uri)
        if path is None or not path.exists():
            continue
        freed += path_bytes(path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # the run's folder, when this was its last artifact
        except OSError:
            pass
    return freed


def sweep_orphans(root_uri: str | None, live: set[str]) -> int:
    """Delete run folders under the artifact root ``root_uri`` whose run is not in ``live``
    (left by a deletion interrupted after the run went); bytes freed."""
    root = uri_path(root_uri) if root_uri else None
    if root is None or not root.is_dir():
        return 0
    freed = 0
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in live and len(folder.name) >= 8:
            freed += path_bytes(folder)
            shutil.rmtree(folder, ignore_errors=True)
    return freed
