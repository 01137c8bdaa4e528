"""Where datasets live, how they are installed, and how their files are checked.

Every dataset (PTB, MNIST) is a folder of files with published sizes and MD5s; a missing,
truncated or altered file is reported in one line naming it, before any training starts,
and a fetch installs nothing unless every file checks out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class DataError(ValueError):
    """A missing, truncated or altered data file, or a source that cannot be read."""


def data_root() -> Path:
    """The data root: ``$EVO_NAS_DATA``, else the user cache directory (``evo-nas``)."""
    env = os.environ.get("EVO_NAS_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "evo-nas"


def dataset_dir(name: str, path: Path | None = None) -> Path:
    """A dataset's folder: ``path`` when given, else ``<data root>/<name>``."""
    return Path(path).expanduser() if path is not None else data_root() / name


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
    shown_as: Callable[[str], str] | None = None,
) -> None:
    """Check each ``name -> (bytes, md5)`` in ``folder``; raise ``error`` naming the first bad
    file (``install_hint`` tells how to get a missing one). ``shown_as`` names a file in the
    message (default: its path; a fetch names where the file came from instead)."""
    folder = Path(folder)
    for name, (size, md5) in files.items():
        path = folder / name
        shown = shown_as(name) if shown_as is not None else str(path)
        if not path.is_file():
            raise error(f"{shown}: missing ({install_hint})")
        actual = path.stat().st_size
        if actual < size:
            raise error(f"{shown}: truncated ({actual:,} bytes, expected {size:,})")
        digest = md5sum(path)
        if actual != size or digest != md5:
            raise error(
                f"{shown}: altered (md5 {digest}, {actual:,} bytes; expected {md5}, {size:,} bytes)"
            )


# -- fetching ----------------------------------------------------------------------------------
def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "file://"))


def _download(url: str, dest: Path, error: type[DataError]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as e:  # URLError and HTTPError are OSErrors
        raise error(f"{url}: download failed ({getattr(e, 'reason', e)})") from None


def _copy_at_most(src: BinaryIO, dest: Path, size: int, error: type[DataError], shown: str) -> None:
    """Copy ``src`` to ``dest``, refusing it once it runs past ``size`` bytes (an archive's
    header may lie about an entry's size)."""
    with dest.open("wb") as out:
        left = size + 1
        while chunk := src.read(min(1 << 20, left)):
            out.write(chunk)
            left -= len(chunk)
            if left <= 0:
                raise error(f"{shown}: larger than the {size:,} bytes expected")


def _extract(
    archive: Path, into: Path, wanted: dict[str, int], error: type[DataError], shown: str
) -> None:
    """Copy the ``wanted`` files (base name -> size in bytes, matched anywhere in the archive)
    into ``into``; ``shown`` names the archive in errors. An entry larger than that is refused
    before anything of it is decompressed (a zip bomb writes nothing)."""

    def check(name: str, size: int) -> None:
        if size > wanted[name]:  # (a shorter one is named as truncated when verified)
            raise error(f"{shown}: {name}: {size:,} bytes, more than the {wanted[name]:,} expected")

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    base = Path(info.filename).name
                    if base in wanted and not info.is_dir():
                        check(base, info.file_size)
                        with zf.open(info) as src:
                            _copy_at_most(src, into / base, wanted[base], error, f"{shown}: {base}")
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf:
                    base = Path(member.name).name
                    if not (member.isfile() and base in wanted):
                        continue
                    check(base, member.size)
                    src = tf.extractfile(member)
                    if src is not None:
                        with src:
                            _copy_at_most(src, into / base, wanted[base], error, f"{shown}: {base}")
        else:
            raise error(f"{shown}: not a zip or tar archive, nor a folder of the dataset's files")
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as e:
        raise error(f"{shown}: damaged archive ({str(e)[:200]})") from None


def fetch_files(
    files: dict[str, tuple[int, str]],
    source: str,
    dest: Path,
    error: type[DataError] = DataError,
) -> Path:
    """Install the ``files`` (``name -> (bytes, md5)``) from ``source`` into ``dest``.

    ``source`` is a URL (a folder holding the files, or a zip/tar archive), a local archive
    or a local folder. Files are gathered in a temporary folder next to ``dest``, verified,
    then moved into place, so a failed fetch never leaves a half-written dataset behind; an
    error names the file where it came from (the source), not the temporary copy.
    """
    dest = Path(dest)
    sizes = {name: size for name, (size, _) in files.items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-fetch-") as tmp:
        stage = Path(tmp)
        if _is_url(source):
            if source.lower().endswith((".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2")):
                archive = stage / "archive"
                _download(source, archive, error)
                _extract(archive, stage, sizes, error, source)
                shown_as = f"{source}: {{}}".format
            else:
                base = source if source.endswith("/") else source + "/"
                for name in files:
                    _download(base + name, stage / name, error)
                shown_as = (base + "{}").format
        else:
            local = Path(source).expanduser()
            if local.is_dir():
                for name in files:
                    if not (local / name).is_file():
                        raise error(f"{local / name}: missing")
                    shutil.copyfile(local / name, stage / name)
                shown_as = f"{local}/{{}}".format
            elif local.is_file():
                _extract(local, stage, sizes, error, str(local))
                shown_as = f"{local}: {{}}".format
            else:
                raise error(f"{local}: no such file or folder")
        verify_files(stage, files, "the source does not hold it", error, shown_as)
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(stage / name, dest / name)
    return dest
