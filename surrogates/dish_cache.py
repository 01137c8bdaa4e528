"""The Petri dish's records of motifs it has trained, kept by canonical key.

A motif's record (its whole inner training) depends only on the dish's options and synthetic
data (the *identity*), so it is computed once per identity: a refit or a later prediction
never trains a motif again. With a folder, the records of each identity also persist across
runs in ``<folder>/<identity>.npz`` (numpy without pickle, replaced atomically).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np


class FeatureCache:
    """Records by key for one identity at a time; :meth:`use` switches (and clears)."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.identity: str | None = None
        self._rows: dict[str, np.ndarray] = {}

    def use(self, identity: str) -> None:
        """Work for ``identity`` from now on: the records of another one are dropped and the
        folder's file for this one, if any, is read."""
        if identity == self.identity:
            return
        self.identity, self._rows = identity, {}
        path = self._path()
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._rows = dict(zip(z["keys"].tolist(), z["rows"], strict=True))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                self._rows = {}  # a damaged cache only costs time: it is rewritten

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def add(self, keys: list[str], rows: np.ndarray) -> None:
        """Keep ``rows[i]`` as the record of ``keys[i]``, in the folder too."""
        self._rows.update(zip(keys, np.asarray(rows, dtype=float), strict=True))
        path = self._path()
        if path is None:
            return
        keys_all, rows_all = self.items()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=np.array(keys_all, dtype=str), rows=rows_all)
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable folder only costs time

    def rows(self, keys: list[str], width: int) -> np.ndarray:
        """The records of ``keys`` (every one must be present) ``[len(keys), width]``."""
        if not keys:
            return np.empty((0, width))
        return np.stack([self._rows[k] for k in keys])

    def items(self) -> tuple[list[str], np.ndarray]:
        """Every key and its record, in insertion order."""
        keys = list(self._rows)
        width = len(next(iter(self._rows.values()))) if keys else 0
        rows = np.stack([self._rows[k] for k in keys]) if keys else np.empty((0, width))
        return keys, rows

    def _path(self) -> Path | None:
        if self.folder is None or self.identity is None:
            return None
        return self.folder / f"{self.identity}.npz"
