"""Converting a pickle checkpoint (``checkpoint.pkl``, format 1) to ``checkpoint.json``.

This is the one place left that unpickles. Unpickling a file runs whatever code the file
names, so it happens only when asked (``evo-nas convert-checkpoint RUN_DIR``), with a warning,
for run directories whose origin the user trusts; ``evo-nas resume`` never reads a pickle.
The pickle is kept; the JSON checkpoint written beside it is read back before it is kept.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.statefile import StateError, dumps, encode
from evo_nas.checkpoint import (
    CheckpointError,
    boundary_json,
    checkpoint_bytes,
    read_checkpoint,
    record_json,
)
from evo_nas.config import ConfigError, build_space, first_line, parse_run_config
from evo_nas.rundir import RunDir
from evo_nas.runlock import RunDirError
from evo_nas.search_state import RngStates, SearchState


class PickleWarning(UserWarning):
    """A pickle is about to be loaded (which can run code)."""


#: classes that moved since format 1 was written: (module then, name) -> module now
MOVED = {("surrogates.base", "Result"): "ground_truths.base"}


class _Unpickler(pickle.Unpickler):
    """Reads a format-1 pickle, finding the classes that moved since at their new place."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get((module, name), module), name)


def unpickle(data: bytes) -> Any:
    """A format-1 pickle's content (this runs any code the pickle names)."""
    return _Unpickler(io.BytesIO(data)).load()  # noqa: S301 (the opt-in conversion)


def plain_state(value: Any) -> Any:
    """A format-1 surrogate state as a state tree: torch tensors as numpy arrays, tuples as
    lists, numpy scalars as Python numbers (anything else is left for the encoder to refuse)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_state(v) for v in value]
    return value


def _convert(rd: RunDir, old: Any) -> tuple[bytes, Any, str]:
    """(checkpoint.json bytes, the space, a note) from an unpickled format-1 checkpoint."""
    if not isinstance(old, dict) or old.get("version") != 1:
        raise ValueError("not a format-1 evo-nas checkpoint")
    cfg = parse_run_config(old["config"], rd.path)
    space = build_space(cfg)
    boundary = dict(unpickle(old["boundary"]))
    rng = boundary.pop("rng")
    surrogate = boundary.pop("surrogate")
    note = ""
    if surrogate is not None:
        try:
            surrogate = plain_state(surrogate)
            encode(surrogate, "surrogate state")
        except StateError as e:
            surrogate = None
            note = f"; the surrogate's state is not data ({e}), so resume refits it"
    rngs = RngStates(tuple(rng["python"]), dict(rng["numpy"]), rng["torch"])
    data = checkpoint_bytes(
        dumps(old["config"], "config"),
        boundary_json(SearchState(**boundary), space, rngs, surrogate),
        [record_json(r) for r in old["records"]],
        dict(old.get("in_flight", {})),
        int(old["events_written"]),
        float(old["elapsed_s"]),
    )
    return data, space, note


def convert_pickle_checkpoint(run_dir: Path) -> str:
    """Write ``checkpoint.json`` from a run directory's ``checkpoint.pkl``; returns what it did.

    Warns (:class:`PickleWarning`) before unpickling; refuses when there is nothing to
    convert or a JSON checkpoint exists already. Nothing is written unless it reads back.
    """
    rd = RunDir(Path(run_dir))
    src = rd.pickle_checkpoint_path
    if not src.is_file():
        raise RunDirError(f"{src}: not found, nothing to convert")
    if rd.checkpoint_files():
        raise RunDirError(
            f"{rd.checkpoint_path}: exists already (resume reads it; {src.name} is not needed)"
        )
    lock = rd.lock()
    try:
        warnings.warn(
            f"{src}: unpickling it, which runs any code it names (do this only for a run "
            "directory you trust)",
            PickleWarning,
            stacklevel=2,
        )
        try:
            old = unpickle(src.read_bytes())
            data, space, note = _convert(rd, old)
        except ConfigError as e:
            raise RunDirError(f"{src}: its config is not valid now ({e})") from None
        except Exception as e:  # a pickle can fail in any way: report it in one line
            raise RunDirError(f"{src}: cannot be converted ({first_line(e)})") from None
        rd.save_checkpoint(data, keep_previous=False)
        try:
            ck = read_checkpoint(rd.checkpoint_path, space)
        except CheckpointError as e:
            rd.checkpoint_path.unlink()
            raise RunDirError(f"{src}: the conversion does not read back ({e})") from None
    finally:
        lock.release()
    return (
        f"wrote {rd.checkpoint_path} ({len(ck.records)} results); {src.name} is kept, and "
        f"no longer read{note}"
    )
