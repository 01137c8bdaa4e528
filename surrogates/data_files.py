"""Where datasets live and how their files are checked before anything trains on them.

Every dataset (PTB, MNIST) is a folder of files with published sizes and MD5s; a missing,
truncated or altered file is reported in one line naming it, before any training starts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class DataError(ValueError):
    """A missing, truncated or altered data file, or a source that cannot be read."""


def data_root() -> Path:
    """The data root: ``$EVO_NAS_DATA``, else the user cache directory (``evo-nas``)."""
    env = os.environ.get("EVO_NAS_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "evo-nas"


def md5sum(path: Path) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    h = hashlib.md5()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_files(
    folder: Path,
    files: dict[str, tuple[int, str]],
    install_hint: str,
    error: type[DataError] = DataError,
) -> None:
    """Check each ``name -> (bytes, md5)`` in ``folder``; raise ``error`` naming the first bad
    file (``install_hint`` tells how to get a missing one)."""
    folder = Path(folder)
    for name, (size, md5) in files.items():
        path = folder / name
        if not path.is_file():
            raise error(f"{path}: missing ({install_hint})")
        actual = path.stat().st_size
        if actual < size:
            raise error(f"{path}: truncated ({actual:,} bytes, expected {size:,})")
        digest = md5sum(path)
        if actual != size or digest != md5:
            raise error(
                f"{path}: altered (md5 {digest}, {actual:,} bytes; expected {md5}, {size:,} bytes)"
            )
