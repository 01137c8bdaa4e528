"""Handwritten-digit sets for the MLP classifier ground truth: train/validation/test arrays.

``digits`` is scikit-learn's bundled 8x8 set (1,797 images, no download), split by a seeded
permutation. ``mnist`` reads the four gzipped IDX files of MNIST from a folder (default
``<data root>/mnist``, where ``evo-nas data fetch mnist`` installs them), checked against
their published sizes and MD5s like the PTB files; validation is the last 10,000 training
images.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo_nas_common.data_files import DataError, dataset_dir, fetch_files, verify_files

#: file name -> (bytes, md5) of the published MNIST archives
MNIST_FILES: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte.gz": (9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": (28_881, "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": (1_648_877, "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": (4_542, "ec29112dd5afa0611ce80d1b7f02629c"),
}
_MNIST_VALIDATION = 10_000
#: a public mirror of the four MNIST archives (the one torchvision reads)
MNIST_SOURCE = "https://ossci-datasets.s3.amazonaws.com/mnist/"


@dataclass(frozen=True)
class DigitSplits:
    """Features in [0, 1] (``[n, d]`` float32) and integer labels of the three splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse validation/test fractions that leave no data for one of the three splits."""
    if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
        raise ValueError("need val_fraction > 0, test_fraction > 0 and their sum below 1")


def load_digits_splits(
    val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0
) -> DigitSplits:
    """scikit-learn's 8x8 digits, split by a permutation drawn from ``split_seed``."""
    from sklearn.datasets import load_digits

    check_split_fractions(val_fraction, test_fraction)
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(x))
    n_test, n_val = round(len(x) * test_fraction), round(len(x) * val_fraction)
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return DigitSplits(x[train], y[train], x[val], y[val], x[test], y[test])


def _read_idx(path: Path) -> np.ndarray:
    """One gzipped IDX array (unsigned bytes), shaped as its header says."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: holds {body.size} values, its header says {shape}")
    return body.reshape(shape)


def mnist_dir(path: Path | None = None) -> Path:
    """The MNIST folder: ``path`` when given, else ``<data root>/mnist``."""
    return dataset_dir("mnist", path)


def fetch_mnist(
    source: str | None = None,
    dest: Path | None = None,
    checksums: dict[str, tuple[int, str]] | None = None,
) -> Path:
    """Install MNIST into ``dest`` (default ``<data root>/mnist``), verified against
    ``checksums`` (default the published ones); ``source``: a URL, archive or folder,
    default :data:`MNIST_SOURCE`."""
    files = MNIST_FILES if checksums is None else checksums
    return fetch_files(files, source or MNIST_SOURCE, mnist_dir(dest))


def load_mnist_splits(
    folder: Path | None = None, checksums: dict[str, tuple[int, str]] | None = None
) -> DigitSplits:
    """MNIST from ``folder`` (default ``<data root>/mnist``), verified against ``checksums``
    (default the published ones) before it is read."""
    folder = mnist_dir(folder)
    files = MNIST_FILES if checksums is None else checksums
    verify_files(folder, files, "install it with `evo-nas data fetch mnist`")
    names = list(MNIST_FILES)
    x_all = _read_idx(folder / names[0]).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    y_all = _read_idx(folder / names[1]).astype(np.int64)
    x_test = _read_idx(folder / names[2]).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    y_test = _read_idx(folder / names[3]).astype(np.int64)
    if len(x_all) != len(y_all) or len(x_test) != len(y_test):
        raise DataError(f"{folder}: image and label counts differ")
    n_val = min(_MNIST_VALIDATION, len(x_all) // 5)
    return DigitSplits(
        x_all[:-n_val], y_all[:-n_val], x_all[-n_val:], y_all[-n_val:], x_test, y_test
    )
