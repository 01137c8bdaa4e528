"""The run checkpoint as data (format 2): search state, results and RNG states in JSON.

It holds what a resumed run needs to continue exactly: the state at the start of the
current step (population, logbook, hall of fame, RNG states, the fitted surrogate's state),
every ground-truth result and the cells in flight. DEAP objects and RNG states are written as
plain values and rebuilt on reading; everything goes through :mod:`evo_nas_common.statefile`, so
reading a checkpoint never runs code. A damaged checkpoint (truncated, empty, not JSON, of the
wrong shape) is refused in one line naming the file; when the latest is damaged or missing,
the previous generation (``checkpoint.prev.json``) is used instead, with a warning.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    ValidationError,
)

from evo_nas.rundir.files import RunDir
from evo_nas.rundir.lock import RunDirError
from evo_nas.search.state import (
    MAX_STEPS,
    InFlightCell,
    RngStates,
    SearchState,
    genotype_from_data,
    plain,
)
from evo_nas_common.bounds import first_error
from evo_nas_common.statefile import StateError, decode, dumps_encoded, encode, loads_encoded
from ground_truths import Result
from search_spaces import Genotype, SearchSpace

FORMAT = "evo-nas checkpoint"
VERSION = 2


class CheckpointError(RunDirError):
    """A checkpoint that cannot be read, in one line naming the file."""


class CheckpointWarning(UserWarning):
    """A checkpoint problem that the run recovered from (what it did is in the message)."""


# -- writing ----------------------------------------------------------------------------------
def boundary_json(
    state: SearchState, strategy: dict[str, Any], space: SearchSpace, rng: RngStates, surrogate: Any
) -> bytes:
    """The step's starting state as JSON: the search's, the strategy's own, the generators'
    and the fitted surrogate's."""
    version, internal, gauss_next = rng.python
    rngs = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": rng.numpy,
        "torch": rng.torch.numpy().copy(),
    }
    out = {
        "search": encode(state.to_data(space), "search state"),
        "strategy": encode(strategy, "strategy state_dict()"),
        "rng": encode(rngs, "boundary.rng"),
        "surrogate": encode(surrogate, "surrogate state_dict()"),
    }
    return dumps_encoded(out)


def record_json(record: dict[str, Any]) -> bytes:
    """One ground-truth record (its Result as a dict) as JSON."""
    res: Result = record["result"]
    result = {
        "objective": res.objective,
        "status": res.status,
        "cost_s": res.cost_s,
        "metrics": plain(res.metrics),
        "message": res.message,
    }
    data = {**record, "genotype": plain(record["genotype"]), "result": result}
    return dumps_encoded(encode(data, f"record {record['index']}"))


def checkpoint_bytes(
    config: bytes,
    boundary: bytes,
    records: list[bytes],
    in_flight: dict[str, Any],
    events_written: int,
    elapsed_s: float,
) -> bytes:
    """The whole checkpoint file from its parts; ``config``, ``boundary`` and ``records``
    are JSON already (written once each, not again at every save)."""
    head = {
        "format": FORMAT,
        "version": VERSION,
        "events_written": events_written,
        "elapsed_s": encode(elapsed_s),
        "in_flight": encode(plain(in_flight), "in_flight"),
    }
    return b"".join(
        [
            dumps_encoded(head)[:-1],
            b',"config":',
            config,
            b',"boundary":',
            boundary,
            b',"records":[',
            b",".join(records),
            b"]}",
        ]
    )


# -- the shape a checkpoint must have ---------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PythonRng(_Model):
    version: int
    internal: list[int]
    gauss_next: float | None


class _Rng(_Model):
    python: _PythonRng
    numpy: dict[str, Any]
    torch: Any


class _Boundary(_Model):
    search: dict[str, Any]
    strategy: dict[str, Any]
    rng: _Rng
    surrogate: Any


class _Result(_Model):
    objective: float
    status: Literal["ok", "diverged", "failed"]
    cost_s: Annotated[float, Field(ge=0)]
    metrics: dict[str, Any]
    message: str


class _Record(InFlightCell):
    index: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    key: str
    result: _Result


class _Checkpoint(_Model):
    format: Literal["evo-nas checkpoint"]
    version: Literal[2]
    config: dict[str, Any]
    boundary: _Boundary
    records: list[_Record]
    in_flight: dict[str, InFlightCell]
    events_written: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    elapsed_s: NonNegativeFloat


# -- reading ----------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A checkpoint read back, with every value rebuilt as the engine holds it."""

    path: Path
    config: dict[str, Any]
    state: SearchState
    strategy: dict[str, Any]  # the strategy's state_dict()
    rng: RngStates
    surrogate: Any
    records: list[dict[str, Any]]
    in_flight: dict[str, dict[str, Any]]
    events_written: int
    elapsed_s: float
    boundary: bytes  # as stored, for the checkpoints written while the step is replayed
    recovered: str | None = None  # why an older generation is used, when it is

    @property
    def events_kept(self) -> int:
        """The lines of ``events.jsonl`` a resumed run keeps: those written by the boundary
        (by the last save, for a checkpoint written before the boundary counted them)."""
        at = self.state.events_at_boundary
        return self.events_written if at is None else at

    @property
    def records_kept(self) -> int:
        """The results whose ``evaluation`` events those lines hold."""
        at = self.state.events_at_boundary
        return len(self.records) if at is None else self.state.records_at_boundary


class _Damaged(Exception):
    """What is wrong with a checkpoint (the caller adds the file's name)."""


def _genotype(space: SearchSpace, obj: Any, where: str) -> Genotype:
    try:
        return genotype_from_data(space, obj, where)
    except ValueError as e:
        raise _Damaged(str(e)) from None


def _rng(saved: _Rng) -> RngStates:
    py = (saved.python.version, tuple(saved.python.internal), saved.python.gauss_next)
    try:
        random.Random().setstate(py)
    except (ValueError, TypeError, OverflowError) as e:
        raise _Damaged(f"boundary.rng.python: not a generator state ({e})") from None
    try:
        np.random.PCG64().state = saved.numpy
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise _Damaged(f"boundary.rng.numpy: not a PCG64 state ({e})") from None
    if not isinstance(saved.torch, np.ndarray) or saved.torch.dtype != np.uint8:
        raise _Damaged("boundary.rng.torch: not a byte array")
    state = torch.from_numpy(saved.torch.copy())
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, TypeError, ValueError) as e:
        raise _Damaged(f"boundary.rng.torch: not a generator state ({e})") from None
    return RngStates(py, saved.numpy, state)


def _records(space: SearchSpace, records: list[_Record]) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(records, start=1):
        if r.index != i:
            raise _Damaged(f"records[{i - 1}]: index {r.index}, expected {i}")
        _genotype(space, r.genotype, f"records[{i - 1}].genotype")
        res = r.result
        out.append(
            {
                "index": r.index,
                "key": r.key,
                "result": Result(res.objective, res.status, res.cost_s, res.metrics, res.message),
                "genotype": r.genotype,
                "phase": r.phase,
                "round": r.round,
                "predicted": r.predicted,
            }
        )
    keys = [r["key"] for r in out]
    if len(set(keys)) != len(keys):
        raise _Damaged("records: a cell is recorded twice")
    return out


def _read(path: Path, space: SearchSpace) -> Checkpoint:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Damaged(f"cannot read ({e.strerror})") from None
    try:
        raw = loads_encoded(data)
        tree = decode(raw, "checkpoint")
    except StateError as e:
        raise _Damaged(str(e)) from None
    except RecursionError:
        raise _Damaged("nested too deeply") from None
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise _Damaged("not an evo-nas checkpoint")
    if tree.get("version") != VERSION:
        raise _Damaged(f"format version {tree.get('version')!r}, this evo-nas reads {VERSION}")
    try:
        ck = _Checkpoint.model_validate(tree)
    except ValidationError as e:
        raise _Damaged(first_error(e)) from None
    records = _records(space, ck.records)
    b = ck.boundary
    try:
        state = SearchState.from_data(b.search, space)
    except ValueError as e:
        raise _Damaged(f"boundary.search.{e}") from None
    if state.records_at_boundary > len(records):
        raise _Damaged(
            f"boundary.search.records_at_boundary {state.records_at_boundary} > {len(records)}"
        )
    if set(ck.in_flight) & {r["key"] for r in records}:
        raise _Damaged("in_flight: a cell in flight is also recorded")
    at_boundary = {r["key"] for r in records[: state.records_at_boundary]}
    if set(state.in_flight or ()) & at_boundary:
        raise _Damaged("boundary.search.in_flight: a cell in flight is also recorded")
    if state.events_at_boundary is not None and state.events_at_boundary > ck.events_written:
        raise _Damaged(
            f"boundary.search.events_at_boundary {state.events_at_boundary} > events_written "
            f"{ck.events_written}"
        )
    for k, meta in ck.in_flight.items():
        _genotype(space, meta.genotype, f"in_flight[{k!r}].genotype")
    if not math.isfinite(ck.elapsed_s):
        raise _Damaged("elapsed_s: not a finite number")
    return Checkpoint(
        path=path,
        config=ck.config,
        state=state,
        strategy=b.strategy,
        rng=_rng(b.rng),
        surrogate=b.surrogate,
        records=records,
        in_flight={k: m.model_dump() for k, m in ck.in_flight.items()},
        events_written=ck.events_written,
        elapsed_s=ck.elapsed_s,
        boundary=dumps_encoded(raw["boundary"]),
    )


def read_checkpoint(path: Path, space: SearchSpace) -> Checkpoint:
    """One checkpoint file, rebuilt for ``space``; raises :class:`CheckpointError`."""
    try:
        return _read(Path(path), space)
    except _Damaged as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({e})") from None


def load_checkpoint(rd: RunDir, space: SearchSpace) -> Checkpoint:
    """The latest checkpoint that reads, falling back to the previous generation (warned).

    Raises :class:`CheckpointError` when there is none, or none that reads.
    """
    latest, previous = rd.checkpoint_path, rd.previous_checkpoint_path
    if not latest.exists() and not previous.exists():
        raise CheckpointError(f"{latest}: missing")
    if latest.exists():
        try:
            return read_checkpoint(latest, space)
        except CheckpointError as e:
            if not previous.exists():
                raise
            problem = str(e)
    else:
        problem = f"{latest}: missing"
    try:
        ck = read_checkpoint(previous, space)
    except CheckpointError as e:
        raise CheckpointError(f"{problem}; and {e}") from None
    ck.recovered = f"{problem}; resumed from the checkpoint before it, {previous.name}"
    warnings.warn(ck.recovered, CheckpointWarning, stacklevel=2)
    return ck


def read_surrogate_state(rd: RunDir, space: SearchSpace) -> Any:
    """The fitted surrogate state of a run's checkpoint (None when not fitted yet)."""
    return load_checkpoint(rd, space).surrogate
